package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rawBackend serves every connection it accepts with serve, given the
// connection's number (from 0); it returns its address.
func rawBackend(t *testing.T, serve func(n int, c *net.TCPConn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(n, c.(*net.TCPConn), bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().String()
}

// readRequest reads one request, body included, from br.
func readRequest(br *bufio.Reader) (*http.Request, string, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(req.Body)
	return req, string(b), err
}

// waitAcked waits until the peer of c acknowledged everything c sent (its
// FIN too, with fin): the bytes, or the close, are then in the proxy's
// receive queue, where a look at the idle connection finds them.
func waitAcked(t *testing.T, c *net.TCPConn, fin bool) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Error(err)
		return
	}
	for {
		var info *unix.TCPInfo
		var gerr error
		if err := rc.Control(func(fd uintptr) {
			info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		}); err != nil || gerr != nil {
			t.Error(err, gerr)
			return
		}
		if info.Unacked == 0 && (!fin || info.State == unix.BPF_TCP_FIN_WAIT2) {
			return
		}
		time.Sleep(time.Millisecond) // a kernel state: nothing to wait on
	}
}

// TestUpstreamPostAfterIdleClose is row 1 of the wire issue: a backend
// closes a keep-alive connection it finds idle (Node, uvicorn, gunicorn
// do after a few seconds); the next request, a POST, must not be sent on
// it and get a 502.
func TestUpstreamPostAfterIdleClose(t *testing.T) {
	for _, method := range []string{"POST", "PUT", "PATCH", "GET"} {
		t.Run(method, func(t *testing.T) {
			closed := make(chan struct{})
			be := rawBackend(t, func(n int, c *net.TCPConn, br *bufio.Reader) {
				_, body, err := readRequest(br)
				if err != nil {
					return
				}
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: %d\r\n\r\nconn %d %s", 7+len(body), n, body)
				if n == 0 {
					// The idle timeout: the backend closes its side.
					c.CloseWrite()
					waitAcked(t, c, true)
					close(closed)
				}
			})
			_, addr := startProxy(t, Options{}, appRoute(be))
			if r := do(t, nil, addr, "GET", "app.test", "/", nil); r.body != "conn 0 " {
				t.Fatalf("first request: %d %q", r.code, r.body)
			}
			<-closed
			r := do(t, nil, addr, method, "app.test", "/", strings.NewReader("form=1"))
			if r.code != 200 || r.body != "conn 1 form=1" {
				t.Fatalf("%s after the backend closed the idle connection: %d %q, want 200 from a new connection", method, r.code, r.body)
			}
		})
	}
}

