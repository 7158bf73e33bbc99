package h1

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server serves HTTP/1.x on the plain-HTTP listener, in place of
// net/http's server (HTTPS, and with it HTTP/2, stays on net/http). It
// calls the same http.Handler, but spends less per request than net/http
// does for what a proxy needs:
//
//   - no goroutine and read per request to notice a client going away: a
//     request still running after clientWatchDelay starts one (so a long
//     poll or an event stream still learns of it, and the backend's
//     connection is cut);
//   - read deadlines set only when they move by more than a second, and
//     the slow-client deadline only when a request's header did not come
//     in one read;
//   - one string for a request's whole header section, the response header
//     map reused per connection and written unsorted, a response body of up
//     to 2 KiB of unknown length sent with a Content-Length.
//
// What it keeps of net/http's behaviour, and the tests hold it to:
// keep-alive and pipelining, HTTP/1.0, Expect: 100-continue, chunked
// bodies and trailers both ways, the request-smuggling rules (Content-Length
// and Transfer-Encoding checked as net/http does), 431 beyond the header
// limit, slow clients cut off after the header timeout, Hijack for
// WebSockets, panics (http.ErrAbortHandler) ending only their connection,
// and a graceful Shutdown that closes idle connections and waits for busy
// ones.
type Server struct {
	handler           http.Handler
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
	maxFields         int // 0: no limit
	maxLineBytes      int // 0: no limit
	baseCtx           context.Context
	connState         func(net.Conn, http.ConnState) // nil = none
	log               *slog.Logger

	date        atomic.Pointer[dateLine]
	closing     atomic.Bool
	noKeepAlive atomic.Bool   // SetKeepAlivesEnabled(false)
	done        chan struct{} // closed by Shutdown or Close

	mu          sync.Mutex
	lns         []net.Listener
	conns       map[*h1Conn]struct{}
	empty       chan struct{} // closed once closing and no connection is left
	emptyClosed bool
}

// Connection states, for Shutdown.
const (
	connIdle   int32 = iota // waiting for the first byte of a request
	connActive              // reading or serving a request
	connClosed              // closed by Shutdown while idle
)

const (
	// clientWatchDelay is how long a request runs before its connection is
	// watched for the client going away.
	clientWatchDelay = 100 * time.Millisecond
	// deadlineSlack is how far a read deadline may drift before it is set
	// again.
	deadlineSlack = time.Second
	// bufferBeforeChunking is how much of a body of unknown length is held
	// back, to send it with a Content-Length should the handler end first.
	bufferBeforeChunking = 2 << 10
	// maxDiscard is how much of a request body the handler did not read
	// is read and dropped to keep the connection.
	maxDiscard = 256 << 10
	// lingerTimeout is how long a connection closed after an error answer
	// keeps reading what the client still sends, so that the answer is
	// not lost to a reset.
	lingerTimeout = 500 * time.Millisecond
)

// Config holds the limits of a Server, as the fields of the same names in
// http.Server but for MaxHeaderBytes, which counts the request line too.
type Config struct {
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// MaxHeaderBytes bounds a request's header section, request line and
	// fields (431 beyond it), and a chunked body's trailer section.
	MaxHeaderBytes int
	// MaxHeaderFields bounds the fields of a request's header section and
	// of its trailer section (431 beyond it); 0 = no limit.
	MaxHeaderFields int
	// MaxHeaderLineBytes bounds each line of a request's header section,
	// without its line end: 414 for the request line, 400 for a field;
	// 0 = no limit.
	MaxHeaderLineBytes int
}

// NewServer returns a Server that serves h with the limits of o; base is
// the parent of every request's context, connState (nil for none) is
// told of connection state changes as http.Server.ConnState is.
func NewServer(h http.Handler, o Config, base context.Context, connState func(net.Conn, http.ConnState), log *slog.Logger) *Server {
	return &Server{
		handler:           h,
		readHeaderTimeout: o.ReadHeaderTimeout,
		idleTimeout:       o.IdleTimeout,
		maxHeaderBytes:    o.MaxHeaderBytes,
		maxFields:         o.MaxHeaderFields,
		maxLineBytes:      o.MaxHeaderLineBytes,
		baseCtx:           base,
		connState:         connState,
		log:               log,
		done:              make(chan struct{}),
		conns:             map[*h1Conn]struct{}{},
	}
}

