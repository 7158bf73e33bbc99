package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The upstream client. http.Transport runs two goroutines per backend
// connection (a reader and a writer) and hands every request and response
// between them and the caller; for small proxied requests that hand-off
// cost more CPU than the proxying. upstream sends a request and reads its
// response on the handler's own goroutine, over keep-alive connections
// pooled per backend. Only a request body is written from a goroutine of
// its own, so that a backend answering before it has read the body (an
// early 413, a redirect) cannot deadlock the exchange.
//
// What it does, as http.Transport did for the proxy:
//   - HTTP/1.1 with Content-Length or chunked bodies both ways, trailers
//     both ways, 1xx responses skipped (100 Continue also releases the
//     body of an "Expect: 100-continue" request, as does a one second
//     timeout), 101 Switching Protocols handed to the ReverseProxy as a
//     read-write body for WebSockets;
//   - the response header timeout, the dial timeout, and the connection
//     cut as soon as the client's request context ends;
//   - a request without a body that fails on a reused connection before a
//     byte of the response arrived is sent again once on a new
//     connection, since the backend may have closed the idle connection
//     meanwhile.

const (
	// maxIdlePerBackend bounds the idle connections kept to one backend.
	maxIdlePerBackend = 256
	// idleConnTimeout closes a pooled connection unused that long.
	idleConnTimeout = 90 * time.Second
	// expectContinueTimeout is how long a body waits for "100 Continue".
	expectContinueTimeout = time.Second
	// bodyWriteWait is how long a finished response waits for the request
	// body's writer before the connection is given up instead of reused.
	bodyWriteWait = time.Second
)

// upConn is one connection to a backend.
type upConn struct {
	nc       net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	lastUsed time.Time
}

func (c *upConn) close() { _ = c.nc.Close() }

// connPool holds a backend's idle connections, most recently used last.
type connPool struct {
	mu     sync.Mutex
	idle   []*upConn
	timer  *time.Timer // closes expired connections while any are idle
	closed bool        // set by closeIdle: no connection is kept until put is allowed again
}

// get returns an idle connection, or nil.
func (p *connPool) get(now time.Time) *upConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now.Sub(c.lastUsed) < idleConnTimeout && c.br.Buffered() == 0 {
			return c
		}
		c.close()
	}
	return nil
}

// put keeps c for the next request, or closes it when the pool is full.
func (p *connPool) put(c *upConn) {
	c.lastUsed = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= maxIdlePerBackend {
		c.close()
		return
	}
	p.closed = false
	p.idle = append(p.idle, c)
	if p.timer == nil {
		p.timer = time.AfterFunc(idleConnTimeout, p.expire)
	}
}

// expire closes the connections idle for longer than idleConnTimeout and
// runs again while any remain.
func (p *connPool) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	keep := p.idle[:0]
	for _, c := range p.idle {
		if now.Sub(c.lastUsed) >= idleConnTimeout {
			c.close()
		} else {
			keep = append(keep, c)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	p.timer = nil
	if len(p.idle) > 0 {
		p.timer = time.AfterFunc(idleConnTimeout-now.Sub(p.idle[0].lastUsed), p.expire)
	}
}

// closeIdle closes every idle connection.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle {
		c.close()
	}
	clear(p.idle)
	p.idle = p.idle[:0]
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
}

// errNothingSent marks a failure before any byte of a response arrived on a
// reused connection, when the request may be sent again.
type errNothingSent struct{ err error }

func (e errNothingSent) Error() string { return e.err.Error() }
func (e errNothingSent) Unwrap() error { return e.err }

// roundTrip sends req to b and returns the response. The response body
// must be closed; that returns the connection to b's pool when the
// exchange ended cleanly.
func (s *Server) roundTrip(b *backend, req *http.Request, body *sentBody) (*http.Response, error) {
	if c := b.pool.get(time.Now()); c != nil {
		res, err := s.exchange(b, c, req, body, true)
		var ns errNothingSent
		if !errors.As(err, &ns) {
			return res, err
		}
	}
	c, err := s.dial(req.Context(), b.addr)
	if err != nil {
		return nil, err
	}
	return s.exchange(b, c, req, body, false)
}

