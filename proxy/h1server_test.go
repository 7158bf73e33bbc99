package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// echoBackend answers with what it got: method, path, host, body and the
// X-Sum trailer.
func echoBackend(t *testing.T) string {
	return backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s %q trailer=%q", r.Method, r.URL.RequestURI(), r.Host, b, r.Trailer.Get("X-Sum"))
	})
}

// exchangeRaw writes req on a new connection to addr and reads n responses
// (fewer if the connection ends first). It then finds out whether the
// proxy closed the connection after them, waiting for the event either
// way: with wantClosed it reads until EOF (a generous deadline only keeps
// a broken proxy from hanging the test); else it sends one more request
// and reports the connection closed unless that is answered.
func exchangeRaw(t *testing.T, addr, req string, n int, wantClosed bool) (codes []int, bodies []string, heads []http.Header, closed bool) {
	t.Helper()
	c := dialWrite(t, addr, req)
	defer c.Close()
	br := bufio.NewReader(c)
	method, _, _ := strings.Cut(req, " ")
	for range n {
		res, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			break
		}
		b, _ := io.ReadAll(res.Body)
		codes = append(codes, res.StatusCode)
		bodies = append(bodies, string(b))
		heads = append(heads, res.Header)
		if res.Close {
			break
		}
	}
	if wantClosed {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := io.Copy(io.Discard, br) // EOF is reported as nil
		return codes, bodies, heads, err == nil || errors.Is(err, syscall.ECONNRESET)
	}
	if _, err := io.WriteString(c, "GET /probe HTTP/1.1\r\nHost: app.test\r\n\r\n"); err != nil {
		return codes, bodies, heads, true
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return codes, bodies, heads, true
	}
	res.Body.Close()
	return codes, bodies, heads, false
}

// netHTTPDiffers names the cases of TestH1Requests where piku's server
// answers unlike net/http's, on purpose (docs/PROXY.md lists them with
// the RFC text that allows each).
var netHTTPDiffers = map[string]string{
	"empty lines before the request line":  "RFC 9112 2.2: empty lines before a request line are skipped; net/http answers 400",
	"bare LF line ends":                    "a bare LF line end is refused, as llhttp does; net/http takes it",
	"bare LF before Transfer-Encoding":     "a bare LF line end is refused, as llhttp does; net/http takes it",
	"HTTP/2 preface":                       "PRI * is refused; net/http hands it to the handler",
	"Content-Length and Transfer-Encoding": "both framings are refused, as nginx does; net/http drops Content-Length",
	"HTTP/1.0 Transfer-Encoding closes":    "RFC 9112 6.1: the connection ends; net/http keeps it when asked",
	"line folding":                         "RFC 9112 5.2: obs-fold is refused; net/http folds it",
}

