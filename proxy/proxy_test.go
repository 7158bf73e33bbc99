package proxy

import (
	"bufio"
	"context"
	"encoding/json"
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

func TestHostRouting(t *testing.T) {
	a := backendServer(t, named("a"))
	b := backendServer(t, named("b"))
	c := backendServer(t, named("c"))
	_, addr := startProxy(t, Options{},
		Route{App: "a", Hosts: []string{"example.com", "www.example.com"}, Backends: []string{a}},
		Route{App: "b", Hosts: []string{"*.example.org"}, Backends: []string{b}},
		Route{App: "c", Hosts: []string{"x.example.org", "*.deep.example.org"}, Backends: []string{c}},
	)
	tests := []struct {
		host string
		code int
		body string
	}{
		{"example.com", 200, "a"},
		{"EXAMPLE.com:8080", 200, "a"},
		{"www.example.com.", 200, "a"},
		{"foo.example.org", 200, "b"},
		{"x.example.org", 200, "c"},       // exact beats wildcard
		{"y.deep.example.org", 200, "c"},  // longest wildcard wins
		{"a.b.example.org", 200, "b"},     // wildcards match any depth
		{"example.org", 404, "no app"},    // a wildcard is not its apex
		{"other.com", 404, "no app"},      // unknown host
		{"127.0.0.1", 404, "no app"},      // by address
		{"notexample.com", 404, "no app"}, // no suffix match without a dot
		{"evil.example.com.org", 404, "no app"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			r := do(t, nil, addr, "GET", tt.host, "/", nil)
			if r.code != tt.code || !strings.Contains(r.body, tt.body) {
				t.Errorf("%s: %d %q, want %d %q", tt.host, r.code, r.body, tt.code, tt.body)
			}
			if r.header.Get("X-Deployed-By") != "Piku" {
				t.Errorf("X-Deployed-By = %q", r.header.Get("X-Deployed-By"))
			}
		})
	}
}

func TestRoundRobin(t *testing.T) {
	a := backendServer(t, named("a"))
	b := backendServer(t, named("b"))
	_, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{a, b}})
	count := map[string]int{}
	for range 10 {
		count[do(t, nil, addr, "GET", "app.test", "/", nil).body]++
	}
	if count["a"] != 5 || count["b"] != 5 {
		t.Errorf("requests per backend = %v, want 5 each", count)
	}
}

func TestDeadBackendRetried(t *testing.T) {
	live := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "live %s %s", r.Method, b)
	})
	dead := deadAddr(t)
	s, addr := startProxy(t, Options{DownFor: time.Hour}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{dead, live}})
	for i := range 4 {
		r := do(t, nil, addr, "POST", "app.test", "/", strings.NewReader(fmt.Sprint("body", i)))
		if r.code != 200 || r.body != fmt.Sprintf("live POST body%d", i) {
			t.Fatalf("request %d: %d %q", i, r.code, r.body)
		}
	}
	s.mu.Lock()
	down := s.backends[dead].down(time.Now())
	s.mu.Unlock()
	if !down {
		t.Error("the dead backend is not marked down")
	}
}

func TestErrorPages(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	_, addr := startProxy(t, Options{ResponseHeaderTimeout: 100 * time.Millisecond},
		Route{App: "dead", Hosts: []string{"dead.test"}, Backends: []string{deadAddr(t), deadAddr(t)}},
		Route{App: "none", Hosts: []string{"none.test"}},
		Route{App: "hang", Hosts: []string{"hang.test"}, Backends: []string{hang}},
	)
	for _, tt := range []struct {
		host string
		code int
	}{{"dead.test", 502}, {"none.test", 502}, {"hang.test", 504}} {
		r := do(t, nil, addr, "GET", tt.host, "/", nil)
		if r.code != tt.code || !strings.Contains(r.body, fmt.Sprint(tt.code)) || r.header.Get("X-Deployed-By") != "Piku" {
			t.Errorf("%s: %d %q %v, want %d page", tt.host, r.code, r.body, r.header, tt.code)
		}
	}
}

