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
