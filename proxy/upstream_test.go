package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingBackend is an HTTP server that counts the connections it
// accepted.
func countingBackend(t *testing.T, h http.HandlerFunc) (addr string, accepted *atomic.Int64) {
	t.Helper()
	accepted = new(atomic.Int64)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			accepted.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), accepted
}

func appRoute(backends ...string) Route {
	return Route{App: "app", Hosts: []string{"app.test"}, Backends: backends}
}

// streamingRoute is appRoute with request bodies streamed to the app as
// they come (NGINX_PROXY_REQUEST_BUFFERING=off), for the tests of the
// upstream client's streaming.
func streamingRoute(backends ...string) Route {
	r := appRoute(backends...)
	r.StreamRequests = true
	return r
}

// TestUpstreamReusesConnections sends requests one after the other and
// checks that they share one backend connection, but the first POST: it
// comes before the backend (net/http's server, which announces no
// Keep-Alive timeout) has shown it keeps connections, and goes on a new
// one (upstream's Pool.mayReuse).
func TestUpstreamReusesConnections(t *testing.T) {
	be, accepted := countingBackend(t, named("ok"))
	_, addr := startProxy(t, Options{}, appRoute(be))
	c := &http.Client{}
	defer c.CloseIdleConnections()
	for i := range 20 {
		method := http.MethodGet
		var body io.Reader
		if i%2 == 1 {
			method, body = http.MethodPost, strings.NewReader("payload")
		}
		if r := do(t, c, addr, method, "app.test", "/", body); r.code != 200 || r.body != "ok" {
			t.Fatalf("request %d: %d %q", i, r.code, r.body)
		}
	}
	if n := accepted.Load(); n != 2 {
		t.Errorf("the backend accepted %d connections for 20 sequential requests, want 2", n)
	}
}

// TestUpstreamBodiesBothWays sends bodies with a length, chunked, and
// chunked with trailers, and gets them back the same ways.
func TestUpstreamBodiesBothWays(t *testing.T) {
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Got-Length", fmt.Sprint(r.ContentLength))
		w.Header().Set("X-Got-TE", strings.Join(r.TransferEncoding, ","))
		w.Header().Set("X-Got-Trailer", r.Trailer.Get("X-Sum"))
		if r.URL.Query().Get("chunked") == "1" {
			w.Header().Set("Trailer", "X-Echo-Sum")
			w.Write(b[:len(b)/2])
			http.NewResponseController(w).Flush()
			w.Write(b[len(b)/2:])
			w.Header().Set("X-Echo-Sum", fmt.Sprint(len(b)))
			return
		}
		w.Write(b)
	})
	_, addr := startProxy(t, Options{}, appRoute(be))
	payload := strings.Repeat("0123456789", 100_000) // 1 MB

	t.Run("length", func(t *testing.T) {
		r := do(t, nil, addr, http.MethodPut, "app.test", "/", strings.NewReader(payload))
		if r.code != 200 || r.body != payload || r.header.Get("X-Got-Length") != fmt.Sprint(len(payload)) {
			t.Errorf("%d, %d bytes back, length seen %s", r.code, len(r.body), r.header.Get("X-Got-Length"))
		}
	})
	t.Run("chunked with trailers", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			for i := 0; i < len(payload); i += 100_000 {
				pw.Write([]byte(payload[i : i+100_000]))
			}
			pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/?chunked=1", pr)
		req.Host = "app.test"
		req.Trailer = http.Header{"X-Sum": nil}
		req.ContentLength = -1
		sum := fmt.Sprint(len(payload))
		req.Trailer.Set("X-Sum", sum) // sent after the body
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != payload {
			t.Errorf("got %d bytes back, want %d", len(b), len(payload))
		}
		if te := res.Header.Get("X-Got-TE"); te != "chunked" {
			t.Errorf("the backend saw Transfer-Encoding %q, want chunked", te)
		}
		if got := res.Header.Get("X-Got-Trailer"); got != sum {
			t.Errorf("the backend saw trailer X-Sum %q, want %q", got, sum)
		}
		if len(res.TransferEncoding) != 1 || res.TransferEncoding[0] != "chunked" {
			t.Errorf("the response came with Transfer-Encoding %q, want chunked", res.TransferEncoding)
		}
		if got := res.Trailer.Get("X-Echo-Sum"); got != sum {
			t.Errorf("the client saw trailer X-Echo-Sum %q, want %q", got, sum)
		}
	})
}

// TestUpstreamExpectContinue sends "Expect: 100-continue" bodies to a
// backend that wants them and to one that answers at once without them.
func TestUpstreamExpectContinue(t *testing.T) {
	var bodies atomic.Int64
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reject" {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		b, _ := io.ReadAll(r.Body)
		bodies.Add(1)
		io.WriteString(w, "got "+fmt.Sprint(len(b)))
	})
	_, addr := startProxy(t, Options{}, appRoute(be))
	send := func(path string) (int, string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", path)
		br := bufio.NewReader(c)
		for {
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode == http.StatusContinue {
				io.WriteString(c, "hello")
				continue
			}
			b, _ := io.ReadAll(res.Body)
			return res.StatusCode, string(b)
		}
	}
	if code, body := send("/echo"); code != 200 || body != "got 5" {
		t.Errorf("wanted body: %d %q", code, body)
	}
	if code, _ := send("/reject"); code != http.StatusRequestEntityTooLarge {
		t.Errorf("rejected body: %d, want 413", code)
	}
	if n := bodies.Load(); n != 1 {
		t.Errorf("the backend read %d bodies, want 1", n)
	}
}

