package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// heldResult is what a request sent by sendHeld got.
type heldResult struct {
	code  int
	retry string
	body  string
	err   error
}

// sendHeld sends method / to host at addr in a goroutine (the request is
// expected to wait) and returns where its result will arrive. chunked
// hides the body's length.
func sendHeld(ctx context.Context, addr, method, host, body string, chunked bool) <-chan heldResult {
	out := make(chan heldResult, 1)
	go func() {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
			if chunked {
				rd = io.MultiReader(rd) // no known length: sent chunked
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+"/", rd)
		if err != nil {
			out <- heldResult{err: err}
			return
		}
		req.Host = host
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		res, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			out <- heldResult{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		out <- heldResult{code: res.StatusCode, retry: res.Header.Get("Retry-After"), body: string(b), err: err}
	}()
	return out
}

// waitHeld polls until n of app's requests wait: the queue offers no
// event to wait on, and the test's own timeout bounds the wait.
func waitHeld(t *testing.T, s *Server, app string, n int) {
	t.Helper()
	for {
		if _, w := s.Held(app); w == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// refused waits for res, a request sent while n of app's requests wait,
// and fails the test as soon as the request joins the queue instead.
func refused(t *testing.T, s *Server, app string, n int, res <-chan heldResult) heldResult {
	t.Helper()
	for {
		select {
		case r := <-res:
			return r
		default:
		}
		if _, w := s.Held(app); w > n {
			t.Fatalf("the request joined the queue of %d", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// echoBody answers with the request's body, prefixed with name.
func echoBody(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s:%s", name, b)
	}
}

func TestHoldServesWhenBackendsArrive(t *testing.T) {
	be := backendServer(t, echoBody("web"))
	for _, tc := range []struct {
		name, method, body string
		chunked            bool
	}{
		{"get", "GET", "", false},
		{"post", "POST", "hello", false},
		{"chunked post", "POST", "chunked hello", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}})
			s.Hold("app")
			res := sendHeld(context.Background(), addr, tc.method, "app.test", tc.body, tc.chunked)
			waitHeld(t, s, "app", 1)
			s.SetBackends("app", []string{be})
			r := <-res
			if r.err != nil || r.code != 200 || r.body != "web:"+tc.body {
				t.Fatalf("got %d %q %v; want 200 %q", r.code, r.body, r.err, "web:"+tc.body)
			}
			if _, w := s.Held("app"); w != 0 {
				t.Fatalf("%d requests still wait", w)
			}
			// The hold stays: the app still held, requests pass while it
			// has backends.
			if held, _ := s.Held("app"); !held {
				t.Fatal("the hold ended with the backends' arrival")
			}
			if r := <-sendHeld(context.Background(), addr, "GET", "app.test", "", false); r.code != 200 {
				t.Fatalf("request to a held app with backends: %d %v", r.code, r.err)
			}
		})
	}
}

// A request to an app that is not held and has no backend fails at once,
// as before.
func TestNotHeldFailsAtOnce(t *testing.T) {
	_, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}})
	if r := <-sendHeld(context.Background(), addr, "GET", "app.test", "", false); r.code != http.StatusBadGateway {
		t.Fatalf("got %d %v, want 502", r.code, r.err)
	}
}

func TestHoldReleaseWithoutBackends(t *testing.T) {
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}})
	s.Hold("app")
	res := sendHeld(context.Background(), addr, "GET", "app.test", "", false)
	waitHeld(t, s, "app", 1)
	s.Release("app")
	r := <-res
	if r.code != http.StatusServiceUnavailable || r.retry == "" {
		t.Fatalf("got %d Retry-After %q %v; want 503 with Retry-After", r.code, r.retry, r.err)
	}
	if held, _ := s.Held("app"); held {
		t.Fatal("still held after Release")
	}
}