// Serve accepts connections on ln until Shutdown or Close, and returns
// http.ErrServerClosed then.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			if !temporaryAcceptError(err) {
				return err
			}
			// Out of descriptors or memory: wait, as net/http does, for
			// connections to close.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Debug("accept failed; retrying", "err", err, "in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return http.ErrServerClosed
			}
			continue
		}
		delay = 0
		c := s.newConn(nc)
		if !s.track(c) {
			nc.Close()
			return http.ErrServerClosed
		}
		if s.connState != nil {
			s.connState(nc, http.StateNew)
		}
		go c.serve()
	}
}

func temporaryAcceptError(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Server) track(c *h1Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() && s.emptyClosed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// forget drops c from the connections Shutdown waits for.
func (s *Server) forget(c *h1Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if len(s.conns) == 0 && s.empty != nil && !s.emptyClosed {
		close(s.empty)
		s.emptyClosed = true
	}
}

// stop stops accepting and returns a channel closed once no connection is
// left; with force, every connection is closed, else only idle ones.
func (s *Server) stop(force bool) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closing.Swap(true) {
		close(s.done)
	}
	for _, ln := range s.lns {
		ln.Close()
	}
	if s.empty == nil {
		s.empty = make(chan struct{})
		if len(s.conns) == 0 {
			close(s.empty)
			s.emptyClosed = true
		}
	}
	for c := range s.conns {
		switch {
		case force:
			c.nc.Close()
		case !c.servedOnce.Load():
			// Accepted but no request yet: its first request may be on
			// its way (a client that connected as the shutdown began),
			// and closing would reset it, which a client retries only
			// on a connection it used before. It gets newConnGrace to
			// send it, served then with Connection: close, as
			// net/http's Shutdown leaves new connections for 5 s.
			_ = c.nc.SetReadDeadline(time.Now().Add(newConnGrace))
		case c.state.CompareAndSwap(connIdle, connClosed):
			c.nc.Close()
		}
	}
	return s.empty
}

// newConnGrace is how long a graceful stop waits for the first request of
// a connection accepted before it began.
const newConnGrace = 2 * time.Second

// SetKeepAlivesEnabled turns keep-alive on and off, as
// http.Server.SetKeepAlivesEnabled does: off, the connections idle
// between two requests are closed, and the others close after their
// response. Connections that have not sent their first request are left
// alone. It does not block on what it closes.
func (s *Server) SetKeepAlivesEnabled(v bool) {
	if v {
		s.noKeepAlive.Store(false)
		return
	}
	s.noKeepAlive.Store(true)
	s.mu.Lock()
	var idle []net.Conn
	for c := range s.conns {
		if c.servedOnce.Load() && c.state.CompareAndSwap(connIdle, connClosed) {
			idle = append(idle, c.nc)
		}
	}
	s.mu.Unlock()
	for _, nc := range idle {
		nc.Close()
	}
}

// Shutdown stops accepting, closes idle connections and waits until the
// busy ones finished their request, or ctx ends (its error is returned
// then). Upgraded connections are not waited for.
func (s *Server) Shutdown(ctx context.Context) error {
	empty := s.stop(false)
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.stop(true)
	return nil
}

// dateLine is the Date header of responses, made once a second.
type dateLine struct {
	sec  int64
	line []byte
}

// dateHeader returns "Date: ...\r\n" for now.
func (s *Server) dateHeader(now time.Time) []byte {
	sec := now.Unix()
	if d := s.date.Load(); d != nil && d.sec == sec {
		return d.line
	}
	b := append([]byte("Date: "), now.UTC().AppendFormat(nil, http.TimeFormat)...)
	d := &dateLine{sec: sec, line: append(b, "\r\n"...)}
	s.date.Store(d)
	return d.line
}

var (
	readerPool sync.Pool // *bufio.Reader of 4 KiB
	writerPool sync.Pool // *bufio.Writer of 4 KiB
)

const connBufSize = 4 << 10

