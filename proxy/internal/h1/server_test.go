package h1

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestKeepDeadline: a deadline stays while it is a little earlier than the
// one wanted, and never when later or too early.
func TestKeepDeadline(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tt := range []struct {
		set  time.Time
		d    time.Duration
		keep bool
	}{
		{time.Time{}, 0, true},
		{now.Add(time.Minute), 0, false},
		{time.Time{}, time.Minute, false},
		{now.Add(time.Minute), time.Minute, true},
		{now.Add(time.Minute - 500*time.Millisecond), time.Minute, true},
		{now.Add(time.Minute - 2*time.Second), time.Minute, false},
		{now.Add(time.Minute + time.Millisecond), time.Minute, false},
		{now.Add(40 * time.Millisecond), 50 * time.Millisecond, true},
		{now.Add(20 * time.Millisecond), 50 * time.Millisecond, false}, // a quarter of 50 ms at most
		{now.Add(-time.Second), time.Second, false},
	} {
		if _, keep := KeepDeadline(tt.set, now, tt.d); keep != tt.keep {
			t.Errorf("KeepDeadline(%v, now, %v) keeps: %v, want %v", tt.set.Sub(now), tt.d, keep, tt.keep)
		}
	}
}

// fuzzConn is a client connection that reads data and discards writes.
type fuzzConn struct {
	net.Conn // nil: only the methods below are called
	r        *strings.Reader
}

func (f *fuzzConn) Read(p []byte) (int, error)         { return f.r.Read(p) }
func (f *fuzzConn) Write(p []byte) (int, error)        { return len(p), nil }
func (f *fuzzConn) Close() error                       { return nil }
func (f *fuzzConn) LocalAddr() net.Addr                { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (f *fuzzConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 1234} }
func (f *fuzzConn) SetReadDeadline(time.Time) error    { return nil }
func (f *fuzzConn) SetDeadline(time.Time) error        { return nil }
func (f *fuzzConn) SetWriteDeadline(t time.Time) error { return nil }

// FuzzH1Request reads requests from arbitrary bytes as the HTTP/1.1 server
// does: it never panics, and what it accepts is framed one way only, with
// no line break where a value could carry one to the backend.
func FuzzH1Request(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /p?q HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n1\r\na\r\n0\r\nX: y\r\n\r\n",
		"GET http://a/b HTTP/1.1\r\nHost: c\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
		"\r\nGET / HTTP/1.1\nHost: a\nExpect: 100-continue\nContent-Length: 1\n\nx",
		"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		o := Config{ReadHeaderTimeout: time.Second, IdleTimeout: time.Second, MaxHeaderBytes: 4 << 10}
		s := NewServer(http.NotFoundHandler(), o, context.Background(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		c := s.newConn(&fuzzConn{r: strings.NewReader(data)})
		for range 8 {
			req, body, err := c.readRequest()
			if err != nil {
				return
			}
			if !ValidToken(req.Method) || strings.ContainsAny(req.Host, "\r\n ") {
				t.Fatalf("accepted method %q, host %q", req.Method, req.Host)
			}
			for k, vs := range req.Header {
				for _, v := range vs {
					if !ValidToken(k) || strings.ContainsAny(v, "\r\n") {
						t.Fatalf("accepted field %q: %q", k, v)
					}
				}
			}
			chunked := len(req.TransferEncoding) > 0
			if chunked && (req.ContentLength != -1 || req.Header["Content-Length"] != nil) || !chunked && req.ContentLength < 0 {
				t.Fatalf("framed two ways: length %d, %v, %v", req.ContentLength, req.TransferEncoding, req.Header["Content-Length"])
			}
			if body == nil {
				continue
			}
			body.req = req
			buf := make([]byte, 512)
			for {
				body.mu.Lock()
				_, err := body.read(buf)
				body.mu.Unlock()
				if err != nil {
					break
				}
			}
			if !body.eof {
				return
			}
		}
	})
}
