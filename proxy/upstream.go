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
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/piku/piku/proxy/internal/h1"
)

// The upstream client. http.Transport runs two goroutines per backend
// connection (a reader and a writer) and hands every request and response
// between them and the caller; for small proxied requests that hand-off
// cost more CPU than the proxying. The upstream client sends a request and
// reads its response on the handler's own goroutine, over keep-alive
// connections pooled per backend. Only a request body is written from a
// goroutine of its own, so that a backend answering before it has read the
// body (an early 413, a redirect) cannot deadlock the exchange.
//
// The request is written straight from the client's request (no copy of
// it is made) and the response's header fields are parsed straight into
// the client's response header (forward.go), without the hop-by-hop ones.
//
// What it does, as http.Transport did for the proxy:
//   - HTTP/1.1 with Content-Length or chunked bodies both ways, trailers
//     both ways, 1xx responses skipped (100 Continue also releases the
//     body of an "Expect: 100-continue" request, as does a one second
//     timeout), 101 Switching Protocols for WebSockets;
//   - the response header timeout (from the end of the request body), the
//     dial timeout, and the connection cut as soon as the client's request
//     context ends;
//   - idle connections checked before reuse (usable, without a goroutine
//     each), kept no longer than the backend's Keep-Alive timeout;
//   - a request that fails on a reused connection before a byte of the
//     response arrived is sent again once on a new connection, its body
//     too when none of it was read or it was read ahead whole, since the
//     backend may have closed the idle connection meanwhile;
//   - a 101 taken only as an answer to the switch the client asked for.

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
	// maxResponseHeader bounds a backend's response header section, and
	// the 1xx answers before it all together.
	maxResponseHeader = 1 << 20
	// max1xx bounds the 1xx answers before a final one (http.Transport
	// takes 5): an app streaming "103 Early Hints" without end costs a
	// 502, not the daemon's CPU.
	max1xx = 8
)

// upConn is one connection to a backend.
type upConn struct {
	nc       net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	lastUsed time.Time
	maxIdle  time.Duration // how long it may stay idle: the backend's Keep-Alive timeout, or idleConnTimeout
	peek     *peeker       // looks at it before reuse (usable), made at the first look
	deadline time.Time     // the read deadline last set
}

func (c *upConn) close() { _ = c.nc.Close() }

// setReadDeadline sets the read deadline to now+d (none for d = 0) unless
// the one set may stay (h1.KeepDeadline).
func (c *upConn) setReadDeadline(now time.Time, d time.Duration) {
	if t, ok := h1.KeepDeadline(c.deadline, now, d); !ok {
		_ = c.nc.SetReadDeadline(t)
		c.deadline = t
	}
}

// connPool holds a backend's idle connections, most recently used last.
type connPool struct {
	mu     sync.Mutex
	idle   []*upConn
	timer  *time.Timer // closes expired connections while any are idle
	closed bool        // set by closeIdle: no connection is kept until put is allowed again
}

// get returns an idle connection that may carry a request, or nil. One
// the backend closed, or sent bytes on since its last answer, or kept for
// longer than the backend said it would keep it, is closed instead.
func (p *connPool) get(now time.Time) *upConn {
	for {
		c := p.pop()
		if c == nil {
			return nil
		}
		if now.Sub(c.lastUsed) >= c.maxIdle || c.br.Buffered() > 0 {
			c.close()
			continue
		}
		if !c.deadline.IsZero() && !now.Before(c.deadline) {
			// A read deadline passed while it was idle would fail the
			// look at it.
			_ = c.nc.SetReadDeadline(time.Time{})
			c.deadline = time.Time{}
		}
		if usable(c) {
			return c
		}
		c.close()
	}
}

// pop takes the most recently used idle connection, or returns nil.
func (p *connPool) pop() *upConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	c := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return c
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

// outgoing is one request as it is sent to a backend: the client's
// request, and what the proxy adds.
type outgoing struct {
	r       *http.Request
	info    *reqInfo
	body    *sentBody // nil without a body
	upgrade string    // the protocol the client asks to switch to, or ""
	header  http.Header
	// w, when not nil, is the client's: "103 Early Hints" answers are
	// relayed to it.
	w http.ResponseWriter
}