// h1Conn is one client connection; its goroutine reads a request, runs
// the handler, finishes the response, and loops.
type h1Conn struct {
	s      *Server
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	remote string
	// ctx is the server's base context with the local address, canceled
	// when the connection's goroutine ends. Each request's context is a
	// child of it, not of the base context all connections share, as
	// net/http does: a child's registration locks its parent, and one
	// parent for every connection was a lock all requests took.
	ctx       context.Context
	cancelCtx context.CancelFunc
	// stopConnFunc unregisters cancelRequest from ctx.
	stopConnFunc func() bool
	state        atomic.Int32

	deadline time.Time // the read deadline last set
	hdr      http.Header
	hbuf     []byte // the response's header section, made at WriteHeader
	pending  []byte // body held back until its framing is known
	tmpl     http.Request
	served   bool // a request was read on it: it waits the idle timeout now
	// flushLater is set when the last response waits in bw, whole: it is
	// sent as the wait for the next request begins (sendAndWait).
	flushLater bool
	rc         syscall.RawConn       // nc's, for sendAndWait; made at its first call
	noRaw      bool                  // nc has none
	sendFn     func(fd uintptr) bool // sendStep, made with rc
	sendCalls  int                   // sendStep's calls in this sendAndWait
	sendErr    error                 // the flush's error in sendAndWait
	// servedOnce is served, for SetKeepAlivesEnabled.
	servedOnce atomic.Bool
	hijacked   bool

	// Expect: 100-continue: a body read asks for "100 Continue" unless the
	// response has begun (guarded by cmu, as the body may be read on
	// another goroutine).
	cmu         sync.Mutex
	canContinue atomic.Bool

	// The client watch, guarded by wmu.
	wmu        sync.Mutex
	wbodyDone  bool // the request body is read whole (or there is none)
	wdue       bool // clientWatchDelay has passed
	wstopped   bool // the handler returned or hijacked: no watch starts
	watching   bool
	waborted   bool
	wdone      chan struct{}
	wreq       *requestContext // the request being served, nil between requests
	watchTimer *time.Timer
}

func (s *Server) newConn(nc net.Conn) *h1Conn {
	c := &h1Conn{s: s, nc: nc, remote: nc.RemoteAddr().String()}
	c.ctx, c.cancelCtx = context.WithCancel(context.WithValue(s.baseCtx, http.LocalAddrContextKey, nc.LocalAddr()))
	// The connection's context ending (the server's base context
	// canceled) cancels the request it serves: one registration per
	// connection, not one per request.
	c.stopConnFunc = context.AfterFunc(c.ctx, c.cancelRequest)
	if br, ok := readerPool.Get().(*bufio.Reader); ok {
		br.Reset(nc)
		c.br = br
	} else {
		c.br = bufio.NewReaderSize(nc, connBufSize)
	}
	if bw, ok := writerPool.Get().(*bufio.Writer); ok {
		bw.Reset(nc)
		c.bw = bw
	} else {
		c.bw = bufio.NewWriterSize(nc, connBufSize)
	}
	return c
}

// setReadDeadline sets the read deadline to now+d (none for d = 0),
// unless the one set is a little earlier (see KeepDeadline).
func (c *h1Conn) setReadDeadline(now time.Time, d time.Duration) {
	if t, ok := KeepDeadline(c.deadline, now, d); !ok {
		_ = c.nc.SetReadDeadline(t)
		c.deadline = t
	}
}

// KeepDeadline returns the deadline now+d (the zero time for d = 0) and
// whether the deadline set, set, may stay instead: it does when it is at
// most deadlineSlack (or a quarter of d) earlier. Setting a deadline
// costs a timer update; most requests on a connection then cost none.
func KeepDeadline(set, now time.Time, d time.Duration) (time.Time, bool) {
	if d <= 0 {
		return time.Time{}, set.IsZero()
	}
	t := now.Add(d)
	if set.IsZero() {
		return t, false
	}
	early := t.Sub(set)
	return t, early >= 0 && early <= min(deadlineSlack, d/4)
}

// sendAndWait sends the response that waits in bw (flushLater), marks
// the connection idle and waits until the next request can be read, its
// read deadline passed or it was closed (the read that follows says
// which). The wait is armed before the response is written, so that no
// request can come unseen and the read that follows finds it: without it,
// the read right after the response finds nothing (Go's poller reads until
// EAGAIN, where nginx knows from epoll's edge that a short read emptied
// the socket), and a second read follows the poller's wake-up.
func (c *h1Conn) sendAndWait() error {
	c.flushLater = false
	if c.rc == nil && !c.noRaw {
		if sc, ok := c.nc.(syscall.Conn); ok {
			c.rc, _ = sc.SyscallConn()
		}
		if c.rc == nil {
			c.noRaw = true
		} else {
			c.sendFn = c.sendStep
		}
	}
	if c.rc == nil {
		err := c.bw.Flush()
		c.state.Store(connIdle)
		return err
	}
	c.sendCalls, c.sendErr = 0, nil
	_ = c.rc.Read(c.sendFn)
	if c.sendCalls == 0 {
		// The read could not begin (the connection closed, or its
		// deadline passed): the response goes out all the same.
		err := c.bw.Flush()
		c.state.Store(connIdle)
		return err
	}
	return c.sendErr
}

