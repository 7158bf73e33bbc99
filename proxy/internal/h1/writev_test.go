package h1

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the writes made to it, and the writes of several
// buffers at once (BuffersWriter), which it passes on as net.Buffers does.
type countingConn struct {
	net.Conn
	writes, buffers *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func (c countingConn) WriteBuffers(v *net.Buffers) (int64, error) {
	c.buffers.Add(1)
	return v.WriteTo(c.Conn)
}

type countingListener struct {
	net.Listener
	writes, buffers *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes, l.buffers}, nil
}

// TestLargeChunksInOneWrite: a chunk larger than the connection's buffer
// goes out with its framing in one write of several buffers, not in three
// writes (the buffer's worth, the rest, and the chunk's end), and the
// client gets the body whole, in order.
func TestLargeChunksInOneWrite(t *testing.T) {
	const chunks, size = 3, 64 << 10
	var want bytes.Buffer
	for i := range chunks {
		want.Write(bytes.Repeat([]byte{'a' + byte(i)}, size))
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range chunks {
			w.Write(want.Bytes()[i*size : (i+1)*size])
			w.(http.Flusher).Flush()
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var writes, buffers atomic.Int64
	s := NewServer(h, Config{ReadHeaderTimeout: time.Minute, IdleTimeout: time.Minute, MaxHeaderBytes: 32 << 10},
		context.Background(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go s.Serve(countingListener{ln, &writes, &buffers})
	defer s.Close()
	res, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || !bytes.Equal(got, want.Bytes()) || len(res.TransferEncoding) != 1 {
		t.Fatalf("body: %d bytes (%v), transfer encoding %v; want %d chunked", len(got), err, res.TransferEncoding, want.Len())
	}
	// The head, flushed before the first chunk, and the last chunk: two
	// plain writes; each chunk: one write of its buffers.
	if b, w := buffers.Load(), writes.Load(); b != chunks || w > 2 {
		t.Errorf("%d writes of buffers and %d plain writes, want %d and at most 2", b, w, chunks)
	}
}
