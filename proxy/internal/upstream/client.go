package upstream

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/piku/piku/proxy/internal/h1"
)

// The upstream client. http.Transport runs two goroutines per backend
// connection (a reader and a writer) and hands every request and response
// between them and the caller; for small proxied requests that hand-off
// cost more CPU than the proxying. The upstream client sends a request and
// reads its response on the caller's own goroutine, over keep-alive
// connections pooled per backend. Only a request body is written from a
// goroutine of its own, so that a backend answering before it has read the
// body (an early 413, a redirect) cannot deadlock the exchange.
//
// The request is written straight from the client's request (no copy of
// it is made) and the response's header fields are parsed straight into
// the client's response header, without the hop-by-hop ones.
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
//   - a request that fails on a reused connection is sent again once on a
//     new connection by http.Transport's rule (retryable): when none of
//     its bytes could be written, or when it is idempotent, no byte of
//     the answer came and its body, if any, can go again whole; never a
//     POST whose body the backend may have read (a double charge);
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

// Client sends requests to backends. Its zero value is not ready: set
// both timeouts.
type Client struct {
	// DialTimeout bounds connecting to a backend.
	DialTimeout time.Duration
	// ResponseHeaderTimeout is how long a backend may take to start its
	// answer once the request body was written; a write that makes no
	// progress for as long fails too.
	ResponseHeaderTimeout time.Duration
}

// conn is one connection to a backend.
type conn struct {
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	lastUsed  time.Time
	maxIdle   time.Duration // how long it may stay idle: the backend's Keep-Alive timeout, or idleConnTimeout
	announced bool          // the backend announced a Keep-Alive timeout
	peek      *peeker       // looks at it before reuse (usable), made at the first look
	deadline  time.Time     // the read deadline last set
	written   atomic.Int64  // bytes written to it, from the body writer too
	// cut ends its reads and writes at once (the client went away): made
	// once, as each exchange registers it with its request's context.
	cut func()
}

func (c *conn) close() { _ = c.nc.Close() }

// setReadDeadline sets the read deadline to now+d (none for d = 0) unless
// the one set may stay (h1.KeepDeadline).
func (c *conn) setReadDeadline(now time.Time, d time.Duration) {
	if t, ok := h1.KeepDeadline(c.deadline, now, d); !ok {
		_ = c.nc.SetReadDeadline(t)
		c.deadline = t
	}
}

// Pool holds one backend's idle connections, most recently used last. Its
// zero value is an empty pool.
type Pool struct {
	mu    sync.Mutex
	idle  []*conn
	timer *time.Timer // closes expired connections while any are idle
	// closesAfterAnswer is set once the backend was found to close a
	// connection right after its answer without saying so (closeAfter):
	// its connections are no longer kept.
	closesAfterAnswer atomic.Bool
	// keepsAlive is set once the backend showed that it keeps
	// connections: it announced a Keep-Alive timeout, answered on a
	// reused connection, or left one open for closeAfter after its answer
	// (prove). Until then only a request that can be sent again goes on
	// a kept connection (mayReuse).
	keepsAlive atomic.Bool
	proof      *time.Timer // runs prove while keepsAlive is unset and connections are idle
}

// mayReuse reports whether req may go on a kept connection of p: one the
// backend may be closing as req is sent costs a request that cannot be
// sent again (retryable) its answer, so such requests wait until the
// backend has shown that it keeps its connections.
func (p *Pool) mayReuse(req *Request) bool {
	return p.keepsAlive.Load() || idempotent(req.R) && (req.Body == nil || req.Body.Buf != nil)
}

// closeAfter is how soon after its answer a backend that closes a
// connection it announced no Keep-Alive timeout for is taken to close
// every connection after its answer (uWSGI's http-socket does, without
// "Connection: close"). Servers that keep connections alive keep them for
// seconds (gunicorn 2 s, Node and uvicorn 5 s, puma 20 s). Reusing such a
// connection races the backend's close: a request sent as it closes is
// lost, and one that is not idempotent cannot be sent again.
const closeAfter = time.Second

