package proxy

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestPauseHoldsWithBackends: a paused app's requests wait although it
// has backends, a hold that starts and ends meanwhile (a rollout's) does
// not end the pause, and Resume serves them.
func TestPauseHoldsWithBackends(t *testing.T) {
	be := backendServer(t, named("web"))
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{be}})
	s.Pause("app")
	res := sendHeld(context.Background(), addr, "GET", "app.test", "", false)
	waitHeld(t, s, "app", 1)
	s.Hold("app")
	s.Release("app")
	if held, n := s.Held("app"); !held || n != 1 {
		t.Fatalf("after a hold's release: held %v, %d waiting; want the pause to go on", held, n)
	}
	s.Resume("app")
	if r := <-res; r.code != 200 || r.body != "web" {
		t.Fatalf("got %d %q %v", r.code, r.body, r.err)
	}
	if held, _ := s.Held("app"); held {
		t.Fatal("still held after Resume")
	}
	if r := <-sendHeld(context.Background(), addr, "GET", "app.test", "", false); r.code != 200 {
		t.Fatalf("after Resume: %d %v", r.code, r.err)
	}
}

// TestPauseBounds: a paused app's requests get the 503 of the hold's time
// bound; a resume while the app is held and has no backend leaves its
// requests waiting for one.
func TestPauseBounds(t *testing.T) {
	be := backendServer(t, named("web"))
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{be}, Hold: HoldConfig{Timeout: 20 * time.Millisecond}})
	s.Pause("app")
	if r := <-sendHeld(context.Background(), addr, "GET", "app.test", "", false); r.code != http.StatusServiceUnavailable || r.retry == "" {
		t.Fatalf("paused past the time bound: %d Retry-After %q %v", r.code, r.retry, r.err)
	}

	s2, addr2 := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}})
	s2.Hold("app")
	s2.Pause("app")
	res := sendHeld(context.Background(), addr2, "GET", "app.test", "", false)
	waitHeld(t, s2, "app", 1)
	s2.Resume("app")
	if held, n := s2.Held("app"); !held || n != 1 {
		t.Fatalf("resumed while held without a backend: held %v, %d waiting", held, n)
	}
	s2.SetBackends("app", []string{be})
	if r := <-res; r.code != 200 || r.body != "web" {
		t.Fatalf("got %d %q %v", r.code, r.body, r.err)
	}
	s2.Release("app")
}