// TestH1Requests sends raw requests to the proxy's own HTTP/1.1 server:
// what it accepts, what it refuses and with which status, as net/http's
// server did (and nginx does).
func TestH1Requests(t *testing.T) {
	_, addr := startProxy(t, Options{}, appRoute(echoBackend(t)))
	get := "GET /a HTTP/1.1\r\nHost: app.test\r\n\r\n"
	for _, tt := range []struct {
		name, req string
		n         int
		codes     []int
		bodies    []string // checked when not nil
		closed    bool
	}{
		{"pipelined", get + "GET /b?x=1 HTTP/1.1\r\nHost: app.test\r\n\r\n", 2, []int{200, 200},
			[]string{`GET /a app.test "" trailer=""`, `GET /b?x=1 app.test "" trailer=""`}, false},
		{"empty lines before the request line", "\r\n\r\n" + get, 1, []int{200}, nil, false},
		{"a header longer than the read buffer", "GET /a HTTP/1.1\r\nHost: app.test\r\nX-Long: " + strings.Repeat("x", 6<<10) + "\r\nX-Long: " + strings.Repeat("y", 6<<10) + "\r\n\r\n" + get, 2, []int{200, 200}, nil, false},
		// Rows 7, 8, 9, 14 of the wire issue: refused as llhttp, nginx or
		// net/http refuse them.
		{"bare LF line ends", "GET /a HTTP/1.1\nHost: app.test\n\n", 1, []int{400}, nil, true},
		{"bare LF before Transfer-Encoding", "POST / HTTP/1.1\r\nHost: app.test\r\nX-A: b\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1, []int{400}, nil, true},
		{"HTTP/2 preface", "PRI * HTTP/1.1\r\nHost: app.test\r\n\r\n", 1, []int{400}, nil, true},
		{"Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get, 1, []int{400}, nil, true},
		{"bad Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: abc\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get, 1, []int{400}, nil, true},
		{"bare CR ending a value", "GET / HTTP/1.1\r\nHost: app.test\r\nX-A: a\r\r\n\r\n", 1, []int{400}, nil, true},
		{"bare CR starting a value", "GET / HTTP/1.1\r\nHost: app.test\r\nX-A: \ra\r\n\r\n", 1, []int{400}, nil, true},
		{"HTTP/1.0 Transfer-Encoding closes", "POST /p HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok" + get, 1, []int{200},
			[]string{`POST /p app.test "ok" trailer=""`}, true},
		{"HTTP/1.0 closes", "GET /a HTTP/1.0\r\nHost: app.test\r\n\r\n", 1, []int{200}, nil, true},
		{"HTTP/1.0 keep-alive", "GET /a HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n" + get, 2, []int{200, 200}, nil, false},
		{"HTTP/1.1 Connection: close", "GET /a HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n" + get, 2, []int{200}, nil, true},
		{"absolute form names the host", "GET http://app.test/abs HTTP/1.1\r\nHost: other.test\r\n\r\n", 1, []int{200},
			[]string{`GET /abs app.test "" trailer=""`}, false},
		{"body by length", "POST /p HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello" + get, 2, []int{200, 200},
			[]string{`POST /p app.test "hello" trailer=""`, `GET /a app.test "" trailer=""`}, false},
		{"chunked body with a trailer", "POST /c HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
			"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Sum: 42\r\n\r\n" + get, 2, []int{200, 200},
			[]string{`POST /c app.test "abcde" trailer="42"`, `GET /a app.test "" trailer=""`}, false},
		{"Transfer-Encoding ignored in HTTP/1.0", "POST /p HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok", 1, []int{200},
			[]string{`POST /p app.test "ok" trailer=""`}, true},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", 1, []int{400}, nil, true},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: app.test\r\nHost: b.test\r\n\r\n", 1, []int{400}, nil, true},
		{"bad Host", "GET / HTTP/1.1\r\nHost: app test\r\n\r\n", 1, []int{400}, nil, true},
		{"line folding", "GET / HTTP/1.1\r\nHost: app.test\r\nX-A: 1\r\n 2\r\n\r\n", 1, []int{400}, nil, true},
		{"space before the colon", "GET / HTTP/1.1\r\nHost : app.test\r\n\r\n", 1, []int{400}, nil, true},
		{"control character in a value", "GET / HTTP/1.1\r\nHost: app.test\r\nX-A: a\x01b\r\n\r\n", 1, []int{400}, nil, true},
		{"bare CR in a value", "GET / HTTP/1.1\r\nHost: app.test\r\nX-A: a\rb\r\n\r\n", 1, []int{400}, nil, true},
		{"signed Content-Length", "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: +5\r\n\r\nhello", 1, []int{400}, nil, true},
		{"two Transfer-Encodings", "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1, []int{501}, nil, true},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 1, []int{400}, nil, true},
		{"trailer may not frame", "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n", 1, []int{400}, nil, true},
		{"unknown expectation", "POST / HTTP/1.1\r\nHost: app.test\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 1, []int{417}, nil, true},
		{"HTTP/2 request line", "GET / HTTP/2.0\r\nHost: app.test\r\n\r\n", 1, []int{505}, nil, true},
		{"malformed request line", "GET /\r\nHost: app.test\r\n\r\n", 1, []int{400}, nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if why, ok := netHTTPDiffers[tt.name]; ok {
				pikuServerOnly(t, why)
			}
			codes, bodies, _, closed := exchangeRaw(t, addr, tt.req, tt.n, tt.closed)
			if fmt.Sprint(codes) != fmt.Sprint(tt.codes) {
				t.Errorf("statuses %v, want %v (bodies %q)", codes, tt.codes, bodies)
			}
			if tt.bodies != nil && fmt.Sprint(bodies) != fmt.Sprint(tt.bodies) {
				t.Errorf("bodies %q, want %q", bodies, tt.bodies)
			}
			if closed != tt.closed {
				t.Errorf("connection closed: %v, want %v", closed, tt.closed)
			}
		})
	}
}

// TestH1SilentClientCutOff: a connection that never sends a byte gets
// ReadHeaderTimeout, as one that stops halfway does, not the idle timeout
// of a kept-alive connection between requests.
func TestH1SilentClientCutOff(t *testing.T) {
	pikuServerOnly(t, "net/http's server has no ReadHeaderTimeout of piku's for a silent new connection")
	_, addr := startProxy(t, Options{ReadHeaderTimeout: 100 * time.Millisecond}, appRoute(echoBackend(t)))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The proxy closes the connection by itself; the generous deadline
	// (still well below the 120 s idle timeout) only keeps a broken proxy
	// from hanging the test.
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("a silent connection: read %d, %v; want it closed by the proxy", n, err)
	}
}

// TestH1StalledBodyLeftOver: a client whose body the handler did not read,
// and that stops sending it, gets its answer and then the connection is
// closed after ReadHeaderTimeout instead of being held for ever.
func TestH1StalledBodyLeftOver(t *testing.T) {
	pikuServerOnly(t, "net/http's server reads what a handler left of a body before it answers")
	wrap := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "not reading that") // and not reading the body
		})
	}
	_, addr := startProxy(t, Options{HTTPWrap: wrap, ReadHeaderTimeout: 100 * time.Millisecond}, appRoute(echoBackend(t)))
	codes, bodies, _, closed := exchangeRaw(t, addr, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100\r\n\r\n0123456789", 1, true)
	if fmt.Sprint(codes) != "[200]" || bodies[0] != "not reading that" || !closed {
		t.Errorf("stalled body: %v %q, closed %v", codes, bodies, closed)
	}
}