// TestUpstreamEarlyAnswer: a backend that answers before reading a large
// body must not hang the exchange.
func TestUpstreamEarlyAnswer(t *testing.T) {
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	})
	_, addr := startProxy(t, Options{}, appRoute(be))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const size = 16 << 20
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n", size)
	var wg sync.WaitGroup
	wg.Go(func() {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				return // the proxy may close once it has answered
			}
		}
	})
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("status %d, want 403", res.StatusCode)
	}
	c.Close()
	wg.Wait()
}

// TestUpstreamStaleConnectionRetried: a backend that closes a kept-alive
// connection right after answering (without saying so) must not cost the
// next request a 502.
func TestUpstreamStaleConnectionRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	var conns atomic.Int64
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := conns.Add(1)
			wg.Go(func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nconn%d", n)
				// and close, as a backend whose keep-alive timer ran out
			})
		}
	})
	_, addr := startProxy(t, Options{}, appRoute(ln.Addr().String()))
	c := &http.Client{}
	defer c.CloseIdleConnections()
	for i := 1; i <= 5; i++ {
		r := do(t, c, addr, http.MethodGet, "app.test", "/", nil)
		if r.code != 200 || r.body != fmt.Sprintf("conn%d", i) {
			t.Fatalf("request %d: %d %q", i, r.code, r.body)
		}
	}
}

// TestUpstreamClientGoneCutsBackend: when the client goes away, the
// request to the backend ends too.
func TestUpstreamClientGoneCutsBackend(t *testing.T) {
	started, ended := make(chan struct{}), make(chan struct{})
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // the backend sees its connection closed
		close(ended)
	})
	_, addr := startProxy(t, Options{}, appRoute(be))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/slow", nil)
	req.Host = "app.test"
	errc := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	<-started
	cancel()
	<-ended
	if err := <-errc; err == nil {
		t.Error("the cancelled request succeeded")
	}
}

// TestUpstreamResponseHeaderTimeout: a backend that never answers gets the
// client a 504.
func TestUpstreamResponseHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	_, addr := startProxy(t, Options{ResponseHeaderTimeout: 50 * time.Millisecond}, appRoute(be))
	if r := do(t, nil, addr, http.MethodGet, "app.test", "/", nil); r.code != http.StatusGatewayTimeout {
		t.Errorf("status %d, want 504", r.code)
	}
}

// TestUpstreamSmuggling sends requests whose framing is ambiguous or that
// carry a second request in their body. Whatever the proxy makes of them,
// the backend gets the same requests, each framed one way only: never a
// request hidden in another's body, never both Content-Length and
// Transfer-Encoding.
func TestUpstreamSmuggling(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, len(b)))
		if r.Header.Get("Content-Length") != "" && len(r.TransferEncoding) > 0 {
			seen = append(seen, "BOTH FRAMINGS")
		}
		mu.Unlock()
		io.WriteString(w, "ok")
	})
	_, addr := startProxy(t, Options{}, appRoute(be))
	for _, tt := range []struct {
		name, req string
		statuses  []int
		backend   []string
	}{
		// Both framings: refused, as nginx does (RFC 9112 6.1 lets a
		// server take it as an error); the backend sees nothing.
		{"CL and TE", "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
			[]int{400}, nil},
		{"two lengths", "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello", []int{400}, nil},
		{"obfuscated TE", "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", []int{501}, nil},
		{"request in body", "POST /in HTTP/1.1\r\nHost: app.test\r\nContent-Length: 41\r\nConnection: close\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n",
			[]int{200}, []string{"POST /in 41"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "CL and TE" {
				pikuServerOnly(t, "both framings are refused, as nginx does; net/http drops Content-Length")
			}
			mu.Lock()
			seen = nil
			mu.Unlock()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tt.req)
			br := bufio.NewReader(c)
			var got []int
			for range tt.statuses {
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				io.Copy(io.Discard, res.Body)
				got = append(got, res.StatusCode)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.statuses) {
				t.Errorf("statuses %v, want %v", got, tt.statuses)
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(seen) != fmt.Sprint(tt.backend) {
				t.Errorf("the backend saw %q, want %q", seen, tt.backend)
			}
		})
	}
}

// TestUpstreamHeadAndNoBody: HEAD, 204 and 304 answers have no body and
// leave the connection usable.
func TestUpstreamHeadAndNoBody(t *testing.T) {
	be, accepted := countingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		}
	})
	_, addr := startProxy(t, Options{}, appRoute(be))
	c := &http.Client{}
	defer c.CloseIdleConnections()
	for _, tt := range []struct {
		method, path string
		code         int
		body         string
	}{
		{http.MethodHead, "/", 200, ""},
		{http.MethodGet, "/204", 204, ""},
		{http.MethodGet, "/304", 304, ""},
		{http.MethodGet, "/", 200, "hello"},
	} {
		r := do(t, c, addr, tt.method, "app.test", tt.path, nil)
		if r.code != tt.code || r.body != tt.body {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.path, r.code, r.body, tt.code, tt.body)
		}
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("the backend accepted %d connections, want 1", n)
	}
}
