package proxy

import (
	"net/http"
	"sync/atomic"
	"testing"
)

// TestNeverProxiesToItself routes an app to the proxy's own listener, as
// an app whose PORT is pinned to it would: the request must end in a 502
// at once instead of coming back into the proxy again and again until it
// runs out of file descriptors.
func TestNeverProxiesToItself(t *testing.T) {
	var entered atomic.Int64
	s, addr := startProxy(t, Options{HTTPWrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			entered.Add(1)
			h.ServeHTTP(w, r)
		})
	}})
	s.SetRoute(Route{App: "loop", Hosts: []string{"loop.test"}, Backends: []string{addr}})
	r := do(t, nil, addr, "GET", "loop.test", "/", nil)
	if r.code != http.StatusBadGateway {
		t.Errorf("got %d %q, want 502", r.code, r.body)
	}
	if n := entered.Load(); n != 1 {
		t.Errorf("the request went through the proxy %d times, want once", n)
	}
}