// The release of a held app with backends serves its waiting requests.
func TestHoldReleaseServes(t *testing.T) {
	be := backendServer(t, named("web"))
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}})
	s.Hold("app")
	res := sendHeld(context.Background(), addr, "GET", "app.test", "", false)
	waitHeld(t, s, "app", 1)
	s.mu.Lock()
	s.backendsOf["app"] = []string{be} // backends set behind the queue's back
	s.mu.Unlock()
	s.Release("app")
	if r := <-res; r.code != 200 || r.body != "web" {
		t.Fatalf("got %d %q %v", r.code, r.body, r.err)
	}
}

// The time bound: a request waits Hold.Timeout, then gets a 503.
func TestHoldTimeoutBound(t *testing.T) {
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Hold: HoldConfig{Timeout: 20 * time.Millisecond}})
	s.Hold("app")
	r := <-sendHeld(context.Background(), addr, "GET", "app.test", "", false)
	if r.code != http.StatusServiceUnavailable || r.retry != "5" {
		t.Fatalf("got %d Retry-After %q %v; want 503 with Retry-After 5", r.code, r.retry, r.err)
	}
	if _, w := s.Held("app"); w != 0 {
		t.Fatalf("%d requests still wait", w)
	}
}

// The request bound: beyond Hold.Requests waiting, a request gets a 503
// at once; those waiting are served when the backends come.
func TestHoldRequestsBound(t *testing.T) {
	be := backendServer(t, named("web"))
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Hold: HoldConfig{Requests: 2}})
	s.Hold("app")
	a := sendHeld(context.Background(), addr, "GET", "app.test", "", false)
	b := sendHeld(context.Background(), addr, "GET", "app.test", "", false)
	waitHeld(t, s, "app", 2)
	if r := refused(t, s, "app", 2, sendHeld(context.Background(), addr, "GET", "app.test", "", false)); r.code != http.StatusServiceUnavailable || r.retry == "" {
		t.Fatalf("third request: %d Retry-After %q %v; want 503", r.code, r.retry, r.err)
	}
	s.SetBackends("app", []string{be})
	for _, res := range []<-chan heldResult{a, b} {
		if r := <-res; r.code != 200 || r.body != "web" {
			t.Fatalf("held request: %d %q %v", r.code, r.body, r.err)
		}
	}
}

// The byte bound: bodies of held requests are buffered together up to
// Hold.BodyBytes; a body beyond gets a 503, with a length or chunked.
func TestHoldBodyBytesBound(t *testing.T) {
	be := backendServer(t, echoBody("web"))
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Hold: HoldConfig{BodyBytes: 10}})
	s.Hold("app")
	first := sendHeld(context.Background(), addr, "POST", "app.test", "12345678", false)
	waitHeld(t, s, "app", 1)
	for _, chunked := range []bool{false, true} {
		r := refused(t, s, "app", 1, sendHeld(context.Background(), addr, "POST", "app.test", "abcde", chunked))
		if r.code != http.StatusServiceUnavailable || r.retry == "" {
			t.Fatalf("body beyond the bound (chunked %v): %d %q %v; want 503", chunked, r.code, r.body, r.err)
		}
	}
	fits := sendHeld(context.Background(), addr, "POST", "app.test", "ab", true)
	waitHeld(t, s, "app", 2)
	s.SetBackends("app", []string{be})
	for res, want := range map[<-chan heldResult]string{first: "web:12345678", fits: "web:ab"} {
		if r := <-res; r.code != 200 || r.body != want {
			t.Fatalf("got %d %q %v; want %q", r.code, r.body, r.err, want)
		}
	}
	s.mu.Lock()
	h := s.holds["app"]
	s.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bytes != 0 {
		t.Fatalf("%d body bytes still counted after the requests were served", h.bytes)
	}
}

