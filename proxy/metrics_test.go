package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that writes down every event as a line; done
// gets one token per finished request.
type recorder struct {
	mu     sync.Mutex
	events []string
	done   chan struct{}
	conns  chan int // +1 opened, -1 closed
}

func newRecorder() *recorder {
	return &recorder{done: make(chan struct{}, 100), conns: make(chan int, 100)}
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// take waits for n finished requests and returns the events so far,
// clearing them.
func (r *recorder) take(n int) []string {
	for range n {
		<-r.done
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

func (r *recorder) App(app string) AppObserver { return recApp{r, app} }
func (r *recorder) ConnOpened()                { r.conns <- 1 }
func (r *recorder) ConnClosed()                { r.conns <- -1 }

type recApp struct {
	r   *recorder
	app string
}

func (a recApp) Started() { a.r.add(a.app + " started") }
func (a recApp) Done(status int, d time.Duration, in, out int64) {
	if d <= 0 {
		a.r.add(a.app + " done without a duration")
	}
	a.r.add(fmt.Sprintf("%s done %d in=%d out=%d", a.app, status, in, out))
	a.r.done <- struct{}{}
}
func (a recApp) UpstreamFailed(e UpstreamError) { a.r.add(a.app + " upstream " + string(e)) }
func (a recApp) CacheLookup(hit bool)           { a.r.add(fmt.Sprintf("%s cache hit=%v", a.app, hit)) }
func (a recApp) ACLRefused()                    { a.r.add(a.app + " acl refused") }

func TestObserverSeesEveryRequest(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	ok := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/fail" {
			w.WriteHeader(500)
		}
		fmt.Fprintf(w, "got %d", len(b)) // "got N": 5 bytes for N < 10
	})
	hang := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	rec := newRecorder()
	s, addr := startProxy(t, Options{Observer: rec, ResponseHeaderTimeout: 100 * time.Millisecond},
		Route{App: "ok", Hosts: []string{"ok.test"}, Backends: []string{ok},
			Cache: &CacheConfig{Prefixes: []string{"/cached"}, Size: 1 << 20, Time: time.Hour, Any: time.Hour}},
		Route{App: "dead", Hosts: []string{"dead.test"}, Backends: []string{deadAddr(t)}},
		Route{App: "hang", Hosts: []string{"hang.test"}, Backends: []string{hang}},
		Route{App: "none", Hosts: []string{"none.test"}},
		Route{App: "acl", Hosts: []string{"acl.test"}, Backends: []string{ok}, CloudflareACL: true,
			AllowIPs: []string{"203.0.113.7"}},
	)
	tests := []struct {
		name, method, host, path, body string
		code                           int
		want                           []string
	}{
		{"ok", "POST", "ok.test", "/", "abcd", 200, []string{"ok started", "ok done 200 in=4 out=5"}},
		{"server error", "GET", "ok.test", "/fail", "", 500, []string{"ok started", "ok done 500 in=0 out=5"}},
		{"cache miss", "GET", "ok.test", "/cached", "", 200, []string{"ok started", "ok cache hit=false", "ok done 200 in=0 out=5"}},
		{"cache hit", "GET", "ok.test", "/cached", "", 200, []string{"ok started", "ok cache hit=true", "ok done 200 in=0 out=5"}},
		{"refused", "GET", "dead.test", "/", "", 502, []string{"dead started", "dead upstream refused", "dead done 502 in=0 out=0"}},
		{"no backend", "GET", "none.test", "/", "", 502, []string{"none started", "none upstream refused", "none done 502 in=0 out=0"}},
		{"timeout", "GET", "hang.test", "/", "", 504, []string{"hang started", "hang upstream timeout", "hang done 504 in=0 out=0"}},
		{"no app", "GET", "nobody.test", "/", "", 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			r := do(t, nil, addr, tt.method, tt.host, tt.path, body)
			if r.code != tt.code {
				t.Fatalf("%d %q, want %d", r.code, r.body, tt.code)
			}
			n := 1
			if tt.want == nil {
				n = 0
			}
			got := rec.take(n)
			// Error pages have a body of their own: compare its size too.
			for i, w := range tt.want {
				if strings.HasSuffix(w, "out=0") && tt.code >= 400 && tt.code != 500 {
					tt.want[i] = strings.TrimSuffix(w, "out=0") + fmt.Sprintf("out=%d", len(r.body))
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	t.Run("acl", func(t *testing.T) {
		req := httptest.NewRequest("GET", "http://acl.test/", nil)
		req.RemoteAddr = "8.8.8.8:1234"
		w := httptest.NewRecorder()
		s.serve(w, req, false, "80")
		want := []string{"acl started", "acl acl refused", fmt.Sprintf("acl done 403 in=0 out=%d", w.Body.Len())}
		if got := rec.take(1); w.Code != 403 || !slices.Equal(got, want) {
			t.Errorf("%d, events:\n%s\nwant 403 and:\n%s", w.Code, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	// Each do above used a connection of its own and closed it.
	open := 0
	for range 2 * len(tests) {
		open += <-rec.conns
	}
	if open != 0 {
		t.Errorf("%d connections left open, want 0", open)
	}
}