func TestForwardedHeaders(t *testing.T) {
	echo := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		h := map[string]string{"Host": r.Host}
		for k := range r.Header {
			h[k] = r.Header.Get(k)
		}
		json.NewEncoder(w).Encode(h)
	})
	_, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{echo}})
	// Every header a client could spoof, in lower case: none may reach
	// the backend beside (or instead of) what the proxy sets.
	spoof := []string{"cf-connecting-ip", "6.6.6.6"}
	for _, k := range spoofable {
		spoof = append(spoof, strings.ToLower(k), "6.6.6.6")
	}
	r := do(t, nil, addr, "GET", "app.test:8080", "/", nil, spoof...)
	var got map[string]string
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err, r.body)
	}
	_, port, _ := net.SplitHostPort(addr)
	want := map[string]string{
		"Host":               "app.test:8080",
		"X-Forwarded-For":    "127.0.0.1",
		"X-Real-Ip":          "127.0.0.1",
		"X-Remote-Address":   "127.0.0.1",
		"X-Forwarded-Proto":  "http",
		"X-Forwarded-Host":   "app.test:8080",
		"X-Forwarded-Port":   port,
		"Forwarded":          "",
		"Cf-Connecting-Ip":   "",
		"X-Forwarded-Ssl":    "",
		"X-Forwarded-Scheme": "",
		"X-Client-Ip":        "",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if start := got["X-Request-Start"]; !strings.HasPrefix(start, "t=") || start == "t=1" || len(start) < 12 {
		t.Errorf("X-Request-Start = %q", start)
	}
	if r.header.Get("X-Deployed-By") != "Piku" {
		t.Error("no X-Deployed-By")
	}
}

func TestCloudflareACL(t *testing.T) {
	echo := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Header.Get("X-Forwarded-For"), "|", r.Header.Get("X-Real-IP"))
	})
	s := New(Options{})
	s.SetRoute(Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{echo}, CloudflareACL: true,
		AllowIPs: []string{"203.0.113.7", "198.51.100.0/24"}})
	s.SetRoute(Route{App: "open", Hosts: []string{"open.test"}, Backends: []string{echo}})
	tests := []struct {
		host, peer, cf string
		code           int
		body           string
	}{
		{"app.test", "8.8.8.8:1234", "", 403, ""},
		{"app.test", "[2001:db8::1]:1234", "", 403, ""},
		{"app.test", "127.0.0.1:1234", "", 200, "127.0.0.1|127.0.0.1"},
		{"app.test", "203.0.113.7:1234", "", 200, "203.0.113.7|203.0.113.7"},
		{"app.test", "198.51.100.9:1234", "9.9.9.9", 200, "198.51.100.9|198.51.100.9"}, // not Cloudflare: CF header ignored
		{"app.test", "173.245.48.1:1234", "9.9.9.9", 200, "9.9.9.9, 173.245.48.1|9.9.9.9"},
		{"app.test", "[2606:4700::1]:1234", "2001:db8::2", 200, "2001:db8::2, 2606:4700::1|2001:db8::2"},
		{"open.test", "8.8.8.8:1234", "9.9.9.9", 200, "8.8.8.8|8.8.8.8"},
	}
	for _, tt := range tests {
		t.Run(tt.host+" "+tt.peer, func(t *testing.T) {
			req := httptest.NewRequest("GET", "http://"+tt.host+"/", nil)
			req.RemoteAddr = tt.peer
			if tt.cf != "" {
				req.Header.Set("CF-Connecting-IP", tt.cf)
			}
			w := httptest.NewRecorder()
			s.serve(w, req, false, "80")
			if w.Code != tt.code || tt.body != "" && w.Body.String() != tt.body {
				t.Errorf("%d %q, want %d %q", w.Code, w.Body.String(), tt.code, tt.body)
			}
		})
	}
}

func TestHTTPSOnly(t *testing.T) {
	b := backendServer(t, named("app"))
	_, addr := startProxy(t, Options{HTTPSAddr: "127.0.0.1:8443"},
		Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{b}, HTTPSOnly: true})
	r := do(t, nil, addr, "GET", "app.test:80", "/a/b?c=d", nil)
	if r.code != 301 || r.header.Get("Location") != "https://app.test:8443/a/b?c=d" {
		t.Errorf("%d Location %q", r.code, r.header.Get("Location"))
	}
	r = do(t, nil, addr, "GET", "app.test", "/.well-known/acme-challenge/tok", nil)
	if r.code != 200 || r.body != "app" {
		t.Errorf("challenge: %d %q, want it passed through", r.code, r.body)
	}
}

func TestWebSocket(t *testing.T) {
	ws := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw) // echo
	})
	_, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{ws}})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 101 {
		t.Fatalf("status %d", res.StatusCode)
	}
	for _, msg := range []string{"hello\n", "again\n"} {
		io.WriteString(c, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != msg {
			t.Fatalf("echo %q, %v; want %q", got, err, msg)
		}
	}
}

func TestServerSentEventsFlushed(t *testing.T) {
	finish := make(chan struct{})
	sse := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select { // the client reads the first event before the second is sent
		case <-finish:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: two\n\n")
	})
	_, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{sse}})
	req, _ := http.NewRequest("GET", "http://"+addr+"/events", nil)
	req.Host = "app.test"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	close(finish)
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: two\n\n" {
		t.Errorf("rest %q", rest)
	}
}