// sendStep is sendAndWait's step under the connection's read lock, the
// poller's readiness reset: the first call writes the response, marks the
// connection idle (a graceful stop may close it from then on) and asks to
// wait, unless the write failed or the server is closing; the second, once
// the connection is readable, ends the wait without reading.
//
// The poller's readiness, reset as the read begins, may have told of a
// request that came before it: one pipelined while this answer was made,
// or sent as soon as an answer written whole before this wait arrived.
// The first call therefore looks (pending) before it asks to wait: such
// a request would otherwise wait for the idle timeout, as no new data
// would wake the wait.
func (c *h1Conn) sendStep(fd uintptr) bool {
	c.sendCalls++
	if c.sendCalls > 1 {
		return true
	}
	if c.sendErr = c.bw.Flush(); c.sendErr != nil {
		return true
	}
	c.state.Store(connIdle)
	return c.s.closing.Load() || c.s.noKeepAlive.Load() || pending(fd)
}

func (c *h1Conn) serve() {
	defer c.close()
	defer c.cancelCtx()
	defer c.stopConnFunc()
	for {
		req, body, err := c.readRequest()
		if err != nil {
			c.reject(err)
			return
		}
		if !c.handle(req, body) || c.s.closing.Load() {
			return
		}
	}
}

// close ends the connection, unless a handler took it over.
func (c *h1Conn) close() {
	if c.hijacked {
		return
	}
	if c.flushLater {
		c.flushLater = false
		c.bw.Flush()
	}
	c.nc.Close()
	c.s.forget(c)
	if c.s.connState != nil {
		c.s.connState(c.nc, http.StateClosed)
	}
	c.br.Reset(nil)
	readerPool.Put(c.br)
	c.bw.Reset(nil)
	writerPool.Put(c.bw)
}

// reject answers a request that could not be read, if it deserves an
// answer, and closes the connection gracefully.
func (c *h1Conn) reject(err error) {
	var he *h1Error
	if !errors.As(err, &he) {
		return // the client went away, timed out, or the server is closing
	}
	c.bw.WriteString("HTTP/1.1 ")
	c.bw.WriteString(statusText(he.code))
	c.bw.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")
	c.bw.WriteString(statusText(he.code))
	if he.msg != "" {
		c.bw.WriteString(": ")
		c.bw.WriteString(he.msg)
	}
	c.bw.WriteString("\n")
	c.bw.Flush()
	c.linger()
}

// linger half-closes the connection and reads what the client still sends
// for a moment, so that a client still writing gets the answer before the
// connection is reset.
func (c *h1Conn) linger() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else if wc, ok := c.nc.(interface{ NetConn() net.Conn }); ok {
		if cw, ok := wc.NetConn().(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	c.br.Reset(c.nc)
	for {
		if _, err := c.br.Discard(connBufSize); err != nil {
			return
		}
	}
}

// handle serves one request and reports whether the connection can take
// the next one.
func (c *h1Conn) handle(req *http.Request, body *h1Body) bool {
	if !c.served {
		c.served = true
		c.servedOnce.Store(true)
	}
	ctx := newRequestContext(c.ctx)
	defer ctx.cancel()
	r := req.WithContext(ctx)
	if body != nil {
		body.req = r
		r.Body = body
	}
	c.armWatch(ctx, body == nil)
	if c.ctx.Err() != nil {
		// The connection's context ended before armWatch made ctx the
		// one cancelRequest cancels.
		ctx.cancel()
	}

	w := &h1Response{c: c, req: r, header: c.responseHeader(), clen: -1}
	w.head = r.Method == http.MethodHead
	w.closeAfter = r.Close
	ok := c.run(w, r)
	c.stopWatch()
	if w.hijacked {
		c.hijacked = true
		return false
	}
	if !ok {
		// A panic: the response is cut off where it was, after what the
		// handler wrote so far (flushed, as net/http's finalFlush does).
		// A body still being read elsewhere (the upstream client's
		// writer) is ended before the connection's reader goes back to
		// the pool.
		_ = c.bw.Flush()
		if body != nil {
			_ = c.nc.SetReadDeadline(aLongTimeAgo)
			body.Close()
		}
		return false
	}
	keep := w.finish(body)
	clear(c.hdr)
	return keep
}

// responseHeader returns the connection's response header map, empty.
func (c *h1Conn) responseHeader() http.Header {
	if c.hdr == nil {
		c.hdr = make(http.Header, 8)
	}
	return c.hdr
}

// run calls the handler, and reports false if it panicked.
func (c *h1Conn) run(w *h1Response, r *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			w.handlerDone = true
			if p != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.log.Error("panic serving "+c.remote, "err", p, "stack", string(buf))
			}
		}
	}()
	c.s.handler.ServeHTTP(w, r)
	w.handlerDone = true
	return true
}

