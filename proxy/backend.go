package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// backend is the live state of one backend address. It outlives route
// swaps, so in-flight counts stay right while old instances drain.
type backend struct {
	addr      string
	s         *Server
	inflight  atomic.Int64
	downUntil atomic.Int64 // unix nanoseconds
	pool      connPool     // idle keep-alive connections to addr
}

func (b *backend) down(now time.Time) bool { return b.downUntil.Load() > now.UnixNano() }

func (b *backend) markDown() {
	b.downUntil.Store(time.Now().Add(b.s.o.DownFor).UnixNano())
}

// done ends one request to b and wakes Drain when b becomes idle.
func (b *backend) done() {
	if b.inflight.Add(-1) == 0 {
		b.s.idleMu.Lock()
		close(b.s.idle)
		b.s.idle = make(chan struct{})
		b.s.idleMu.Unlock()
	}
}

// errNoBackend is returned when an app has no backend left to try.
var errNoBackend = errors.New("no backend")

// pick chooses the next backend of app round robin, skipping the ones in
// tried and, while others remain, the ones marked down. The backend is
// counted in flight before pick returns; should the route table change
// meanwhile, the choice is made again from the new table, so that once
// SetRoute has returned, Drain sees every request sent to an old backend.
func (s *Server) pick(app string, tried []*backend) *backend {
	for {
		t := s.table.Load()
		rt := t.apps[app]
		if rt == nil || len(rt.backends) == 0 {
			return nil
		}
		n := uint32(len(rt.backends))
		start := rt.next.Add(1) - 1
		now := time.Now()
		var b, fallback *backend
		for i := range n {
			c := rt.backends[(start+i)%n]
			if contains(tried, c) {
				continue
			}
			if c.down(now) {
				if fallback == nil {
					fallback = c
				}
				continue
			}
			b = c
			break
		}
		if b == nil {
			b = fallback
		}
		if b == nil {
			return nil
		}
		b.inflight.Add(1)
		if s.table.Load() == t {
			return b
		}
		b.done()
	}
}

func contains(bs []*backend, b *backend) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}

// Drain returns once no request is in flight to any of addrs, or when ctx
// ends. It first ends the long-lived streams to addrs (event streams and
// upgraded connections such as WebSockets, streams.go), so that only
// ordinary requests are waited for. It returns how many requests were
// still in flight when ctx ended: 0 unless ctx ended first.
func (s *Server) Drain(ctx context.Context, addrs []string) int {
	if n := s.streams.end(addrs); n > 0 {
		s.log.Info("draining: ended the long-lived streams", "backends", addrs, "streams", n)
	}
	for {
		s.idleMu.Lock()
		ch := s.idle
		s.idleMu.Unlock()
		var busy int64
		s.mu.Lock()
		for _, a := range addrs {
			if b := s.backends[a]; b != nil {
				busy += b.inflight.Load()
			}
		}
		s.mu.Unlock()
		if busy <= 0 {
			return 0
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return int(busy)
		}
	}
}

// InFlight returns the number of requests in flight to addr.
func (s *Server) InFlight(addr string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.backends[addr]; b != nil {
		return b.inflight.Load()
	}
	return 0
}

// send picks a backend of the request's app, sends out there with the
// upstream client (upstream.go) and tries another backend when the
// connection is refused and no byte of the body was sent. The backend is
// counted in flight until the exchange is ended (forward.go).
func (s *Server) send(out *outgoing) (*exchange, error) {
	info := out.info
	var tried []*backend
	for {
		b := s.pick(info.route.App, tried)
		if b == nil {
			if len(tried) > 0 {
				return nil, lastErr(info)
			}
			return nil, errNoBackend
		}
		if s.isSelf(b.addr) {
			b.done()
			s.log.Error("backend is the proxy's own listener; not forwarding", "app", info.route.App, "backend", b.addr)
			info.err = errSelf
			tried = append(tried, b)
			continue
		}
		x, err := s.roundTrip(b, out)
		if err == nil {
			if isStream(x) {
				s.markStream(out, b.addr, x.c.nc, isEventStream(x.out.header))
			}
			return x, nil
		}
		b.done()
		if !isDialError(err) || out.r.Context().Err() != nil {
			return nil, err
		}
		b.markDown()
		s.log.Warn("backend refused the connection", "app", info.route.App, "backend", b.addr, "err", err)
		info.err = err
		tried = append(tried, b)
		if out.body != nil && out.body.sent.Load() {
			return nil, err
		}
	}
}

func lastErr(info *reqInfo) error {
	if info.err != nil {
		return info.err
	}
	return errNoBackend
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// sentBody is a request's body as the upstream client sends it: it
// tells whether any of it was read, and leaves closing it to the server,
// so that a retry can still send it. Each attempt to send it reads it
// through an attempt of its own (attempt); revoke takes it from an
// attempt that has not read it yet, so that it can go on a new connection
// whole. A body read whole beforehand (buf) can be sent any number of
// times.
type sentBody struct {
	rc     io.ReadCloser
	size   int64  // the length sent as Content-Length, or -1 for chunked
	buf    []byte // the whole body when it was read beforehand, else nil
	mu     sync.Mutex
	gen    int // the attempt that may read rc
	sent   atomic.Bool
	failed atomic.Bool // reading it failed: the client sent a broken body
}

// errBodyRevoked ends an attempt that lost the request body to a retry.
var errBodyRevoked = errors.New("request body taken by a new attempt")

// attempt returns the reader of the body for a new attempt to send it.
func (b *sentBody) attempt() io.Reader {
	if b.buf != nil {
		return bytes.NewReader(b.buf)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return &bodyAttempt{b: b, gen: b.gen}
}

// revoke takes the body from the attempt that holds it and reports
// whether it may be sent again whole: it was read beforehand, or no byte
// of it was read yet.
func (b *sentBody) revoke() bool {
	if b.buf != nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sent.Load() {
		return false
	}
	b.gen++
	return true
}

// bodyAttempt reads a sentBody for one attempt to send it.
type bodyAttempt struct {
	b       *sentBody
	gen     int
	claimed bool
}

func (a *bodyAttempt) Read(p []byte) (int, error) {
	b := a.b
	if !a.claimed {
		b.mu.Lock()
		if b.gen != a.gen {
			b.mu.Unlock()
			return 0, errBodyRevoked
		}
		b.sent.Store(true)
		b.mu.Unlock()
		a.claimed = true
	}
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		b.failed.Store(true)
	}
	return n, err
}