// roundTrip sends out to b and returns the exchange, its response header
// parsed into out.header. The exchange must be ended with finish.
func (s *Server) roundTrip(b *backend, out *outgoing) (*exchange, error) {
	if c := b.pool.get(time.Now()); c != nil {
		x, err := s.exchange(b, c, out, true)
		var ns errNothingSent
		if !errors.As(err, &ns) {
			return x, err
		}
	}
	c, err := s.dial(out.r.Context(), b.addr)
	if err != nil {
		return nil, err
	}
	return s.exchange(b, c, out, false)
}

// dial opens a new connection to addr.
func (s *Server) dial(ctx context.Context, addr string) (*upConn, error) {
	d := net.Dialer{Timeout: s.o.DialTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// A write to the backend that makes no progress for the response
	// header timeout fails: a backend that neither reads the request
	// body nor answers cannot hold the request for ever, now that the
	// header timeout starts after the body.
	w := deadlineWriter{nc: nc, d: s.o.ResponseHeaderTimeout}
	return &upConn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(w, 16<<10), maxIdle: idleConnTimeout}, nil
}

// deadlineWriter writes to nc, each write bounded by d.
type deadlineWriter struct {
	nc net.Conn
	d  time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	_ = w.nc.SetWriteDeadline(time.Now().Add(w.d))
	return w.nc.Write(p)
}

// aLongTimeAgo is a deadline in the past: it makes blocked reads and writes
// on a connection return at once.
var aLongTimeAgo = time.Unix(1, 0)

// exchange is a request sent and its response's header read; its body
// is read from c.
type exchange struct {
	b        *backend
	c        *upConn
	out      *outgoing
	stop     func() bool // ends the cut on the client's going away
	wrote    chan error  // the body writer's result; nil without a body
	status   int
	clen     int64 // the body's length, -1 for chunked or until close
	chunked  bool
	noBody   bool
	keep     bool     // the connection may be reused once the body was read
	trailers []string // the trailer fields announced
	body     io.Reader
	eof      bool
	ended    bool

	upgradeOK bool // a 101 answer says "Connection: upgrade"

	// The client's response fields set before the backend's were parsed
	// into the same map (a few: kept without an allocation).
	preset     [4]presetField
	npreset    int
	presetMany http.Header // when there are more

	mu       sync.Mutex // guards headRead
	headRead bool       // the answer's head came: the body writer leaves the read deadline alone
}