// TestUpstreamRetryRule holds the retry to http.Transport's rule: a
// request that got no byte of answer on a reused connection is sent again
// on a new one only when it is idempotent (GET, HEAD, OPTIONS, TRACE, or
// an Idempotency-Key) and its body, if any, can go again whole. A POST
// whose body the backend read before it closed unanswered is not sent
// twice (a double charge): the client gets 502 and the backend saw it
// once.
func TestUpstreamRetryRule(t *testing.T) {
	for _, tt := range []struct {
		name, method, body string
		hdr                []string
		reset              bool // the backend resets instead of closing
		quiet              bool // the backend announces no Keep-Alive timeout
		want               int
		seen               int // how often the backend read the request
		pikuOnly           string
	}{
		{name: "GET closed", method: "GET", want: 200, seen: 2},
		{name: "GET reset", method: "GET", reset: true, want: 200, seen: 2},
		{name: "HEAD", method: "HEAD", want: 200, seen: 2},
		{name: "POST closed", method: "POST", body: "charge=1", want: 502, seen: 1},
		{name: "POST reset", method: "POST", body: "charge=1", reset: true, want: 502, seen: 1},
		{name: "DELETE", method: "DELETE", want: 502, seen: 1},
		{name: "POST with Idempotency-Key", method: "POST", hdr: []string{"Idempotency-Key", "k1"}, want: 200, seen: 2},
		// A backend that has not shown it keeps connections gets a
		// POST on a new one: the kept one is not risked.
		{name: "POST to a backend not known to keep connections", method: "POST", body: "charge=1", quiet: true, want: 200, seen: 1},
		{name: "POST with X-Idempotency-Key and a body", method: "POST", body: "charge=1", hdr: []string{"X-Idempotency-Key", "k1"}, want: 200, seen: 2,
			pikuOnly: "a body is sent again only when it came whole with its head, which net/http's server does not tell"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.pikuOnly != "" {
				pikuServerOnly(t, tt.pikuOnly)
			}
			var mu sync.Mutex
			seen := 0
			be := rawBackend(t, func(n int, c *net.TCPConn, br *bufio.Reader) {
				for i := 0; ; i++ {
					_, body, err := readRequest(br)
					if err != nil {
						return
					}
					if i > 0 || n > 0 {
						mu.Lock()
						seen++
						mu.Unlock()
					}
					if n == 0 && i == 1 {
						// The whole request read, and no answer.
						if tt.reset {
							c.SetLinger(0)
						}
						return
					}
					ka := "Keep-Alive: timeout=60\r\n"
					if tt.quiet {
						ka = ""
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\nconn %d %s", ka, 7+len(body), n, body)
				}
			})
			_, addr := startProxy(t, Options{}, appRoute(be))
			if r := do(t, nil, addr, "GET", "app.test", "/", nil); r.body != "conn 0 " {
				t.Fatalf("first request: %d %q", r.code, r.body)
			}
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			} else if tt.method == "POST" {
				body = strings.NewReader("")
			}
			r := do(t, nil, addr, tt.method, "app.test", "/", body, tt.hdr...)
			if r.code != tt.want {
				t.Errorf("%s: %d %q, want %d", tt.name, r.code, r.body, tt.want)
			}
			if tt.want == 200 && tt.method != "HEAD" && r.body != "conn 1 "+tt.body {
				t.Errorf("%s: body %q, want it from a new connection", tt.name, r.body)
			}
			mu.Lock()
			defer mu.Unlock()
			if seen != tt.seen {
				t.Errorf("the backend read the request %d times, want %d", seen, tt.seen)
			}
		})
	}
}

// TestUpstreamStrayBytesOnIdle is row 6: bytes a backend sends on an idle
// connection (a late answer, a body sent to HEAD) never reach the next
// client of the app: the connection is discarded.
func TestUpstreamStrayBytesOnIdle(t *testing.T) {
	answered, sent := make(chan struct{}), make(chan struct{})
	be := rawBackend(t, func(n int, c *net.TCPConn, br *bufio.Reader) {
		for i := 0; ; i++ {
			req, _, err := readRequest(br)
			if err != nil {
				return
			}
			if req.Method == "HEAD" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
				continue
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nconn %d", n)
			if n == 0 && i == 1 {
				// Once the answer went to the client: a body to the HEAD
				// before, and a late second answer.
				<-answered
				io.WriteString(c, "stale"+"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
				waitAcked(t, c, false)
				close(sent)
			}
		}
	})
	_, addr := startProxy(t, Options{}, appRoute(be))
	if r := do(t, nil, addr, "HEAD", "app.test", "/", nil); r.code != 200 {
		t.Fatalf("HEAD: %d", r.code)
	}
	if r := do(t, nil, addr, "GET", "app.test", "/", nil); r.body != "conn 0" {
		t.Fatalf("GET: %d %q", r.code, r.body)
	}
	close(answered)
	<-sent
	for i := range 2 {
		if r := do(t, nil, addr, "GET", "app.test", "/", nil); r.code != 200 || r.body != "conn 1" {
			t.Fatalf("request %d after stray bytes: %d %q, want the answer of a new connection", i, r.code, r.body)
		}
	}
}

// TestUpstreamSlowUpload is row 2: the request head reaches the backend
// before the body ends, and the response header timeout starts once the
// body was sent, so an upload slower than the timeout is answered.
func TestUpstreamSlowUpload(t *testing.T) {
	const timeout = 200 * time.Millisecond
	headSeen := make(chan struct{})
	be := rawBackend(t, func(n int, c *net.TCPConn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		close(headSeen)
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(b), b)
	})
	_, addr := startProxy(t, Options{ResponseHeaderTimeout: timeout}, streamingRoute(be))
	c := dialWrite(t, addr, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\n\r\nhello")
	defer c.Close()
	answer := make(chan string, 1)
	go func() {
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answer <- err.Error()
			return
		}
		b, _ := io.ReadAll(res.Body)
		answer <- "HTTP/1.1 " + res.Status + "\r\n" + string(b)
	}()
	select {
	case <-headSeen:
	case a := <-answer:
		t.Fatalf("answered before the backend saw the request: %q", statusOf(a))
	}
	// The upload goes on for longer than the header timeout: the time
	// itself is what is tested.
	time.Sleep(2 * timeout)
	io.WriteString(c, "world")
	if a := <-answer; statusOf(a) != "HTTP/1.1 200 OK" || !strings.HasSuffix(a, "helloworld") {
		t.Fatalf("slow upload: %q, want 200 helloworld", a)
	}
}

