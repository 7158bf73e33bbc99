package proxy

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/piku/piku/proxy/internal/upstream"
)

// backend is the live state of one backend address. It outlives route
// swaps, so in-flight counts stay right while old instances drain.
type backend struct {
	addr string
	// selfKey is addr as the proxy's own listeners are listed (s.self):
	// canonical, made once rather than on every request.
	selfKey   string
	s         *Server
	inflight  atomic.Int64
	downUntil atomic.Int64  // unix nanoseconds
	pool      upstream.Pool // idle keep-alive connections to addr
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
// upstream client (package upstream) and tries another backend when the
// connection is refused and no byte of the body was sent. The backend is
// counted in flight until the exchange is ended (forward.go).
func (s *Server) send(out *upstream.Request, info *reqInfo) (*upstream.Exchange, *backend, error) {
	var tried []*backend
	for {
		b := s.pick(info.route.App, tried)
		if b == nil {
			if len(tried) > 0 {
				return nil, nil, lastErr(info)
			}
			return nil, nil, errNoBackend
		}
		if s.self[b.selfKey] {
			b.done()
			s.log.Error("backend is the proxy's own listener; not forwarding", "app", info.route.App, "backend", b.addr)
			info.err = errSelf
			tried = append(tried, b)
			continue
		}
		x, err := s.up.RoundTrip(&b.pool, b.addr, out)
		if err == nil {
			if isStream(x.Status(), out.Header) {
				nc, _ := x.Conn()
				s.markStream(out.R, b.addr, nc, isEventStream(out.Header))
			}
			return x, b, nil
		}
		b.done()
		if !isDialError(err) || out.R.Context().Err() != nil {
			return nil, nil, err
		}
		b.markDown()
		s.log.Warn("backend refused the connection", "app", info.route.App, "backend", b.addr, "err", err)
		info.err = err
		tried = append(tried, b)
		if out.Body != nil && out.Body.Sent() {
			return nil, nil, err
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