// get returns an idle connection that may carry a request, or nil. One
// the backend closed, or sent bytes on since its last answer, or kept for
// longer than the backend said it would keep it, is closed instead.
func (p *Pool) get(now time.Time) *conn {
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
		ok, closed := usable(c)
		if ok {
			return c
		}
		if closed && !c.announced && now.Sub(c.lastUsed) < closeAfter {
			p.closesAfterAnswer.Store(true)
		}
		c.close()
	}
}

// pop takes the most recently used idle connection, or returns nil.
func (p *Pool) pop() *conn {
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
func (p *Pool) put(c *conn) {
	c.lastUsed = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= maxIdlePerBackend || p.closesAfterAnswer.Load() {
		c.close()
		return
	}
	p.idle = append(p.idle, c)
	if p.timer == nil {
		p.timer = time.AfterFunc(idleConnTimeout, p.expire)
	}
	if p.proof == nil && !p.keepsAlive.Load() {
		p.proof = time.AfterFunc(closeAfter, p.prove)
	}
}

// prove looks at the idle connections of a backend not yet known to keep
// connections: one still open closeAfter after its answer shows that it
// does (a backend that closes after every answer closes at once). It runs
// again while connections stay idle and nothing is known.
func (p *Pool) prove() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proof = nil
	now := time.Now()
	for _, c := range p.idle {
		if now.Sub(c.lastUsed) < closeAfter {
			continue
		}
		if ok, _ := usable(c); ok {
			p.keepsAlive.Store(true)
			return
		}
	}
	if len(p.idle) > 0 && !p.closesAfterAnswer.Load() {
		p.proof = time.AfterFunc(closeAfter, p.prove)
	}
}

// expire closes the connections idle for longer than idleConnTimeout and
// runs again while any remain.
func (p *Pool) expire() {
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

// CloseIdle closes every idle connection.
func (p *Pool) CloseIdle() {
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
	if p.proof != nil {
		p.proof.Stop()
		p.proof = nil
	}
}

// errNothingSent marks a failure on a reused connection after which the
// request may be sent again (retryable).
type errNothingSent struct{ err error }

func (e errNothingSent) Error() string { return e.err.Error() }
func (e errNothingSent) Unwrap() error { return e.err }

// RoundTrip sends req to the backend at addr, on a connection of p when
// one is usable, and returns the exchange once the response's header was
// parsed into req.Header. The exchange must be ended with Finish (or
// Abort).
func (cl *Client) RoundTrip(p *Pool, addr string, req *Request) (*Exchange, error) {
	if !p.mayReuse(req) {
		// Dialled anew; the backend's answer may show it keeps
		// connections.
	} else if c := p.get(time.Now()); c != nil {
		x, err := cl.exchange(p, c, req, true)
		var ns errNothingSent
		if !errors.As(err, &ns) {
			return x, err
		}
	}
	c, err := cl.dial(req.R.Context(), addr)
	if err != nil {
		return nil, err
	}
	return cl.exchange(p, c, req, false)
}

// dial opens a new connection to addr.
func (cl *Client) dial(ctx context.Context, addr string) (*conn, error) {
	d := net.Dialer{Timeout: cl.DialTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10), maxIdle: idleConnTimeout}
	c.cut = func() { _ = nc.SetDeadline(aLongTimeAgo) }
	// A write to the backend that makes no progress for the response
	// header timeout fails: a backend that neither reads the request
	// body nor answers cannot hold the request for ever, now that the
	// header timeout starts after the body.
	c.bw = bufio.NewWriterSize(&countingWriter{c: c, d: cl.ResponseHeaderTimeout}, 16<<10)
	return c, nil
}

// countingWriter writes to c's connection, each write bounded by d, and
// counts the bytes written (conn.written).
type countingWriter struct {
	c *conn
	d time.Duration
}

func (w *countingWriter) Write(p []byte) (int, error) {
	_ = w.c.nc.SetWriteDeadline(time.Now().Add(w.d))
	n, err := w.c.nc.Write(p)
	w.c.written.Add(int64(n))
	return n, err
}

// aLongTimeAgo is a deadline in the past: it makes blocked reads and writes
// on a connection return at once.
var aLongTimeAgo = time.Unix(1, 0)