// TestUpstreamSwitchProtocols is row 3 (and row 5 for the fields): a 101
// is taken only when the request asked to switch and the answer names the
// protocol with "Connection: upgrade"; else 502, without the backend's
// fields, and the client's connection stays the proxy's: its next request
// is routed as any other.
func TestUpstreamSwitchProtocols(t *testing.T) {
	tests := []struct {
		name, req, answer, want string
	}{
		{"101 unasked", "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
			"HTTP/1.1 101 Switching Protocols\r\nSet-Cookie: evil=1\r\n\r\n", "HTTP/1.1 502 Bad Gateway"},
		{"101 with Upgrade, unasked", "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
			"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSet-Cookie: evil=1\r\n\r\n", "HTTP/1.1 502 Bad Gateway"},
		{"101 without Connection: upgrade", "GET / HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
			"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSet-Cookie: evil=1\r\n\r\n", "HTTP/1.1 502 Bad Gateway"},
		{"101 to another protocol", "GET / HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
			"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSet-Cookie: evil=1\r\n\r\n", "HTTP/1.1 502 Bad Gateway"},
		{"upgrade request with a body", "POST / HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 5\r\n\r\nhello",
			"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSet-Cookie: evil=1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := rawBackend(t, func(n int, c *net.TCPConn, br *bufio.Reader) {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, tt.answer)
				// What the client sends next must never come here.
				if b, _ := br.ReadString('\n'); b != "" {
					t.Errorf("the backend got the client's next bytes: %q", b)
				}
			})
			other := backendServer(t, named("other app"))
			_, addr := startProxy(t, Options{}, appRoute(be),
				Route{App: "other", Hosts: []string{"other.test"}, Backends: []string{other}})
			c := dialWrite(t, addr, tt.req)
			defer c.Close()
			br := bufio.NewReader(c)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			if got := "HTTP/1.1 " + res.Status; got != tt.want {
				t.Fatalf("status %q, want %q (%s)", got, tt.want, body)
			}
			if v := res.Header.Get("Set-Cookie"); v != "" {
				t.Errorf("the error page carries the backend's Set-Cookie %q", v)
			}
			if res.Close {
				return
			}
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n")
			res, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(res.Body)
			if res.StatusCode != 200 || string(body) != "other app" {
				t.Errorf("next request on the connection: %d %q, want the other app's answer", res.StatusCode, body)
			}
		})
	}
}

// TestUpstreamMalformedHeadFields is row 5: piku's 502 page for a
// backend's malformed head carries none of the backend's fields.
func TestUpstreamMalformedHeadFields(t *testing.T) {
	for _, answer := range []string{
		"HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\nLocation: /evil\r\nContent-Length: abc\r\n\r\n",
		"HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\nContent-Encoding: gzip\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
	} {
		be := rawBackend(t, func(n int, c *net.TCPConn, br *bufio.Reader) {
			if _, err := http.ReadRequest(br); err == nil {
				io.WriteString(c, answer)
			}
		})
		_, addr := startProxy(t, Options{}, appRoute(be))
		r := do(t, nil, addr, "GET", "app.test", "/", nil)
		if r.code != http.StatusBadGateway {
			t.Fatalf("%q: %d, want 502", answer, r.code)
		}
		for _, k := range []string{"Set-Cookie", "Location", "Content-Encoding"} {
			if v := r.header.Get(k); v != "" {
				t.Errorf("%q: the 502 page carries the backend's %s: %q", answer, k, v)
			}
		}
	}
}