// dial opens a new connection to addr.
func (s *Server) dial(ctx context.Context, addr string) (*upConn, error) {
	d := net.Dialer{Timeout: s.o.DialTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &upConn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 16<<10)}, nil
}

// aLongTimeAgo is a deadline in the past: it makes blocked reads and writes
// on a connection return at once.
var aLongTimeAgo = time.Unix(1, 0)

// exchange writes req on c and reads the response.
func (s *Server) exchange(b *backend, c *upConn, req *http.Request, body *sentBody, reused bool) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		b.pool.put(c)
		return nil, err
	}
	// The client going away cuts the backend connection at once.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error, nothingSent bool) (*http.Response, error) {
		stop()
		c.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if reused && nothingSent && body == nil {
			return nil, errNothingSent{err}
		}
		return nil, err
	}

	chunked := body != nil && (req.ContentLength < 0 || len(req.Trailer) > 0)
	writeHeader(c.bw, req, chunked)
	var wrote chan error // the body writer's result; nil without a body
	var proceed chan struct{}
	if body == nil {
		if err := c.bw.Flush(); err != nil {
			return fail(err, true)
		}
	} else {
		wrote = make(chan error, 1)
		if expectsContinue(req) {
			if err := c.bw.Flush(); err != nil {
				return fail(err, true)
			}
			proceed = make(chan struct{})
		}
		// The writer ends when the body does: the ReverseProxy closes the
		// request body when it returns, and the connection is closed
		// when the exchange does not end cleanly.
		go func() { wrote <- writeBody(c.bw, req, body, chunked, proceed) }()
	}

	_ = c.nc.SetReadDeadline(time.Now().Add(s.o.ResponseHeaderTimeout))
	var res *http.Response
	var err error
	continued := false
	for {
		// Peek first: an error before the first byte of the response is
		// one where nothing was received (ReadResponse would report it as
		// an unexpected EOF).
		_, err = c.br.Peek(1)
		if err == nil {
			res, err = http.ReadResponse(c.br, req)
		}
		if err != nil {
			nothing := c.br.Buffered() == 0 && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				err = fmt.Errorf("no response within %v: %w", s.o.ResponseHeaderTimeout, err)
			}
			return fail(err, nothing)
		}
		if res.StatusCode >= 200 || res.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if res.StatusCode == http.StatusContinue && proceed != nil && !continued {
			close(proceed)
			continued = true
		}
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	if proceed != nil && !continued {
		// A final answer without "100 Continue": the body is not wanted.
		// It is not sent, and the connection is not reused, since the
		// backend may still expect it.
		close(proceed)
		continued = true
		res.Close = true
	}

	if res.StatusCode == http.StatusSwitchingProtocols {
		stop()
		res.Body = &upgraded{c: c}
		return res, nil
	}
	res.Body = &upBody{rc: res.Body, c: c, pool: &b.pool, stop: stop, wrote: wrote, keep: !res.Close && !req.Close}
	return res, nil
}

// expectsContinue reports whether req asks for "100 Continue" before its body.
func expectsContinue(req *http.Request) bool {
	for _, v := range req.Header["Expect"] {
		if strings.EqualFold(strings.TrimSpace(v), "100-continue") {
			return true
		}
	}
	return false
}

// skipHeaders are written from the request's fields, not its Header.
var skipHeaders = map[string]bool{"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Trailer": true}

// writeHeader writes req's request line and header section to w.
func writeHeader(w *bufio.Writer, req *http.Request, chunked bool) {
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(req.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	w.WriteString(host)
	w.WriteString("\r\n")
	for k, vs := range req.Header {
		if skipHeaders[k] {
			continue
		}
		for _, v := range vs {
			if v == "" && k == "User-Agent" {
				continue // the ReverseProxy's way of asking for none
			}
			writeField(w, k, v)
		}
	}
	switch {
	case chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			names := make([]string, 0, len(req.Trailer))
			for k := range req.Trailer {
				names = append(names, k)
			}
			writeField(w, "Trailer", strings.Join(names, ", "))
		}
	case req.ContentLength > 0:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(req.ContentLength, 10))
		w.WriteString("\r\n")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	w.WriteString("\r\n")
}

