package proxy

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/piku/piku/proxy/internal/h1"
)

// Long-lived streams (an event stream, a connection switched to another
// protocol such as a WebSocket) would hold a drain until its deadline:
// they do not end by themselves. Drain therefore ends the streams to the
// addresses it drains as soon as it starts, and waits its bound only for
// ordinary requests.
//
// A stream is ended politely where the protocol has a way (its slot's
// polite function), and cut through its request's context otherwise,
// which the forwarding code already obeys (a cancelled request cuts the
// backend connection; a switched connection is closed both ways): each
// request served gets a cancellable context carrying a streamSlot, and
// send marks the slot with its backend once the answer turns out to be a
// stream.
//
//   - An event stream ends with the end of a chunked answer, the
//     terminating chunk, so that the browser's EventSource reconnects (to
//     the new instances) rather than report an error: its backend
//     connection is closed, and the forwarder, seeing the slot ended
//     politely, ends the answer as it ends any other (an event cut in
//     the middle is one an EventSource drops, as the HTML standard says
//     of an incomplete event at the end of a stream).
//   - A WebSocket gets close frames both ways (wsclose.go).
//
// A stream ended politely is cut after streamCloseGrace all the same.

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
	// polite ends the stream politely (nil: it is cut); guarded by
	// streams.mu.
	polite func()
	// grace cuts a stream ended politely that did not end in time;
	// guarded by streams.mu.
	grace *time.Timer
	// endedPolitely is set when a drain ended the stream politely: the
	// forwarder ends the answer as a whole one.
	endedPolitely atomic.Bool
}

// AfterFunc registers f to run once the request's context is canceled,
// as context.AfterFunc does (which uses this method, as does
// context.WithCancel): through the parent's own AfterFunc when it has one,
// which saves the goroutine context.AfterFunc would otherwise start to
// wait for a parent of a kind it does not know.
func (s *streamSlot) AfterFunc(f func()) (stop func() bool) { return h1.AfterFunc(s.Context, f) }

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
		// A request of piku's HTTP/1.1 server can be canceled as it is;
		// net/http's (HTTP/2, Options.NetHTTP1) gets a child context.
		ctx := r.Context()
		cancel, ok := h1.CancelFunc(ctx)
		if !ok {
			ctx, cancel = context.WithCancel(ctx)
		}
		slot := &streamSlot{Context: ctx, cancel: cancel}
		defer func() {
			s.streams.forget(slot)
			cancel()
		}()
		h.ServeHTTP(w, r.WithContext(slot))
	})
}

// markStream records that the answer to r, from backend addr, is a
// long-lived stream. backend is the backend connection, which ends an
// event stream politely (the forwarder's read of it ends).
func (s *Server) markStream(r *http.Request, addr string, backend io.Closer, eventStream bool) {
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
	if eventStream {
		slot.polite = func() {
			slot.endedPolitely.Store(true)
			backend.Close()
		}
	}
	slot.marked.Store(true)
	s.streams.set[slot] = struct{}{}
}

// setPolite makes end the way slot's stream is ended by a drain.
func (st *streams) setPolite(slot *streamSlot, end func()) {
	st.mu.Lock()
	defer st.mu.Unlock()
	slot.polite = end
}

// endedPolitely reports whether a drain ended r's answer politely: the
// forwarder ends it as a whole answer.
func endedPolitely(r *http.Request) bool {
	slot, ok := r.Context().Value(streamSlotKey{}).(*streamSlot)
	return ok && slot.endedPolitely.Load()
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
	if slot.grace != nil {
		slot.grace.Stop()
	}
}

// end ends every stream to one of addrs, politely where it can (cut after
// streamCloseGrace if it does not end by then), and returns how many it
// ended.
func (st *streams) end(addrs []string) int {
	type ending struct {
		slot   *streamSlot
		polite func()
	}
	var ends []ending
	st.mu.Lock()
	for slot := range st.set {
		if slices.Contains(addrs, slot.addr) {
			ends = append(ends, ending{slot, slot.polite})
			if slot.polite != nil {
				slot.grace = time.AfterFunc(streamCloseGrace, slot.cancel)
			}
			delete(st.set, slot)
		}
	}
	st.mu.Unlock()
	// A polite end may wait for a slow client (a close frame to write),
	// within the grace: the streams end side by side.
	var wg sync.WaitGroup
	for _, e := range ends {
		if e.polite != nil {
			wg.Go(e.polite)
		} else {
			e.slot.cancel()
		}
	}
	wg.Wait()
	return len(ends)
}

// isStream reports whether an answer of status with header h is a
// long-lived stream.
func isStream(status int, h http.Header) bool {
	return status == http.StatusSwitchingProtocols || isEventStream(h)
}
