package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The hold queue: while an app is held (Hold) and its route has no
// backend, its requests wait instead of failing: for an app asleep and
// waking, a stop-then-start rollout, a daemon starting. They go on as soon
// as backends arrive (SetBackends) or the hold is lifted (Release), and
// get a 503 with Retry-After when a bound of the app's HoldConfig runs
// out. Each app has its own state, lock and wake channel, so one app's
// held requests never delay another's; an app that is not held pays one
// nil check per request.

// Hold defaults, used where a HoldConfig field is 0.
const (
	// DefaultHoldTimeout is how long a request waits for its app. 30 s
	// covers the cold start of a typical Python, Node or Go web app (and
	// the supervisor's default 20 s wait for an instance to be ready)
	// while staying under the 60 s after which clients and the proxies in
	// front of piku (nginx's proxy_read_timeout, load balancers) commonly
	// give up themselves.
	DefaultHoldTimeout = 30 * time.Second
	// DefaultHoldRequests bounds the requests held for one app at once.
	DefaultHoldRequests = 256
	// DefaultHoldBodyBytes bounds the request body bytes buffered for
	// one app's held requests together.
	DefaultHoldBodyBytes = 8 << 20
)

// holdRetryAfter is the Retry-After of a 503 answered when a hold bound
// runs out.
const holdRetryAfter = 5 * time.Second

// Held requests that go on together would each open a connection to an
// instance that has just started, and a burst of them overflows a small
// listen backlog: Python's http.server listens with a backlog of 5, and
// the connections the kernel could not queue waited a minute for an
// answer that never came (in a stop-then-start rollout at 150 requests
// per second, 12 to 83 of about 450 requests, docs/PERFORMANCE.md). So the
// waiters of an app go on at most holdBurst at a time: each keeps its
// place until its request ends or holdPace has passed, whichever comes
// first (a held WebSocket keeps it no longer than that). The connections
// they open go back to the pool and serve the next ones.
const (
	holdBurst = 4
	holdPace  = 20 * time.Millisecond
)

// HoldConfig bounds the requests the proxy holds for one app
// (PIKU_HOLD_TIMEOUT, PIKU_HOLD_REQUESTS, PIKU_HOLD_BODY_BYTES). A field
// left 0 takes its default.
type HoldConfig struct {
	// Timeout is the longest one request waits; DefaultHoldTimeout.
	Timeout time.Duration
	// Requests bounds the requests waiting at once; DefaultHoldRequests.
	Requests int
	// BodyBytes bounds the body bytes buffered for the waiting requests
	// together; DefaultHoldBodyBytes. A request whose body does not fit
	// gets a 503.
	BodyBytes int64
}

func (c HoldConfig) withDefaults() HoldConfig {
	if c.Timeout <= 0 {
		c.Timeout = DefaultHoldTimeout
	}
	if c.Requests <= 0 {
		c.Requests = DefaultHoldRequests
	}
	if c.BodyBytes <= 0 {
		c.BodyBytes = DefaultHoldBodyBytes
	}
	return c
}

// holdFromEnv reads the PIKU_HOLD_* keys.
func holdFromEnv(env map[string]string) (HoldConfig, error) {
	var c HoldConfig
	if v := strings.TrimSpace(env["PIKU_HOLD_TIMEOUT"]); v != "" {
		d, err := ParseSeconds(v)
		if err != nil || d <= 0 {
			return HoldConfig{}, fmt.Errorf("PIKU_HOLD_TIMEOUT: %q is not a number of seconds or a duration such as 45s", v)
		}
		c.Timeout = d
	}
	n, err := parseInt(env, "PIKU_HOLD_REQUESTS", 0)
	if err != nil {
		return HoldConfig{}, err
	}
	c.Requests = int(n)
	if c.BodyBytes, err = parseInt(env, "PIKU_HOLD_BODY_BYTES", 0); err != nil {
		return HoldConfig{}, err
	}
	return c, nil
}