// exchange writes out on c and reads the response's header.
func (s *Server) exchange(b *backend, c *upConn, out *outgoing, reused bool) (*exchange, error) {
	req := out.r
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		b.pool.put(c)
		return nil, err
	}
	// The client going away cuts the backend connection at once.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(aLongTimeAgo) })
	x := &exchange{b: b, c: c, out: out, stop: stop}
	// The fields the proxy set before the backend's go to the client
	// with an error page; the backend's go only with its own answer.
	x.keepPreset()
	var proceed chan bool // "Expect: 100-continue": true sends the body, false drops it
	released := false
	release := func(send bool) {
		if proceed != nil && !released {
			released = true
			proceed <- send
		}
	}
	fail := func(err error, nothingSent bool) (*exchange, error) {
		stop()
		c.close()
		release(false)
		x.restorePreset()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// No byte of the answer came on a connection that was reused:
		// the backend closed it before it took the request (it may
		// have timed it out as it was picked). The request goes once
		// more on a new connection, when its body can go whole.
		if reused && nothingSent && (out.body == nil || out.body.revoke()) {
			return nil, errNothingSent{err}
		}
		return nil, err
	}

	chunked := out.body != nil && (out.body.size < 0 || len(req.Trailer) > 0)
	writeRequestHead(c.bw, out, chunked)
	// A body read ahead whole goes with the head, from this goroutine.
	inline := out.body != nil && out.body.buf != nil && !chunked
	if inline {
		c.bw.Write(out.body.buf)
	}
	// The head goes out before a body still to come, which may be slow:
	// the backend sees the request at once.
	if err := c.bw.Flush(); err != nil {
		return fail(err, true)
	}
	if out.body == nil || inline {
		c.setReadDeadline(time.Now(), s.o.ResponseHeaderTimeout)
	} else {
		// The header timeout starts once the body is written (as
		// http.Transport's ResponseHeaderTimeout): an upload may take
		// longer than the backend takes to answer it.
		_ = c.nc.SetReadDeadline(time.Time{})
		c.deadline = time.Time{}
		x.wrote = make(chan error, 1)
		if expectsContinue(req) {
			proceed = make(chan bool, 1)
		}
		go x.writeBody(out.body.attempt(), chunked, proceed, s.o.ResponseHeaderTimeout)
	}

	got := false // a byte of the answer arrived
	n1xx, room := 0, maxResponseHeader
	for {
		head, err := h1.ReadSection(c.br, room)
		if err != nil {
			nothing := !got && c.br.Buffered() == 0 &&
				(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				err = fmt.Errorf("no response within %v: %w", s.o.ResponseHeaderTimeout, err)
			}
			return fail(err, nothing)
		}
		got = true
		if err := x.parseHead(head); err != nil {
			return fail(err, false)
		}
		if x.status >= 200 || x.status == http.StatusSwitchingProtocols {
			break
		}
		if n1xx++; n1xx > max1xx {
			return fail(fmt.Errorf("more than %d 1xx answers", max1xx), false)
		}
		room -= len(head)
		switch x.status {
		case http.StatusContinue:
			release(true)
		case http.StatusEarlyHints:
			if out.w != nil {
				if err := x.relayHints(head); err != nil {
					return fail(err, false)
				}
			}
		}
	}
	if x.wrote != nil {
		// The header timeout is over: the body writer must not set it
		// any more, and the deadline on c is not known here.
		x.mu.Lock()
		x.headRead = true
		x.mu.Unlock()
		c.deadline = aLongTimeAgo
	}
	if proceed != nil && !released {
		// A final answer without "100 Continue": the body is not wanted.
		// It is neither read from the client nor sent, and the
		// connection is not reused, since the backend may still expect
		// it.
		release(false)
		x.keep = false
	}
	if x.status == http.StatusSwitchingProtocols {
		if err := x.checkSwitch(); err != nil {
			return fail(err, false)
		}
		stop()
		_ = c.nc.SetDeadline(time.Time{})
		return x, nil
	}
	switch {
	case x.noBody:
		x.eof = true
	case x.chunked:
		x.body = &chunkedBody{r: httputil.NewChunkedReader(c.br), br: c.br, x: x}
	case x.clen >= 0:
		x.body = &lengthBody{br: c.br, n: x.clen}
		if x.clen == 0 {
			x.eof = true
		}
	default:
		x.body = c.br // until the backend closes
		x.keep = false
	}
	if !x.eof && (x.clen < 0 || int64(c.br.Buffered()) < x.clen) {
		// A body still to come may take as long as it takes (an event
		// stream); one read whole already needs no deadline change.
		c.setReadDeadline(time.Time{}, 0)
	}
	return x, nil
}

// relayHints passes a "103 Early Hints" answer's fields (but the
// hop-by-hop ones) to the client, as Caddy does.
func (x *exchange) relayHints(head string) error {
	_, rest := h1.CutLine(head)
	h := http.Header{}
	err := h1.ForEachField(rest, func(k, v string) {
		if !hopByHop[k] {
			h[k] = append(h[k], v)
		}
	})
	if err != nil {
		return err
	}
	sendHints(x.out.w, h)
	return nil
}

// presetField is a response field the proxy set before the exchange.
type presetField struct {
	k string
	v []string
}

// keepPreset notes the fields in the client's response header before the
// backend's are parsed into it.
func (x *exchange) keepPreset() {
	h := x.out.header
	if len(h) > len(x.preset) {
		x.presetMany = h.Clone()
		return
	}
	for k, v := range h {
		x.preset[x.npreset] = presetField{k, v}
		x.npreset++
	}
}

// restorePreset leaves the client's response header as keepPreset found
// it: a backend's fields reach the client only with its answer.
func (x *exchange) restorePreset() {
	h := x.out.header
	clear(h)
	for k, v := range x.presetMany {
		h[k] = v
	}
	for _, f := range x.preset[:x.npreset] {
		h[f.k] = f.v
	}
}