// headerNewlines turns line breaks in a field value into spaces, as
// http.Header.Write does: a value can never start a field of its own.
var headerNewlines = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ")

func writeField(w *bufio.Writer, k, v string) {
	w.WriteString(k)
	w.WriteString(": ")
	if strings.ContainsAny(v, "\r\n") {
		v = headerNewlines.Replace(v)
	}
	w.WriteString(strings.TrimSpace(v))
	w.WriteString("\r\n")
}

// writeBody writes req's body (and trailers) after the header, once
// proceed (when not nil) is closed.
func writeBody(w *bufio.Writer, req *http.Request, body io.Reader, chunked bool, proceed <-chan struct{}) error {
	if proceed != nil {
		t := time.NewTimer(expectContinueTimeout)
		select {
		case <-proceed:
		case <-t.C:
		}
		t.Stop()
	}
	if !chunked {
		n, err := io.Copy(w, body)
		if err == nil && n != req.ContentLength {
			err = fmt.Errorf("request body was %d bytes, not the %d announced", n, req.ContentLength)
		}
		if err != nil {
			return err
		}
		return w.Flush()
	}
	// A chunk is sent as soon as it was read, so that a streaming upload
	// streams.
	cw := httputil.NewChunkedWriter(flushWriter{w})
	if _, err := io.Copy(cw, body); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return err
	}
	// The client's trailers arrived with the end of its body, in the
	// original request's map (see reqInfo.trailer).
	trailer := req.Trailer
	if orig := infoFrom(req.Context()).trailer; orig != nil {
		trailer = orig
	}
	for k, vs := range trailer {
		if _, declared := req.Trailer[k]; !declared {
			continue
		}
		for _, v := range vs {
			writeField(w, k, v)
		}
	}
	w.WriteString("\r\n")
	return w.Flush()
}

// flushWriter flushes after every write.
type flushWriter struct{ w *bufio.Writer }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.w.Flush()
	}
	return n, err
}

// upBody is a response body. Closing it after reading it to the end, with
// the request written whole and neither side asking to close, returns the
// connection to the pool; any other close closes the connection.
type upBody struct {
	rc    io.ReadCloser
	c     *upConn
	pool  *connPool
	stop  func() bool
	wrote chan error // nil without a request body
	keep  bool
	eof   bool
	done  bool
}

func (u *upBody) Read(p []byte) (int, error) {
	n, err := u.rc.Read(p)
	if err == io.EOF {
		u.eof = true
	}
	return n, err
}

func (u *upBody) Close() error {
	if u.done {
		return nil
	}
	u.done = true
	reuse := u.keep && u.eof
	if u.wrote != nil && reuse {
		// A backend that keeps the connection after answering has read
		// the whole request body, or is about to; the writer's last
		// flush may still be returning. One that stopped reading without
		// closing costs the connection, after a short wait.
		t := time.NewTimer(bodyWriteWait)
		select {
		case err := <-u.wrote:
			reuse = err == nil
		case <-t.C:
			reuse = false
		}
		t.Stop()
	}
	// stop reports false when the client went away: the deadline is set.
	if !u.stop() {
		reuse = false
	}
	if reuse {
		u.pool.put(u.c)
		return nil
	}
	u.c.close()
	return nil
}

// upgraded is the connection after "101 Switching Protocols": the
// ReverseProxy copies both ways through it (reads see what the backend
// sent after the response header, too).
type upgraded struct{ c *upConn }

func (u *upgraded) Read(p []byte) (int, error)  { return u.c.br.Read(p) }
func (u *upgraded) Write(p []byte) (int, error) { return u.c.nc.Write(p) }
func (u *upgraded) Close() error                { return u.c.nc.Close() }