// ParseSeconds reads a number of seconds ("30") or a Go duration ("15m").
func ParseSeconds(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > 1<<31 {
			return 0, fmt.Errorf("%q is out of range", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number of seconds or a duration", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// holdState is one held app's queue. Requests wait while the app is held
// (Hold) and has no backend, or while it is paused (Pause), backends or
// not. Invariant: wake is open while they wait (waits), closed otherwise.
type holdState struct {
	mu      sync.Mutex
	held    bool          // Hold, until Release
	paused  atomic.Bool   // Pause, until Resume; read without mu by the handler
	up      bool          // the app's route has a backend
	wake    chan struct{} // closed when the requests may go on
	waiting int           // requests that took a place (Requests bounds it)
	queued  int           // of those, the ones whose body is read and that wait for the app
	bytes   int64         // body bytes buffered by the waiting requests
	gate    chan struct{} // the waiters going on: holdBurst at most
	pace    time.Duration // holdPace; tests change it
}

func newHoldState() *holdState {
	wake := make(chan struct{})
	close(wake) // nothing waits yet
	return &holdState{wake: wake, gate: make(chan struct{}, holdBurst), pace: holdPace}
}

// waits reports whether requests wait. h.mu is held.
func (h *holdState) waits() bool {
	return h.paused.Load() || (h.held && !h.up)
}

// change applies f to h's state and opens or closes wake to match. h.mu
// is held.
func (h *holdState) change(f func()) {
	before := h.waits()
	f()
	switch after := h.waits(); {
	case before && !after:
		close(h.wake)
	case !before && after:
		h.wake = make(chan struct{})
	}
}

// setUp records whether the app's route has backends, waking the waiters
// when it gets some (unless the app is paused).
func (h *holdState) setUp(up bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.change(func() { h.up = up })
}

// hold starts a hold; false when the app was held already.
func (h *holdState) hold() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held {
		return false
	}
	h.change(func() { h.held = true })
	return true
}

// release ends the hold and wakes the waiters (unless the app is paused).
func (h *holdState) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.change(func() { h.held = false })
}

// isHeld reports whether a hold is on.
func (h *holdState) isHeld() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

// pause and resume start and end a pause.
func (h *holdState) pause() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.change(func() { h.paused.Store(true) })
}

func (h *holdState) resume() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.change(func() { h.paused.Store(false) })
}

// enter takes a place in the queue; nil when the request need not wait
// (backends arrived, the hold ended), errHoldFull when the queue is full.
func (h *holdState) enter(limit int) (<-chan struct{}, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.waits() {
		return nil, nil
	}
	if h.waiting >= limit {
		return nil, errHoldFull
	}
	h.waiting++
	return h.wake, nil
}

func (h *holdState) leave() {
	h.mu.Lock()
	h.waiting--
	h.mu.Unlock()
}

// queue counts a request that has read its body and waits (d 1), or that
// stopped waiting (d -1).
func (h *holdState) queue(d int) {
	h.mu.Lock()
	h.queued += d
	h.mu.Unlock()
}

// reserve takes n bytes of the body budget limit.
func (h *holdState) reserve(n, limit int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bytes+n > limit {
		return false
	}
	h.bytes += n
	return true
}

func (h *holdState) unreserve(n int64) {
	h.mu.Lock()
	h.bytes -= n
	h.mu.Unlock()
}

var (
	errHoldFull     = errors.New("too many requests are waiting for the app")
	errHoldBody     = errors.New("the request body does not fit in what the proxy buffers while the app starts")
	errHoldTimeout  = errors.New("the app did not become ready in time")
	errHoldNoApp    = errors.New("the app is not running")
	errHoldShutdown = errors.New("the proxy is shutting down")
)

// Hold makes app's requests wait while its route has no backend, within
// the bounds of the route's HoldConfig, instead of failing. The hold
// stays until Release; backends that arrive meanwhile serve the waiting
// requests at once. Holding a held app does nothing.
func (s *Server) Hold(app string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.holds[app]
	if h == nil {
		h = newHoldState()
		s.holds[app] = h
	}
	if h.hold() {
		s.rebuild()
	}
}

// Release ends app's hold: the waiting requests go on to the backends
// the route has, or get a 503 when it has none. A pause (Pause) goes on.
func (s *Server) Release(app string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.holds[app]
	if h == nil {
		return
	}
	// The table the waiters will look up is rebuilt before they wake.
	if !h.paused.Load() {
		delete(s.holds, app)
		s.rebuild()
	}
	h.release()
}

// Pause makes app's requests wait, within the bounds of its HoldConfig,
// even while it has backends, until Resume: what kamal-proxy's pause
// does, for a release command that migrates the app's database. A hold
// (Hold, Release) and a pause are independent: requests wait while
// either says so.
func (s *Server) Pause(app string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.holds[app]
	if h == nil {
		h = newHoldState()
		s.holds[app] = h
		s.rebuild()
	}
	h.pause()
}

// Resume ends app's pause: the waiting requests go on to the backends the
// route has (or wait on while the app is held and has none).
func (s *Server) Resume(app string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.holds[app]
	if h == nil {
		return
	}
	if !h.isHeld() {
		delete(s.holds, app)
		s.rebuild()
	}
	h.resume()
}