// A client that goes away leaves the queue: its place and its body's
// bytes are free for the next.
func TestHoldClientGone(t *testing.T) {
	be := backendServer(t, echoBody("web"))
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Hold: HoldConfig{Requests: 1, BodyBytes: 10}})
	s.Hold("app")
	ctx, cancel := context.WithCancel(context.Background())
	gone := sendHeld(ctx, addr, "POST", "app.test", "12345678", false)
	waitHeld(t, s, "app", 1)
	cancel()
	<-gone
	waitHeld(t, s, "app", 0)
	next := sendHeld(context.Background(), addr, "POST", "app.test", "abcdefgh", false)
	waitHeld(t, s, "app", 1)
	s.SetBackends("app", []string{be})
	if r := <-next; r.code != 200 || r.body != "web:abcdefgh" {
		t.Fatalf("got %d %q %v", r.code, r.body, r.err)
	}
}

// One app's held requests never delay another's: app a's queue is full
// and waits, while b (held) is served when its backends come and c (not
// held) at once.
func TestHoldAppsIndependent(t *testing.T) {
	be := backendServer(t, named("b"))
	ce := backendServer(t, named("c"))
	s, addr := startProxy(t, Options{},
		Route{App: "a", Hosts: []string{"a.test"}, Hold: HoldConfig{Requests: 1}},
		Route{App: "b", Hosts: []string{"b.test"}},
		Route{App: "c", Hosts: []string{"c.test"}, Backends: []string{ce}})
	s.Hold("a")
	s.Hold("b")
	a := sendHeld(context.Background(), addr, "GET", "a.test", "", false)
	b := sendHeld(context.Background(), addr, "GET", "b.test", "", false)
	waitHeld(t, s, "a", 1)
	waitHeld(t, s, "b", 1)
	if r := <-sendHeld(context.Background(), addr, "GET", "c.test", "", false); r.code != 200 || r.body != "c" {
		t.Fatalf("c: %d %q %v", r.code, r.body, r.err)
	}
	s.SetBackends("b", []string{be})
	if r := <-b; r.code != 200 || r.body != "b" {
		t.Fatalf("b: %d %q %v", r.code, r.body, r.err)
	}
	select {
	case r := <-a:
		t.Fatalf("a answered %d while it had no backend", r.code)
	default:
	}
	s.Release("a")
	if r := <-a; r.code != http.StatusServiceUnavailable {
		t.Fatalf("a: %d %v; want 503", r.code, r.err)
	}
}

// A held WebSocket upgrade waits like any request, then switches.
func TestHoldWebSocket(t *testing.T) {
	ws := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw)
	})
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}})
	s.Hold("app")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	waitHeld(t, s, "app", 1)
	s.SetBackends("app", []string{ws})
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 101 {
		t.Fatalf("status %d", res.StatusCode)
	}
	io.WriteString(c, "hello\n")
	if got, err := br.ReadString('\n'); err != nil || got != "hello\n" {
		t.Fatalf("echo %q, %v", got, err)
	}
}

func TestHoldFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want HoldConfig
		err  string
	}{
		{env: nil, want: HoldConfig{}},
		{env: map[string]string{"PIKU_HOLD_TIMEOUT": "45"}, want: HoldConfig{Timeout: 45 * time.Second}},
		{env: map[string]string{"PIKU_HOLD_TIMEOUT": "2m", "PIKU_HOLD_REQUESTS": "10", "PIKU_HOLD_BODY_BYTES": "4096"},
			want: HoldConfig{Timeout: 2 * time.Minute, Requests: 10, BodyBytes: 4096}},
		{env: map[string]string{"PIKU_HOLD_TIMEOUT": "soon"}, err: "PIKU_HOLD_TIMEOUT"},
		{env: map[string]string{"PIKU_HOLD_TIMEOUT": "0"}, err: "PIKU_HOLD_TIMEOUT"},
		{env: map[string]string{"PIKU_HOLD_REQUESTS": "-1"}, err: "PIKU_HOLD_REQUESTS"},
		{env: map[string]string{"PIKU_HOLD_BODY_BYTES": "lots"}, err: "PIKU_HOLD_BODY_BYTES"},
	} {
		r, err := RouteFromEnv("app", "/app", tc.env)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: err %v, want one naming %s", tc.env, err, tc.err)
			}
			continue
		}
		if err != nil || r.Hold != tc.want {
			t.Errorf("%v: %+v %v, want %+v", tc.env, r.Hold, err, tc.want)
		}
	}
}

