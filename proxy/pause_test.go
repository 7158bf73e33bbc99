package proxy

import (
	"context"
	"net/http"
	"sync"
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

// TestHoldReleaseInBursts: held requests go on holdBurst at a time (each
// keeps its place until it ends, or the pace passes), not all at once
// into an instance that has just started.
func TestHoldReleaseInBursts(t *testing.T) {
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.Write([]byte("web"))
	})
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}})
	var releaseAll sync.Once
	t.Cleanup(func() { releaseAll.Do(func() { close(release) }) }) // before the proxy's and the backend's
	s.Hold("app")
	s.mu.Lock()
	s.holds["app"].pace = time.Hour // a place is kept until the request ends
	s.mu.Unlock()
	const n = holdBurst + 2
	var results []<-chan heldResult
	for range n {
		results = append(results, sendHeld(context.Background(), addr, "GET", "app.test", "", false))
	}
	waitHeld(t, s, "app", n)
	s.SetBackends("app", []string{be})
	for range holdBurst {
		<-arrived
	}
	// The others wait for a place (a request beyond the burst reaching
	// the backend fails the test at once).
	for {
		if got := len(arrived); got != 0 {
			t.Fatalf("%d more requests reached the backend than the burst of %d", got, holdBurst)
		}
		if _, w := s.Held("app"); w == n-holdBurst {
			break
		}
		time.Sleep(time.Millisecond)
	}
	release <- struct{}{} // one ends: one more goes on
	<-arrived
	waitHeld(t, s, "app", n-holdBurst-1)
	releaseAll.Do(func() { close(release) })
	for _, res := range results {
		if r := <-res; r.code != 200 {
			t.Fatalf("got %d %v", r.code, r.err)
		}
	}
	s.Release("app")
}
