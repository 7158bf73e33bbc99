package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// onNetHTTP1 reports whether the suite runs on net/http's HTTP/1.1
// server (Options.NetHTTP1) instead of piku's: PIKU_TEST_NETHTTP1=1, as
// `make test` runs it a second time.
func onNetHTTP1() bool { return os.Getenv("PIKU_TEST_NETHTTP1") == "1" }

// pikuServerOnly skips a test of what piku's own HTTP/1.1 server does
// unlike net/http's when the suite runs on net/http's, saying why.
func pikuServerOnly(t testing.TB, why string) {
	t.Helper()
	if onNetHTTP1() {
		t.Skip("piku's HTTP/1.1 server only: " + why)
	}
}

// startProxy runs a Server on a loopback port until the test ends.
func startProxy(t testing.TB, o Options, routes ...Route) (*Server, string) {
	t.Helper()
	o.HTTPAddr = "127.0.0.1:0"
	if onNetHTTP1() {
		o.NetHTTP1 = true
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.TempDir == "" {
		o.TempDir = filepath.Join(t.TempDir(), "proxy-temp")
	}
	s := New(o)
	for _, r := range routes {
		s.SetRoute(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	addr, _ := s.Addrs()
	return s, addr
}

// backendServer starts an HTTP server answering with h and returns its
// address.
func backendServer(t testing.TB, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// named answers with its name.
func named(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

type resp struct {
	code   int
	header http.Header
	body   string
}

// do sends method path with Host host to the proxy at addr.
func do(t testing.TB, c *http.Client, addr, method, host, path string, body io.Reader, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if c == nil {
		c = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		defer c.CloseIdleConnections()
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s %s: %v", method, host, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, string(b)}
}

// rawRequest writes req on a new connection to addr and returns the
// status line and the rest of the response.
func rawRequest(t testing.TB, addr, req string) string {
	t.Helper()
	c := dialWrite(t, addr, req)
	defer c.Close()
	b, _ := io.ReadAll(c)
	return string(b)
}

// dialWrite writes req on a new connection to addr and returns the
// connection.
func dialWrite(t testing.TB, addr, req string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}

func statusOf(raw string) string {
	line, _, _ := strings.Cut(raw, "\r\n")
	return line
}