func TestParseSeconds(t *testing.T) {
	for in, want := range map[string]time.Duration{"0": 0, "30": 30 * time.Second, "15m": 15 * time.Minute, " 1h30m ": 90 * time.Minute} {
		if got, err := ParseSeconds(in); err != nil || got != want {
			t.Errorf("ParseSeconds(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-5", "-1s", "99999999999"} {
		if _, err := ParseSeconds(in); err == nil {
			t.Errorf("ParseSeconds(%q): no error", in)
		}
	}
}

// A request that starts waiting asks for the app to be woken; an ACME
// challenge neither waits nor wakes, nor counts as the app's activity.
func TestHoldWakeAndActivity(t *testing.T) {
	be := backendServer(t, named("web"))
	woken := make(chan string, 10)
	s, addr := startProxy(t, Options{Wake: func(app string) { woken <- app }},
		Route{App: "app", Hosts: []string{"app.test"}, TrackActivity: true},
		Route{App: "plain", Hosts: []string{"plain.test"}, Backends: []string{be}})
	if _, ok := s.LastRequest("plain"); ok {
		t.Fatal("activity tracked for a route without TrackActivity")
	}
	since, ok := s.LastRequest("app")
	if !ok {
		t.Fatal("no activity tracked")
	}
	s.Hold("app")
	acme, err := http.NewRequest("GET", "http://"+addr+"/.well-known/acme-challenge/token", nil)
	if err != nil {
		t.Fatal(err)
	}
	acme.Host = "app.test"
	res, err := http.DefaultClient.Do(acme)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == 200 || len(woken) != 0 {
		t.Fatalf("ACME challenge: %d, %d wakes", res.StatusCode, len(woken))
	}
	if last, _ := s.LastRequest("app"); !last.Equal(since) {
		t.Fatalf("an ACME challenge counted as activity: %v, was %v", last, since)
	}
	held := sendHeld(context.Background(), addr, "GET", "app.test", "", false)
	if app := <-woken; app != "app" {
		t.Fatalf("woke %q", app)
	}
	if last, _ := s.LastRequest("app"); !last.After(since) {
		t.Fatalf("last request %v, not after %v", last, since)
	}
	s.SetBackends("app", []string{be})
	if r := <-held; r.code != 200 {
		t.Fatalf("held: %d %v", r.code, r.err)
	}
}

// A held request whose app comes up on a backend that refuses it (a wake
// that failed) gets a 503, as when a bound runs out, not a 502.
func TestHoldBackendRefuses(t *testing.T) {
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}})
	s.Hold("app")
	res := sendHeld(context.Background(), addr, "GET", "app.test", "", false)
	waitHeld(t, s, "app", 1)
	s.SetBackends("app", []string{deadAddr(t)})
	if r := <-res; r.code != http.StatusServiceUnavailable || r.retry == "" {
		t.Fatalf("got %d Retry-After %q %v; want 503", r.code, r.retry, r.err)
	}
}

// A proxy that shuts down answers its held requests 503 at once, instead
// of keeping the shutdown waiting for their hold time.
func TestHoldShutdown(t *testing.T) {
	s := New(Options{HTTPAddr: "127.0.0.1:0", ShutdownTimeout: time.Hour})
	s.SetRoute(Route{App: "app", Hosts: []string{"app.test"}, Hold: HoldConfig{Timeout: time.Hour}})
	s.Hold("app")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	addr, _ := s.Addrs()
	res := sendHeld(context.Background(), addr, "GET", "app.test", "", false)
	waitHeld(t, s, "app", 1)
	cancel()
	if r := <-res; r.code != http.StatusServiceUnavailable || r.retry == "" {
		t.Fatalf("got %d Retry-After %q %v; want 503", r.code, r.retry, r.err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