// TestExpectContinueStress is row 4, under -race: "Expect: 100-continue"
// requests whose backend answers before it reads the body (the body is
// then never asked for: no "100 Continue" ever follows the answer), mixed
// with ones whose backend reads it, pipelined requests after them, upgrade
// requests with a body, and clients that go away after the head.
func TestExpectContinueStress(t *testing.T) {
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/read" {
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
			return
		}
		w.WriteHeader(http.StatusForbidden) // before the body
	})
	_, addr := startProxy(t, Options{}, streamingRoute(be))
	const workers, rounds = 4, 150
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				if err := expectRound(addr, (w+i)%4); err != nil {
					t.Errorf("worker %d round %d: %v", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// expectRound runs one exchange of TestExpectContinueStress, of the given
// kind: 0 early answer, 1 body read then a pipelined request, 2 upgrade
// with a body, 3 client gone after the head.
func expectRound(addr string, kind int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	br := bufio.NewReader(c)
	switch kind {
	case 0:
		io.WriteString(c, "POST /early HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		if res.StatusCode != http.StatusForbidden {
			return fmt.Errorf("early answer: %d, want 403 and no 100 Continue before it", res.StatusCode)
		}
		if onNetHTTP1() {
			// net/http's server keeps the connection: the client is to
			// send the body it was not asked for (RFC 9110 10.1.1).
			return nil
		}
		// piku's server ends it, and says so: the body may or may not
		// come.
		rest, _ := io.ReadAll(br)
		if !res.Close || strings.Contains(string(rest), " 100 Continue") {
			return fmt.Errorf("early answer: close %v, then %q; want Connection: close and no 100 Continue", res.Close, rest)
		}
	case 1:
		io.WriteString(c, "POST /read HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		line, err := br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
			return fmt.Errorf("want 100 Continue, got %q %v", line, err)
		}
		if l, _ := br.ReadString('\n'); l != "\r\n" {
			return fmt.Errorf("100 Continue followed by %q", l)
		}
		io.WriteString(c, "hello"+"GET /read HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
		for _, want := range []string{"hello", ""} {
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != 200 || string(b) != want {
				return fmt.Errorf("read body: %d %q, want 200 %q", res.StatusCode, b, want)
			}
		}
	case 2:
		io.WriteString(c, "POST /read HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		if res.StatusCode != http.StatusBadRequest {
			return fmt.Errorf("upgrade with a body: %d, want 400", res.StatusCode)
		}
	case 3:
		io.WriteString(c, "POST /early HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	}
	return nil
}

// TestTrailerFieldRules is row 11: trailers go by the rules of header
// fields both ways: a client's forwarding fields, underscore names and
// Host never reach the app; a backend's framing fields never reach the
// client.
func TestTrailerFieldRules(t *testing.T) {
	got := make(chan http.Header, 1)
	be := rawBackend(t, func(n int, c *net.TCPConn, br *bufio.Reader) {
		req, _, err := readRequest(br)
		if err != nil {
			return
		}
		got <- req.Trailer
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTrailer: X-Sum, Content-Length, Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"4\r\nbody\r\n0\r\nX-Sum: 1\r\nContent-Length: 99\r\nTransfer-Encoding: gzip\r\n\r\n")
	})
	_, addr := startProxy(t, Options{}, appRoute(be))
	c := dialWrite(t, addr, "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nTe: trailers\r\n"+
		"Trailer: X-Sum, X-Forwarded-For, X_Api, Host\r\n\r\n"+
		strings.Repeat("5\r\nhello\r\n", 8000)+"0\r\nX-Sum: 2\r\nX-Forwarded-For: 6.6.6.6\r\nX_Api: evil\r\nHost: other.test\r\n\r\n")
	defer c.Close()
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	tr := <-got
	if len(tr) != 1 || tr.Get("X-Sum") != "2" {
		t.Errorf("the backend got the trailers %q, want only X-Sum: 2", tr)
	}
	if string(b) != "body" || res.Trailer.Get("X-Sum") != "1" {
		t.Errorf("response %q with trailers %q, want body and X-Sum: 1", b, res.Trailer)
	}
	for _, k := range []string{"Content-Length", "Transfer-Encoding"} {
		if _, ok := res.Trailer[k]; ok {
			t.Errorf("the client got the backend's trailer %s: %q", k, res.Trailer)
		}
	}
}

// TestInformationalAnswers is row 10: 1xx answers are bounded (an app
// streaming "103 Early Hints" without end gets a 502), and a 103 is
// relayed to the client before the final answer.
func TestInformationalAnswers(t *testing.T) {
	be := rawBackend(t, func(n int, c *net.TCPConn, br *bufio.Reader) {
		req, _, err := readRequest(br)
		if err != nil {
			return
		}
		hint := "HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n"
		if req.URL.Path == "/endless" {
			for {
				if _, err := io.WriteString(c, hint); err != nil {
					return
				}
			}
		}
		io.WriteString(c, hint+"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	_, addr := startProxy(t, Options{}, appRoute(be))
	raw := rawRequest(t, addr, "GET /hint HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
	hint, final, ok := strings.Cut(raw, "\r\n\r\n")
	if !ok || statusOf(hint) != "HTTP/1.1 103 Early Hints" || !strings.Contains(hint, "\r\nLink: </app.css>; rel=preload") ||
		statusOf(final) != "HTTP/1.1 200 OK" || !strings.HasSuffix(final, "ok") {
		t.Errorf("early hints: %q, want a 103 with the Link, then the 200", raw)
	}
	raw = rawRequest(t, addr, "GET /endless HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
	if got := strings.Count(raw, " 103 "); got > 8 {
		t.Errorf("%d 103 answers relayed, want at most 8 (max1xx)", got)
	}
	if i := strings.Index(raw, "HTTP/1.1 502 "); i < 0 {
		t.Errorf("endless 1xx: no 502 in %q", raw[max(0, len(raw)-300):])
	}
}

// TestH1AnswerCutShort is row 12: a response the backend cuts short
// reaches the client as far as it came (the server flushes what the
// handler wrote before the panic that ends the connection, as net/http
// does), and an answer to a request whose body was never asked for
// says "Connection: close" (TestExpectContinueStress, early answer).
func TestH1AnswerCutShort(t *testing.T) {
	pikuServerOnly(t, "net/http's server holds the first bytes of a response in its response writer, and a panic drops them")
	be := rawBackend(t, func(n int, c *net.TCPConn, br *bufio.Reader) {
		if _, _, err := readRequest(br); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst part")
		}
	})
	_, addr := startProxy(t, Options{}, appRoute(be))
	raw := rawRequest(t, addr, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
	if statusOf(raw) != "HTTP/1.1 200 OK" || !strings.HasSuffix(raw, "\r\n\r\nfirst part") {
		t.Errorf("answer cut short: %q, want the 200 and the part of the body that came", raw)
	}
}

// TestUpstreamEarlyAnswerClosesClient: a backend that answers before it
// has read the whole request body, and then stops reading, leaves the
// rest of the upload unread: the client's answer says "Connection:
// close" and its connection is closed after it (as net/http's server does
// when a handler did not consume the body), instead of the proxy waiting
// for a body it will not read.
func TestUpstreamEarlyAnswerClosesClient(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	be := rawBackend(t, func(n int, c *net.TCPConn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 4\r\n\r\nbig!")
		<-release // and reads no more
	})
	_, addr := startProxy(t, Options{}, streamingRoute(be))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A large upload of which a part is sent, the rest held back while
	// the answer is read.
	fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n", 16<<20)
	if _, err := c.Write(make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusRequestEntityTooLarge || string(body) != "big!" || err != nil {
		t.Fatalf("answer: %d %q %v, want the backend's 413", res.StatusCode, body, err)
	}
	if !res.Close {
		t.Errorf("the answer does not say Connection: close (%q): the client would send its next request after a body nobody reads", res.Header)
	}
	// The proxy ends the connection after the answer; the client sends
	// nothing more.
	if n, err := br.Read(make([]byte, 1)); err == nil {
		t.Errorf("read %d bytes after the answer, want the connection closed", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("read after the answer: %v, want the connection closed", err)
	}
}
