package h1

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestKeepAliveResponseNotHeld: on a kept-alive connection each response
// reaches the client before the server waits for the next request (the
// response goes out as that wait begins), a request pipelined behind
// another gets its answer after it, and a graceful stop closes the
// connection waiting for its next request at once.
func TestKeepAliveResponseNotHeld(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "answer to "+r.URL.Path) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(h, Config{ReadHeaderTimeout: time.Minute, IdleTimeout: time.Hour, MaxHeaderBytes: 32 << 10},
		context.Background(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	read := func(want string) {
		t.Helper()
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil || string(b) != want {
			t.Fatalf("answer %q (%v), want %q", b, err, want)
		}
	}
	for _, p := range []string{"/one", "/two"} {
		io.WriteString(c, "GET "+p+" HTTP/1.1\r\nHost: a\r\n\r\n")
		read("answer to " + p) // the client sends nothing more until it has it
	}
	io.WriteString(c, "GET /three HTTP/1.1\r\nHost: a\r\n\r\nGET /four HTTP/1.1\r\nHost: a\r\n\r\n")
	read("answer to /three")
	read("answer to /four")
	// The connection now waits for its next request: idle, so that a
	// graceful stop closes it without waiting for the idle timeout.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (the waiting connection was not taken for idle)", err)
	}
	if _, err := br.ReadByte(); err != io.EOF && !strings.Contains(err.Error(), "reset") {
		t.Errorf("after the stop the client read %v, want EOF", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("Serve: %v", err)
	}
}
