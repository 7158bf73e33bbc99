package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
)

// TestStoppedAccepting: once Run's context ends, StoppedAccepting closes
// when no new connection is accepted any more, while a request in flight
// still gets its answer; with both HTTP/1.1 servers and with a connection
// bound.
func TestStoppedAccepting(t *testing.T) {
	for _, tc := range []struct {
		name     string
		netHTTP1 bool
		maxConns int
	}{
		{"h1server", false, 0},
		{"net/http", true, 0},
		{"h1server with MaxConns", false, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, release := make(chan struct{}), make(chan struct{})
			be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
				close(got)
				<-release
				io.WriteString(w, "answered")
			})
			s := New(Options{HTTPAddr: "127.0.0.1:0", NetHTTP1: tc.netHTTP1, MaxConns: tc.maxConns,
				Logger: slog.New(slog.DiscardHandler)})
			s.SetRoute(Route{App: "a", Hosts: []string{"a.test"}, Backends: []string{be}})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			<-s.Ready()
			addr, _ := s.Addrs()

			type result struct {
				body string
				err  error
			}
			res := make(chan result, 1)
			go func() {
				req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
				req.Host = "a.test"
				resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
				if err != nil {
					res <- result{err: err}
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				res <- result{string(b), err}
			}()
			<-got
			select {
			case <-s.StoppedAccepting():
				t.Fatal("StoppedAccepting closed while Run serves")
			default:
			}
			cancel()
			<-s.StoppedAccepting()
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				t.Error("a new connection was accepted after StoppedAccepting")
			}
			close(release)
			if r := <-res; r.err != nil || r.body != "answered" {
				t.Errorf("request in flight: %q, %v", r.body, r.err)
			}
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
}
