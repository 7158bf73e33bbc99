package h1

import (
	"bufio"
	"context"
	"fmt"
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

// TestRequestDuringAnswerNotLost: a request that comes while the one
// before is being answered (a pipelining client), or once an answer went
// out whole before the wait for the next request began (a large body
// written past the buffer), is read at once: the wait for the next
// request does not wait for more data when some is there. Before, the
// poller's readiness, reset as the wait began, was lost with it, and the
// request waited for the idle timeout (an hour here).
func TestRequestDuringAnswerNotLost(t *testing.T) {
	entered := make(chan string, 4)
	release := make(chan struct{})
	big := strings.Repeat("b", 64<<10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- r.URL.Path
		switch r.URL.Path {
		case "/slow":
			<-release
			io.WriteString(w, "answer to /slow")
		case "/big":
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			io.WriteString(w, big) // past the buffer: written whole at once
		default:
			io.WriteString(w, "answer to "+r.URL.Path)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(h, Config{ReadHeaderTimeout: time.Hour, IdleTimeout: time.Hour, MaxHeaderBytes: 32 << 10},
		context.Background(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	defer func() {
		s.Close()
		<-served
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A request lost until the idle timeout fails the test here instead.
	c.SetReadDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	read := func(want string) {
		t.Helper()
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("waiting for %.20q: %v", want, err)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil || string(b) != want {
			t.Fatalf("answer %.20q (%v), want %.20q", b, err, want)
		}
	}
	for range 20 {
		// Pipelined: /next arrives while /slow is being answered.
		io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
		<-entered
		io.WriteString(c, "GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
		release <- struct{}{}
		read("answer to /slow")
		read("answer to /next")
		<-entered
		// An answer written whole before the wait: the client has it
		// and sends the next request at once.
		io.WriteString(c, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
		read(big)
		<-entered
		io.WriteString(c, "GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
		read("answer to /after")
		<-entered
	}
}
