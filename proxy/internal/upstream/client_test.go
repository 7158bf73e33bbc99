package upstream

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// allFields forwards every field.
type allFields struct{}

func (allFields) Forward(string, bool) bool { return true }

// countingBackend serves h and counts the connections it accepted.
func countingBackend(t *testing.T, h http.HandlerFunc) (addr string, accepted *atomic.Int64) {
	t.Helper()
	accepted = new(atomic.Int64)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			accepted.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), accepted
}

// get sends a GET to addr through cl and p and returns the answer's
// status and body.
func get(t *testing.T, cl *Client, p *Pool, addr string) (int, string) {
	t.Helper()
	req := &Request{R: httptest.NewRequest(http.MethodGet, "http://app.test/", nil), Fields: allFields{}, Header: http.Header{}}
	x, err := cl.RoundTrip(p, addr, req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	b, err := io.ReadAll(x)
	x.Finish()
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return x.Status(), string(b)
}

func testClient() *Client {
	return &Client{DialTimeout: 5 * time.Second, ResponseHeaderTimeout: time.Minute}
}

// TestReuseAfterDeadline: a pooled connection whose read deadline (the
// header timeout of its last answer) passed while it was idle is still
// reused: the look before reuse does not take the passed deadline for a
// dead connection.
func TestReuseAfterDeadline(t *testing.T) {
	addr, accepted := countingBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	cl, p := testClient(), &Pool{}
	defer p.CloseIdle()
	if code, body := get(t, cl, p, addr); body != "ok" {
		t.Fatalf("first: %d %q", code, body)
	}
	// The pooled connection's deadline, moved to the past as the header
	// timeout would be after a quiet minute.
	c := p.pop()
	if c == nil {
		t.Fatal("no pooled connection")
	}
	c.deadline = time.Now().Add(-time.Second)
	_ = c.nc.SetReadDeadline(c.deadline)
	p.put(c)
	if code, body := get(t, cl, p, addr); body != "ok" {
		t.Fatalf("second: %d %q", code, body)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("the backend accepted %d connections, want 1: the idle one was reused", n)
	}
}

// TestKeepAliveIdle reads the backend's Keep-Alive timeout.
func TestKeepAliveIdle(t *testing.T) {
	for _, tt := range []struct {
		v    string
		want time.Duration
	}{
		{"", idleConnTimeout},
		{"timeout=5", 4 * time.Second},
		{"max=100, timeout=2", time.Second},
		{"timeout=1", 500 * time.Millisecond},
		{"timeout=0", 0},
		{"timeout=900", idleConnTimeout - time.Second},
		{"timeout=x", idleConnTimeout},
	} {
		if got := keepAliveIdle(tt.v); got != tt.want {
			t.Errorf("keepAliveIdle(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// TestRetryable is http.Transport's retry rule, case by case.
func TestRetryable(t *testing.T) {
	body := func(buf []byte, sent bool) *Body {
		b := &Body{RC: io.NopCloser(strings.NewReader("x")), Size: 1, Buf: buf}
		b.sent.Store(sent)
		return b
	}
	for _, tt := range []struct {
		name                            string
		method                          string
		hdr                             http.Header
		body                            *Body
		nothingWritten, nothingReceived bool
		want                            bool
	}{
		{"GET unanswered", "GET", nil, nil, false, true, true},
		{"GET answered in part", "GET", nil, nil, false, false, false},
		{"HEAD unanswered", "HEAD", nil, nil, false, true, true},
		{"OPTIONS unanswered", "OPTIONS", nil, nil, false, true, true},
		{"TRACE unanswered", "TRACE", nil, nil, false, true, true},
		{"POST unanswered", "POST", nil, body([]byte("x"), true), false, true, false},
		{"DELETE unanswered", "DELETE", nil, nil, false, true, false},
		{"POST nothing written, body read ahead", "POST", nil, body([]byte("x"), false), true, true, true},
		{"POST nothing written, body not read yet", "POST", nil, body(nil, false), true, true, true},
		{"POST nothing written, body read in part", "POST", nil, body(nil, true), true, true, false},
		{"POST with Idempotency-Key, body read ahead", "POST", http.Header{"Idempotency-Key": {"k"}}, body([]byte("x"), true), false, true, true},
		{"POST with X-Idempotency-Key, no value", "POST", http.Header{"X-Idempotency-Key": nil}, nil, false, true, true},
		{"POST with Idempotency-Key, body streamed", "POST", http.Header{"Idempotency-Key": {"k"}}, body(nil, true), false, true, false},
		{"GET with a body read ahead", "GET", nil, body([]byte("x"), true), false, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := &Request{R: &http.Request{Method: tt.method, Header: tt.hdr}, Body: tt.body}
			if got := retryable(req, tt.nothingWritten, tt.nothingReceived); got != tt.want {
				t.Errorf("retryable = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestBackendThatClosesAfterAnswer: a backend that closes each connection
// right after its answer without saying so (uWSGI's http-socket) has its
// connections no longer kept once a pooled one was found closed: a
// request sent on one as the backend closes it would be lost.
func TestBackendThatClosesAfterAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closeFirst := make(chan struct{})
	var accepted atomic.Int64
	var wg sync.WaitGroup
	defer func() {
		ln.Close()
		wg.Wait()
	}()
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := accepted.Add(1)
			wg.Go(func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				if n == 1 {
					<-closeFirst // the test says when
				}
				// Closed after the answer, unannounced.
			})
		}
	})
	addr := ln.Addr().String()
	cl, p := testClient(), &Pool{}
	defer p.CloseIdle()
	if _, body := get(t, cl, p, addr); body != "ok" {
		t.Fatalf("first: %q", body)
	}
	close(closeFirst)
	// The close reaches the pooled connection: wait until a look at it
	// sees it, as the next request's would.
	for {
		c := p.pop()
		if c == nil {
			t.Fatal("the first connection was not kept")
		}
		ok, closed := usable(c)
		if !ok && closed {
			p.put(c)
			break
		}
		p.put(c)
		runtime.Gosched()
	}
	for i := range 2 {
		if _, body := get(t, cl, p, addr); body != "ok" {
			t.Fatalf("request %d: %q", i+2, body)
		}
	}
	if !p.closesAfterAnswer.Load() {
		t.Error("the backend's closing after its answer was not noticed")
	}
	p.mu.Lock()
	idle := len(p.idle)
	p.mu.Unlock()
	if idle != 0 || accepted.Load() != 3 {
		t.Errorf("%d idle connections, %d accepted; want none kept and one connection per request", idle, accepted.Load())
	}
}

// TestPostWaitsForAKeptConnection: a POST goes on a kept connection only
// once the backend has shown it keeps them; one that announces nothing
// shows it by leaving an idle connection open (prove).
func TestPostWaitsForAKeptConnection(t *testing.T) {
	addr, accepted := countingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	})
	cl, p := testClient(), &Pool{}
	defer p.CloseIdle()
	post := func() {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, "http://app.test/", nil)
		req := &Request{R: r, Fields: allFields{}, Header: http.Header{}, Body: &Body{RC: io.NopCloser(strings.NewReader("x")), Size: 1}}
		x, err := cl.RoundTrip(p, addr, req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, x)
		x.Finish()
	}
	post()
	post() // not on the first one's connection: the backend has shown nothing
	if n := accepted.Load(); n != 2 {
		t.Fatalf("%d connections for two POSTs to an unknown backend, want 2", n)
	}
	for !p.keepsAlive.Load() {
		time.Sleep(time.Millisecond) // prove runs a second after the connections went idle
	}
	post()
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d connections after the backend kept one open, want 2: the POST reuses one", n)
	}
}

// TestCancelAfterFinish: canceling an exchange that has ended (the proxy's
// client writer failing after the reader of the answer finished it)
// leaves its connection alone: the pool may have given it to another
// request already, which must not find it cut.
func TestCancelAfterFinish(t *testing.T) {
	addr, accepted := countingBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	cl, p := testClient(), &Pool{}
	defer p.CloseIdle()
	req := &Request{R: httptest.NewRequest(http.MethodGet, "http://app.test/", nil), Fields: allFields{}, Header: http.Header{}}
	x, err := cl.RoundTrip(p, addr, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(x); err != nil {
		t.Fatal(err)
	}
	x.Finish() // the connection goes back to the pool
	x.Cancel() // too late: it must not cut it
	if code, body := get(t, cl, p, addr); code != 200 || body != "ok" {
		t.Fatalf("the next request: %d %q", code, body)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("%d connections, want the first one reused", n)
	}
}
