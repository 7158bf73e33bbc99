package proxy

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
)

// Long-lived streams (an event stream, a connection switched to another
// protocol such as a WebSocket) would hold a drain until its deadline:
// they do not end by themselves. Drain therefore ends the streams to the
// addresses it drains as soon as it starts, and waits its bound only for
// ordinary requests.
//
// A stream is ended through its request's context, which the forwarding
// code already obeys (a cancelled request cuts the backend connection; a
// switched connection is closed both ways): each request served gets a
// cancellable context carrying a streamSlot, and send marks the slot with
// its backend once the answer turns out to be a stream.

// streamSlot is one request as the stream registry sees it. It is also the
// request's context (one allocation for both), which answers
// Value(streamSlotKey{}) with itself.
type streamSlot struct {
	context.Context
	cancel context.CancelFunc
	addr   string // the backend, once the answer is a stream; guarded by streams.mu
	// marked is set with addr, so that forget takes the registry's lock
	// only for the few requests whose answer was a stream.
	marked atomic.Bool
}

// Value returns the slot itself for streamSlotKey, else the parent's value.
func (s *streamSlot) Value(key any) any {
	if key == (streamSlotKey{}) {
		return s
	}
	return s.Context.Value(key)
}

// streams are the requests whose answer is a long-lived stream, by slot.
type streams struct {
	mu  sync.Mutex
	set map[*streamSlot]struct{}
}

type streamSlotKey struct{}

// trackStreams wraps h so that the streams it answers can be ended by
// Drain.
func (s *Server) trackStreams(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		slot := &streamSlot{Context: ctx, cancel: cancel}
		defer func() {
			s.streams.forget(slot)
			cancel()
		}()
		h.ServeHTTP(w, r.WithContext(slot))
	})
}

// markStream records that the answer to r, from backend addr, is a
// long-lived stream.
func (s *Server) markStream(r *http.Request, addr string) {
	slot, ok := r.Context().Value(streamSlotKey{}).(*streamSlot)
	if !ok {
		return
	}
	s.streams.mu.Lock()
	defer s.streams.mu.Unlock()
	if s.streams.set == nil {
		s.streams.set = map[*streamSlot]struct{}{}
	}
	slot.addr = addr
	slot.marked.Store(true)
	s.streams.set[slot] = struct{}{}
}

// forget removes slot, when its request has ended. An ordinary request
// (never marked) takes no lock: the registry's mutex is shared by every
// request of the proxy.
func (st *streams) forget(slot *streamSlot) {
	if !slot.marked.Load() {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if slot.addr != "" {
		delete(st.set, slot)
	}
}

// end ends every stream to one of addrs and returns how many it ended.
func (st *streams) end(addrs []string) int {
	st.mu.Lock()
	var ending []*streamSlot
	for slot := range st.set {
		if slices.Contains(addrs, slot.addr) {
			ending = append(ending, slot)
			delete(st.set, slot)
		}
	}
	st.mu.Unlock()
	for _, slot := range ending {
		slot.cancel()
	}
	return len(ending)
}

// isStream reports whether an answer of status with header h is a
// long-lived stream.
func isStream(status int, h http.Header) bool {
	return status == http.StatusSwitchingProtocols || isEventStream(h)
}