// checkSwitch accepts a 101 answer only when the request asked to switch
// protocols and the answer names the same protocol with "Connection:
// upgrade" (RFC 9110 7.8, as net/http's isProtocolSwitchHeader): else the
// client's connection would be handed to the backend, and the client's
// next requests, for any host, would reach that app unrouted.
func (x *exchange) checkSwitch() error {
	if x.out.upgrade == "" {
		return errors.New("backend switched protocols when none was asked for")
	}
	if !x.upgradeOK {
		return errors.New("backend switched protocols without \"Connection: upgrade\"")
	}
	up := ""
	if v := x.out.header["Upgrade"]; len(v) > 0 {
		up = v[0]
	}
	if !printable(up) {
		return fmt.Errorf("backend tried to switch to invalid protocol %q", up)
	}
	if !strings.EqualFold(up, x.out.upgrade) {
		return fmt.Errorf("backend tried to switch protocol %q when %q was requested", up, x.out.upgrade)
	}
	return nil
}

// writeBody writes the request body to the backend, on a goroutine of its
// own, and then starts the response header timeout unless the answer
// came first. A panic ends the exchange, never the daemon.
func (x *exchange) writeBody(body io.Reader, chunked bool, proceed <-chan bool, headerTimeout time.Duration) {
	var err error
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic writing the request body: %v", p)
			_ = x.c.nc.Close()
		}
		x.wrote <- err
	}()
	err = writeBody(x.c.bw, x.out, body, chunked, proceed)
	if err != nil {
		if x.out.body.failed.Load() {
			// The client's body is broken: the backend must not wait
			// for the rest of it.
			_ = x.c.nc.Close()
		}
		return
	}
	x.mu.Lock()
	if !x.headRead {
		_ = x.c.nc.SetReadDeadline(time.Now().Add(headerTimeout))
	}
	x.mu.Unlock()
}

// parseHead parses a response's header section: a 1xx's is only looked at,
// a final one's fields go into x.out.header, without the hop-by-hop ones.
func (x *exchange) parseHead(head string) error {
	line, rest := h1.CutLine(head)
	proto, status, ok := strings.Cut(line, " ")
	if !ok || !strings.HasPrefix(proto, "HTTP/1.") || len(status) < 3 || (len(status) > 3 && status[3] != ' ') {
		return fmt.Errorf("malformed HTTP response %q", line)
	}
	code, err := strconv.Atoi(status[:3])
	if err != nil || code < 100 {
		return fmt.Errorf("malformed HTTP status code %q", status)
	}
	x.status = code
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok || major != 1 {
		return fmt.Errorf("malformed HTTP version %q", proto)
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// Only looked at, but malformed fields make it no answer.
		var clen, te []string
		err := h1.ForEachField(rest, func(k, v string) {
			switch k {
			case "Content-Length":
				clen = append(clen, v)
			case "Transfer-Encoding":
				te = append(te, v)
			}
		})
		if err == nil {
			if minor == 0 {
				te = nil
			}
			_, err = h1.Frame(te, clen, false)
		}
		return err
	}
	dst := x.out.header
	var clen, te, conn, trailer []string
	keepAlive := ""
	hb := h1.NewHeaderBuilder(dst, rest)
	err = h1.ForEachField(rest, func(k, v string) {
		switch k {
		case "Content-Length":
			clen = append(clen, v)
			return
		case "Transfer-Encoding":
			te = append(te, v)
			return
		case "Connection":
			conn = append(conn, v)
			return
		case "Trailer":
			trailer = append(trailer, v)
			return
		case "Upgrade":
			if code == http.StatusSwitchingProtocols {
				break // kept for the client: it names the protocol
			}
			return
		case "Keep-Alive":
			keepAlive = v
			return
		case "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te":
			return
		}
		hb.Add(k, v)
	})
	if err != nil {
		return err
	}
	// Fields the Connection header names are hop-by-hop too.
	for _, v := range conn {
		for _, name := range strings.Split(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				k := textproto.CanonicalMIMEHeaderKey(name)
				if k != "Upgrade" || code != http.StatusSwitchingProtocols {
					delete(dst, k)
				}
			}
		}
	}
	x.keep = !httpguts.HeaderValuesContainsToken(conn, "close") &&
		(minor >= 1 || httpguts.HeaderValuesContainsToken(conn, "keep-alive")) &&
		!x.out.r.Close
	if x.c != nil {
		x.c.maxIdle = keepAliveIdle(keepAlive)
	}
	if code == http.StatusSwitchingProtocols {
		x.upgradeOK = httpguts.HeaderValuesContainsToken(conn, "upgrade")
		dst["Connection"] = []string{"Upgrade"}
		return nil
	}
	x.noBody = x.out.r.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	x.clen = -1
	// Content-Length is checked even where Transfer-Encoding overrides
	// it, as net/http does.
	chunkedTE := te
	if minor == 0 {
		chunkedTE = nil
	}
	f, err := h1.Frame(chunkedTE, clen, false)
	if err != nil {
		return err
	}
	if len(te) > 0 {
		if minor == 0 {
			// RFC 9112 6.1: "MUST treat the message as if the framing is
			// faulty" (net/http reads the body until close).
			return fmt.Errorf("Transfer-Encoding in an HTTP/1.0 response")
		}
		x.chunked = !x.noBody
	} else if f.Length >= 0 {
		if code != http.StatusNoContent {
			dst["Content-Length"] = []string{f.LengthField}
		}
		if !x.noBody {
			x.clen = f.Length
		}
	}
	if x.chunked {
		for _, v := range trailer {
			for _, k := range strings.Split(v, ",") {
				if k = textproto.TrimString(k); k != "" {
					if k = textproto.CanonicalMIMEHeaderKey(k); !hopByHop[k] {
						x.trailers = append(x.trailers, k)
					}
				}
			}
		}
		if len(x.trailers) > 0 {
			dst["Trailer"] = []string{strings.Join(x.trailers, ", ")}
		}
	}
	return nil
}