// The client watch: while a request runs for longer than
// clientWatchDelay (and its body was read whole), a goroutine waits for
// the connection's next byte; EOF or an error there means the client went
// away, and cancels the request's context.

func (c *h1Conn) armWatch(req *requestContext, bodyDone bool) {
	c.wmu.Lock()
	c.wbodyDone, c.wdue, c.wstopped, c.watching, c.waborted = bodyDone, false, false, false, false
	c.wreq = req
	c.wmu.Unlock()
	if c.watchTimer == nil {
		c.watchTimer = time.AfterFunc(clientWatchDelay, c.watchDue)
		return
	}
	// A callback of the previous request that runs late finds this one's
	// state, and at worst watches it early.
	c.watchTimer.Reset(clientWatchDelay)
}

func (c *h1Conn) watchDue() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wstopped || c.watching {
		return
	}
	c.wdue = true
	if c.wbodyDone {
		c.startWatchLocked()
	}
}

// bodyDone is called once the request body was read whole.
func (c *h1Conn) bodyDone() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbodyDone = true
	if c.wdue && !c.wstopped && !c.watching {
		c.startWatchLocked()
	}
}

func (c *h1Conn) startWatchLocked() {
	if c.br.Buffered() > 0 {
		return // the client sent its next request already
	}
	c.watching = true
	c.wdone = make(chan struct{})
	_ = c.nc.SetReadDeadline(time.Time{})
	c.deadline = time.Time{}
	done, req := c.wdone, c.wreq
	go func() {
		defer close(done)
		_, err := c.br.Peek(1)
		c.wmu.Lock()
		aborted := c.waborted
		c.wmu.Unlock()
		if err != nil && !aborted {
			req.cancel()
		}
	}()
}

// cancelRequest cancels the context of the request being served, if any:
// the connection's context has ended.
func (c *h1Conn) cancelRequest() {
	c.wmu.Lock()
	req := c.wreq
	c.wmu.Unlock()
	if req != nil {
		req.cancel()
	}
}

// stopWatch ends the watch of the request that was served; the timer may
// still fire, and then finds nothing to do.
func (c *h1Conn) stopWatch() {
	c.watchTimer.Stop()
	c.wmu.Lock()
	c.wstopped = true
	watching, done := c.watching, c.wdone
	if watching {
		c.waborted = true
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	}
	c.wmu.Unlock()
	if watching {
		<-done
		c.deadline = aLongTimeAgo
		c.wmu.Lock()
		c.watching = false
		c.wmu.Unlock()
	}
}

// writeContinue sends "100 Continue" unless the response has begun.
func (c *h1Conn) writeContinue() {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if !c.canContinue.Load() {
		return
	}
	c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	c.bw.Flush()
	// Cleared only now, as net/http's expectContinueReader does: until
	// then a final answer (WriteHeader) waits on cmu, so that the two
	// never write to bw at once.
	c.canContinue.Store(false)
}

// hijackedConn is a connection a handler took over; reads return what was
// buffered first.
type hijackedConn struct {
	net.Conn
	buf []byte
}

func (h *hijackedConn) Read(p []byte) (int, error) {
	if len(h.buf) > 0 {
		n := copy(p, h.buf)
		h.buf = h.buf[n:]
		return n, nil
	}
	return h.Conn.Read(p)
}

// aLongTimeAgo is a deadline in the past: it makes blocked reads and writes
// return at once.
var aLongTimeAgo = time.Unix(1, 0)
