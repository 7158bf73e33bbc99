package proxy

import (
	"sync/atomic"
	"time"
)

// activity is when an app with Route.TrackActivity last had a request,
// for the daemon's idle timer: a request counts until it ends, so an app
// is idle from the end of its last request, never while one is in flight
// (a long upload, a slow report, an open WebSocket or event stream).
type activity struct {
	last     atomic.Int64 // UnixNano of the last request's end, or of the start of tracking
	inflight atomic.Int64 // requests not yet ended
}

func newActivity(now time.Time) *activity {
	a := &activity{}
	a.last.Store(now.UnixNano())
	return a
}

// touch records now as the last activity.
func (a *activity) touch() { a.last.Store(time.Now().UnixNano()) }

// begin counts a request that starts.
func (a *activity) begin() { a.inflight.Add(1) }

// end counts a request that ended now. The time is stored first, so a
// reader that sees no request in flight sees its end.
func (a *activity) end() {
	a.last.Store(time.Now().UnixNano())
	a.inflight.Add(-1)
}

// lastRequest is the end of the last request, or now while one is in
// flight.
func (a *activity) lastRequest() time.Time {
	if a.inflight.Load() > 0 {
		return time.Now()
	}
	return time.Unix(0, a.last.Load())
}