// keepAliveIdle is how long a connection may stay idle by the backend's
// "Keep-Alive: timeout=N" (seconds; RFC 2068 19.7.1.1, as Node, uvicorn
// and Apache send it): a second less than it says, so that a request is
// not sent just as the backend gives the connection up, and never more
// than idleConnTimeout.
func keepAliveIdle(v string) time.Duration {
	for v != "" {
		var p string
		p, v, _ = strings.Cut(v, ",")
		k, val, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(textproto.TrimString(k), "timeout") {
			continue
		}
		n, err := strconv.Atoi(textproto.TrimString(val))
		if err != nil || n < 0 {
			break
		}
		d := time.Duration(min(n, int(idleConnTimeout/time.Second))) * time.Second
		return d - min(time.Second, d/2)
	}
	return idleConnTimeout
}

// finish ends the exchange: the connection goes back to the pool when the
// body was read to its end, the request body was written whole and
// neither side asked to close; else it is closed.
func (x *exchange) finish() {
	if x.ended {
		return
	}
	x.ended = true
	reuse := x.keep && x.eof
	if x.wrote != nil && reuse {
		// A backend that keeps the connection after answering has read
		// the whole request body, or is about to; the writer's last
		// flush may still be returning. One that stopped reading without
		// closing costs the connection, after a short wait.
		t := time.NewTimer(bodyWriteWait)
		select {
		case err := <-x.wrote:
			reuse = err == nil
		case <-t.C:
			reuse = false
		}
		t.Stop()
	}
	// stop reports false when the client went away: the deadline is set.
	if !x.stop() {
		reuse = false
	}
	if reuse {
		x.b.pool.put(x.c)
		return
	}
	x.c.close()
}

// read reads the response body.
func (x *exchange) read(p []byte) (int, error) {
	if x.eof {
		return 0, io.EOF
	}
	n, err := x.body.Read(p)
	if err == io.EOF {
		x.eof = true
	}
	return n, err
}

// lengthBody is a body of n bytes.
type lengthBody struct {
	br *bufio.Reader
	n  int64
}

func (l *lengthBody) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.br.Read(p)
	l.n -= int64(n)
	if l.n == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// chunkedBody is a chunked body; its trailers go into the client's
// response header once it ends (forward.go copies them).
type chunkedBody struct {
	r   io.Reader
	br  *bufio.Reader
	x   *exchange
	end http.Header // the trailers, once read
}

func (c *chunkedBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		if terr := h1.ReadTrailer(c.br, maxResponseHeader, &c.end); terr != nil {
			return n, terr
		}
	}
	return n, err
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