func TestDrainWaitsForInFlight(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	slow := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		io.WriteString(w, "done")
	})
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{slow}})
	got := make(chan resp, 1)
	go func() { got <- do(t, nil, addr, "GET", "app.test", "/", nil) }()
	<-arrived
	if n := s.InFlight(slow); n != 1 {
		t.Fatalf("in flight = %d, want 1", n)
	}
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	if n := s.Drain(ended, []string{slow}); n != 1 {
		t.Errorf("Drain with its context ended reported %d requests in flight, want 1", n)
	}
	drained := make(chan struct{})
	go func() {
		s.Drain(t.Context(), []string{slow})
		close(drained)
	}()
	select {
	case <-drained:
		t.Fatal("Drain returned while a request was in flight")
	default:
	}
	close(release)
	<-drained
	if r := <-got; r.body != "done" {
		t.Errorf("body %q", r.body)
	}
	if n := s.InFlight(slow); n != 0 {
		t.Errorf("in flight after drain = %d", n)
	}
}

// TestRouteSwapUnderLoad swaps an app between two live backends while
// clients hammer it: no request may fail, and once Drain of the old backend
// returned, no request may reach it until it is routed to again. (Its
// in-flight count may blip while a request that read the old table picks
// again; what matters is where requests arrive.)
func TestRouteSwapUnderLoad(t *testing.T) {
	var drainedA, drainedB atomic.Bool
	var late atomic.Int64
	backend := func(name string, drained *atomic.Bool) string {
		return backendServer(t, func(w http.ResponseWriter, r *http.Request) {
			if drained.Load() {
				late.Add(1)
			}
			io.WriteString(w, name)
		})
	}
	a, b := backend("a", &drainedA), backend("b", &drainedB)
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{a}})
	var stop atomic.Bool
	var wg sync.WaitGroup
	var failures, total atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
				req.Host = "app.test"
				res, err := client.Do(req)
				total.Add(1)
				if err != nil {
					failures.Add(1)
					continue
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 || (string(body) != "a" && string(body) != "b") {
					failures.Add(1)
				}
			}
		})
	}
	for i := range 200 {
		to, from, toDrained, fromDrained := b, a, &drainedB, &drainedA
		if i%2 == 1 {
			to, from, toDrained, fromDrained = a, b, &drainedA, &drainedB
		}
		toDrained.Store(false)
		s.SetRoute(Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{to}})
		s.Drain(t.Context(), []string{from})
		fromDrained.Store(true)
	}
	stop.Store(true)
	wg.Wait()
	if n := late.Load(); n != 0 {
		t.Errorf("%d requests reached a backend after it was drained", n)
	}
	if failures.Load() != 0 {
		t.Errorf("%d of %d requests failed", failures.Load(), total.Load())
	}
}

func TestRemoveRoute(t *testing.T) {
	a := backendServer(t, named("a"))
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{a}})
	if r := do(t, nil, addr, "GET", "app.test", "/", nil); r.code != 200 {
		t.Fatalf("before: %d", r.code)
	}
	s.RemoveRoute("app")
	if r := do(t, nil, addr, "GET", "app.test", "/", nil); r.code != 404 {
		t.Fatalf("after: %d", r.code)
	}
}

// TestSlowAndOversizedClients: a client that never finishes its headers is
// cut off after ReadHeaderTimeout while others are served, and oversized
// headers get 431.
func TestSlowAndOversizedClients(t *testing.T) {
	back := backendServer(t, named("app"))
	_, addr := startProxy(t, Options{ReadHeaderTimeout: 200 * time.Millisecond, MaxHeaderBytes: 4 << 10},
		Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{back}})

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := slow.Write([]byte("GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: ")); err != nil {
		t.Fatal(err)
	}
	// Others are served while it hangs.
	if got := do(t, http.DefaultClient, addr, "GET", "app.test", "/", nil); got.code != 200 || got.body != "app" {
		t.Errorf("while a slow client hangs: %d %q", got.code, got.body)
	}
	// The proxy closes the slow connection by itself; the generous
	// deadline only keeps a broken proxy from hanging the test.
	_ = slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(slow); err != nil {
		t.Errorf("the slow connection was not closed by the proxy: %v", err)
	}

	big := strings.Repeat("x", 32<<10) // well past the limit (net/http allows 4 KiB of slack)
	if got := do(t, http.DefaultClient, addr, "GET", "app.test", "/", nil, "X-Big", big); got.code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized headers: %d, want 431", got.code)
	}
}