// Held reports whether app is held and how many of its requests wait for
// it with their bodies read (a request still reading its body, which may
// yet be refused for its size, is not counted).
func (s *Server) Held(app string) (held bool, waiting int) {
	s.mu.Lock()
	h := s.holds[app]
	s.mu.Unlock()
	if h == nil {
		return false, 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return true, h.queued
}

// hold makes r wait for rt's app to have a backend (rt is held and has
// none). It returns the route to serve r with and a function to call once
// r is served, or false when it answered r itself: a 503 when a bound ran
// out, 499 when the client went away. A body is read into memory first,
// within the app's byte budget, so that the client is free while it
// waits and the request can be sent the moment a backend is there.
func (s *Server) hold(w http.ResponseWriter, r *http.Request, rt *route) (*route, func(), bool) {
	h, cfg := rt.hold, rt.Hold.withDefaults()
	wake, err := h.enter(cfg.Requests)
	if err != nil {
		s.holdFailed(w, rt, err)
		return nil, nil, false
	}
	if wake == nil {
		return s.afterHold(w, rt, func() {})
	}
	defer h.leave()
	if s.o.Wake != nil {
		s.o.Wake(rt.App)
	}
	var reserved int64
	done := func() { h.unreserve(reserved) }
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		body, n, err := bufferBody(r, h, cfg.BodyBytes)
		reserved = n
		if err != nil {
			done()
			if errors.Is(err, errHoldBody) {
				s.holdFailed(w, rt, err)
			} else {
				page(w, http.StatusBadRequest)
			}
			return nil, nil, false
		}
		r.Body = body
	}
	h.queue(1)
	defer h.queue(-1)
	t := time.NewTimer(cfg.Timeout)
	defer t.Stop()
	select {
	case <-wake:
	case <-t.C:
		done()
		s.holdFailed(w, rt, errHoldTimeout)
		return nil, nil, false
	case <-r.Context().Done():
		done()
		w.WriteHeader(StatusClientClosed)
		return nil, nil, false
	case <-s.closing:
		done()
		s.holdFailed(w, rt, errHoldShutdown)
		return nil, nil, false
	}
	// The waiters go on a few at a time (holdBurst).
	select {
	case h.gate <- struct{}{}:
	case <-t.C:
		done()
		s.holdFailed(w, rt, errHoldTimeout)
		return nil, nil, false
	case <-r.Context().Done():
		done()
		w.WriteHeader(StatusClientClosed)
		return nil, nil, false
	case <-s.closing:
		done()
		s.holdFailed(w, rt, errHoldShutdown)
		return nil, nil, false
	}
	var once sync.Once
	free := func() { once.Do(func() { <-h.gate }) }
	pace := time.AfterFunc(h.pace, free)
	unreserve := done
	done = func() {
		pace.Stop()
		free()
		unreserve()
	}
	return s.afterHold(w, rt, done)
}

// afterHold finds rt's app's route once the wait is over.
func (s *Server) afterHold(w http.ResponseWriter, rt *route, done func()) (*route, func(), bool) {
	now := s.table.Load().apps[rt.App]
	if now == nil || len(now.backends) == 0 {
		done()
		s.holdFailed(w, rt, errHoldNoApp)
		return nil, nil, false
	}
	return now, done, true
}

// holdFailed answers a held request whose bound ran out.
func (s *Server) holdFailed(w http.ResponseWriter, rt *route, err error) {
	s.log.Warn("held request refused", "app", rt.App, "err", err)
	unavailable(w, holdRetryAfter)
}

// bufferBody reads r's body into memory, taking its bytes from h's
// budget limit as it goes. It returns the body to send and the bytes
// taken, which the caller gives back.
func bufferBody(r *http.Request, h *holdState, limit int64) (io.ReadCloser, int64, error) {
	defer r.Body.Close()
	if r.ContentLength > 0 {
		if !h.reserve(r.ContentLength, limit) {
			return nil, 0, errHoldBody
		}
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, r.ContentLength, fmt.Errorf("reading the request body: %w", err)
		}
		return io.NopCloser(bytes.NewReader(buf)), r.ContentLength, nil
	}
	// Unknown length (chunked): the budget is taken piece by piece.
	var (
		b     bytes.Buffer
		taken int64
		chunk = make([]byte, 32<<10)
	)
	for {
		n, err := r.Body.Read(chunk)
		if n > 0 {
			if !h.reserve(int64(n), limit) {
				return nil, taken, errHoldBody
			}
			taken += int64(n)
			b.Write(chunk[:n])
		}
		if err == io.EOF {
			return io.NopCloser(&b), taken, nil
		}
		if err != nil {
			return nil, taken, fmt.Errorf("reading the request body: %w", err)
		}
	}
}

// unavailable answers 503 with Retry-After.
func unavailable(w http.ResponseWriter, retry time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)))
	page(w, http.StatusServiceUnavailable)
}