// writeRequestHead writes out's request line and header section: the
// client's fields but the hop-by-hop ones and those a client must not say
// (headers.go), then piku's forwarding headers, like piku's nginx did.
func writeRequestHead(w *bufio.Writer, out *outgoing, chunked bool) {
	req, info := out.r, out.info
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(req.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(req.Host)
	w.WriteString("\r\n")
	var named []string // fields the Connection header names
	if conn := req.Header["Connection"]; len(conn) > 0 {
		for _, v := range conn {
			for _, name := range strings.Split(v, ",") {
				if name = textproto.TrimString(name); name != "" {
					named = append(named, textproto.CanonicalMIMEHeaderKey(name))
				}
			}
		}
	}
	for k, vs := range req.Header {
		if !forwardable(k, info) {
			continue
		}
		if len(named) > 0 && containsString(named, k) {
			continue
		}
		if k == "Cf-Connecting-Ip" && info.client == info.peer {
			continue
		}
		for _, v := range vs {
			writeField(w, k, v)
		}
	}
	if httpguts.HeaderValuesContainsToken(req.Header["Te"], "trailers") {
		w.WriteString("Te: trailers\r\n")
	}
	if out.upgrade != "" {
		w.WriteString("Connection: Upgrade\r\nUpgrade: ")
		w.WriteString(out.upgrade)
		w.WriteString("\r\n")
	}
	w.WriteString("X-Forwarded-For: ")
	w.WriteString(info.client)
	if info.client != info.peer {
		w.WriteString(", ")
		w.WriteString(info.peer)
	}
	w.WriteString("\r\nX-Real-Ip: ")
	w.WriteString(info.client)
	w.WriteString("\r\nX-Remote-Address: ")
	w.WriteString(info.client)
	if info.secure {
		w.WriteString("\r\nX-Forwarded-Proto: https")
	} else {
		w.WriteString("\r\nX-Forwarded-Proto: http")
	}
	w.WriteString("\r\nX-Forwarded-Host: ")
	w.WriteString(req.Host)
	w.WriteString("\r\nX-Forwarded-Port: ")
	w.WriteString(info.port)
	w.WriteString("\r\nX-Request-Start: t=")
	var num [20]byte
	w.Write(strconv.AppendInt(num[:0], info.start.UnixMicro(), 10))
	w.WriteString("\r\n")
	switch {
	case chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			names := make([]string, 0, len(req.Trailer))
			for k := range req.Trailer {
				if forwardable(k, info) {
					names = append(names, k)
				}
			}
			if len(names) > 0 {
				writeField(w, "Trailer", strings.Join(names, ", "))
			}
		}
	case out.body != nil && out.body.size > 0:
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(num[:0], out.body.size, 10))
		w.WriteString("\r\n")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	w.WriteString("\r\n")
}

// forwardable reports whether a client's header or trailer field named k
// (canonical) goes to the backend: not a hop-by-hop or framing one, not
// one a client must not say (headers.go), and without an underscore
// unless the app allows those.
func forwardable(k string, info *reqInfo) bool {
	return !hopByHop[k] && !isSpoofable(k) &&
		(info.route.UnderscoresInHeaders || strings.IndexByte(k, '_') < 0)
}

// hopByHop are the fields that concern one connection only (RFC 9110
// 7.6.1, and those httputil.ReverseProxy drops), and the framing fields the
// upstream client writes itself.
var hopByHop = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Host": true, "Content-Length": true,
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func writeField(w *bufio.Writer, k, v string) {
	w.WriteString(k)
	w.WriteString(": ")
	if strings.ContainsAny(v, "\r\n") {
		v = h1.HeaderNewlines.Replace(v)
	}
	w.WriteString(strings.TrimSpace(v))
	w.WriteString("\r\n")
}

// errBodyDropped ends the body writer of a request whose final answer came
// without "100 Continue": the body is not sent.
var errBodyDropped = errors.New("request body not sent: the backend answered without 100 Continue")

// writeBody writes out's body (and trailers) after the header, once
// proceed (when not nil) says so or expectContinueTimeout passed; size
// is the length announced, or -1 when chunked.
func writeBody(w *bufio.Writer, out *outgoing, body io.Reader, chunked bool, proceed <-chan bool) error {
	req, size := out.r, out.body.size
	if proceed != nil {
		t := time.NewTimer(expectContinueTimeout)
		select {
		case send := <-proceed:
			if !send {
				t.Stop()
				return errBodyDropped
			}
		case <-t.C:
		}
		t.Stop()
	}
	if !chunked {
		n, err := io.Copy(w, body)
		if err == nil && n != size {
			err = fmt.Errorf("request body was %d bytes, not the %d announced", n, size)
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
	// request's own map; they go by the rules of header fields.
	for k, vs := range req.Trailer {
		if !forwardable(k, out.info) {
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