// TestH1ResponseFraming: what the proxy answers itself gets a
// Content-Length; a body of unknown length is chunked for HTTP/1.1 and
// ends with the connection for HTTP/1.0; HEAD answers have no body.
func TestH1ResponseFraming(t *testing.T) {
	pikuServerOnly(t, "the framing of piku's response writer (Content-Length within 2 KiB)")
	big := strings.Repeat("x", 10<<10)
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, big[:1])
		w.(http.Flusher).Flush() // the backend answers chunked
		io.WriteString(w, big[1:])
	})
	_, addr := startProxy(t, Options{}, appRoute(be))

	codes, bodies, heads, _ := exchangeRaw(t, addr, "GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n", 1, false)
	if len(codes) != 1 || codes[0] != 404 || heads[0].Get("Content-Length") != fmt.Sprint(len(bodies[0])) {
		t.Errorf("the proxy's own 404: %v %v, want a Content-Length", codes, heads)
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if fmt.Sprint(res.TransferEncoding) != "[chunked]" || string(b) != big {
		t.Errorf("HTTP/1.1, unknown length: %v, %d bytes", res.TransferEncoding, len(b))
	}

	codes, bodies, heads, closed := exchangeRaw(t, addr, "GET / HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n", 1, true)
	if len(codes) != 1 || bodies[0] != big || heads[0].Get("Content-Length") != "" || !closed {
		t.Errorf("HTTP/1.0, unknown length: %v, %d bytes, %v, closed %v; want the body ended by closing", codes, len(bodies), heads, closed)
	}

	codes, bodies, _, closed = exchangeRaw(t, addr, "HEAD / HTTP/1.1\r\nHost: app.test\r\n\r\n"+"HEAD / HTTP/1.1\r\nHost: app.test\r\n\r\n", 2, false)
	if fmt.Sprint(codes) != "[200 200]" || bodies[0] != "" || closed {
		t.Errorf("HEAD: %v %q, closed %v", codes, bodies, closed)
	}
}

// TestH1PanicEndsOnlyItsConnection: a handler's panic cuts its own
// connection; the server goes on.
func TestH1PanicEndsOnlyItsConnection(t *testing.T) {
	wrap := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/panic" {
				panic("boom")
			}
			h.ServeHTTP(w, r)
		})
	}
	_, addr := startProxy(t, Options{HTTPWrap: wrap}, appRoute(echoBackend(t)))
	codes, _, _, closed := exchangeRaw(t, addr, "GET /panic HTTP/1.1\r\nHost: app.test\r\n\r\n", 1, true)
	if len(codes) != 0 || !closed {
		t.Errorf("after a panic: %v, closed %v; want the connection closed without an answer", codes, closed)
	}
	if r := do(t, nil, addr, http.MethodGet, "app.test", "/a", nil); r.code != 200 {
		t.Errorf("after a panic: %d", r.code)
	}
}

// TestH1Shutdown: the end of Run closes idle keep-alive connections at
// once and lets a request in flight finish, and serves the first request
// of a connection accepted before it (a client that connected as the
// shutdown began), with Connection: close, rather than reset it.
func TestH1Shutdown(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	})
	s := New(Options{HTTPAddr: "127.0.0.1:0"})
	s.SetRoute(appRoute(be))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	addr, _ := s.Addrs()

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
	ibr := bufio.NewReader(idle)
	if res, err := http.ReadResponse(ibr, nil); err != nil || res.StatusCode != 200 {
		t.Fatalf("idle connection's request: %v %v", res, err)
	} else {
		io.Copy(io.Discard, res.Body)
	}

	// Connections are accepted in order: once busy's request arrived,
	// fresh was accepted too.
	fresh, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: app.test\r\n\r\n")
	<-started

	cancel()
	if _, err := ibr.ReadByte(); err != io.EOF {
		t.Errorf("idle connection at shutdown: %v, want EOF", err)
	}
	io.WriteString(fresh, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
	if res, err := http.ReadResponse(bufio.NewReader(fresh), nil); err != nil {
		t.Errorf("a connection's first request after the shutdown began: %v", err)
	} else if b, _ := io.ReadAll(res.Body); res.StatusCode != 200 || string(b) != "done" || !res.Close {
		t.Errorf("a connection's first request after the shutdown began: %d %q, close %v", res.StatusCode, b, res.Close)
	}
	close(release)
	res, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("request in flight at shutdown: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(b) != "done" || !res.Close {
		t.Errorf("request in flight at shutdown: %d %q, close %v", res.StatusCode, b, res.Close)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
