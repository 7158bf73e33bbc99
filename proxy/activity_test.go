package proxy

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// TestActivityUntilTheEnd: an app's last request is the end of its last
// request, and now while one is in flight, so that an idle timer never
// puts an app to sleep under a request longer than its timeout.
func TestActivityUntilTheEnd(t *testing.T) {
	got, release := make(chan struct{}), make(chan struct{})
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(got)
		<-release
		io.WriteString(w, "done")
	})
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{be}, TrackActivity: true})
	answered := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+addr+"/slow", nil)
		req.Host = "app.test"
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		answered <- err
	}()
	<-got
	during := time.Now()
	if last, _ := s.LastRequest("app"); last.Before(during) {
		t.Errorf("with a request in flight, the last request is %v, before %v: the app looks idle", last, during)
	}
	beforeEnd := time.Now()
	close(release)
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	// The request's end, or now while its handler is still returning.
	if last, _ := s.LastRequest("app"); last.Before(beforeEnd) {
		t.Errorf("after the request, the last request is %v, before its end (after %v)", last, beforeEnd)
	}
}

// TestMarkActive: an app's idle time counts from when its instances
// started (MarkActive), not from when its route was made.
func TestMarkActive(t *testing.T) {
	s, _ := startProxy(t, Options{},
		Route{App: "app", Hosts: []string{"app.test"}, TrackActivity: true},
		Route{App: "plain", Hosts: []string{"plain.test"}})
	made, _ := s.LastRequest("app")
	started := time.Now()
	if !started.After(made) {
		t.Skip("the clock did not move between the route and now") // the comparison below would say nothing
	}
	s.MarkActive("app")
	if last, _ := s.LastRequest("app"); last.Before(started) {
		t.Errorf("last activity %v, before the instances started (%v)", last, started)
	}
	s.MarkActive("plain") // does not track its activity: nothing to do
	if _, ok := s.LastRequest("plain"); ok {
		t.Error("MarkActive made a route track its activity")
	}
}
