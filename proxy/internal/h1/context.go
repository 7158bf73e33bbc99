package h1

import (
	"context"
	"sync"
	"time"
)

// requestContext is a request's context: canceled when its handler
// returns, when the client goes away while it runs (the client watch) and
// when its connection's context is. Its values and deadline are the
// connection's.
//
// It stands in for context.WithCancel(connection's context), which cost
// about a tenth of the proxy's CPU per small request: a child registered
// in its parent's map under the parent's lock and removed again, a done
// channel made for every request, and the upstream client's
// context.AfterFunc, a second registration of the same kind. Here the
// connection registers once (h1Conn.cancelRequest), the done channel is
// made only when Done is called, and AfterFunc (which context.AfterFunc
// and context.WithCancel use for a context that has the method, as
// net/http's contexts do not) keeps its functions in a slice of the
// context.
type requestContext struct {
	conn context.Context // the connection's context

	mu    sync.Mutex
	err   error
	done  chan struct{} // made by Done; closed (or closedChan) once canceled
	funcs []afterFunc   // registered by AfterFunc and not stopped
	next  uint64        // the id of the next AfterFunc
	inner [2]afterFunc  // funcs' first backing array
}

type afterFunc struct {
	id uint64
	f  func()
}

// closedChan is the done channel of a context canceled before Done was
// called.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func newRequestContext(conn context.Context) *requestContext {
	rc := &requestContext{conn: conn}
	rc.funcs = rc.inner[:0]
	return rc
}

// Deadline returns the connection's deadline (it has none).
func (rc *requestContext) Deadline() (time.Time, bool) { return rc.conn.Deadline() }

// Value returns the connection context's value for key.
func (rc *requestContext) Value(key any) any { return rc.conn.Value(key) }

// Done returns a channel closed when the request's context is canceled.
func (rc *requestContext) Done() <-chan struct{} {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.done == nil {
		if rc.err != nil {
			rc.done = closedChan
		} else {
			rc.done = make(chan struct{})
		}
	}
	return rc.done
}

// Err returns nil until the context is canceled, then context.Canceled.
func (rc *requestContext) Err() error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.err
}

// String names the context as context.WithCancel's do.
func (rc *requestContext) String() string { return "h1.requestContext" }

// AfterFunc calls f in its own goroutine once the context is canceled (at
// once if it is), as context.AfterFunc does; stop unregisters f and
// reports whether that kept it from being called.
func (rc *requestContext) AfterFunc(f func()) (stop func() bool) {
	rc.mu.Lock()
	if rc.err != nil {
		rc.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	id := rc.next
	rc.next++
	rc.funcs = append(rc.funcs, afterFunc{id, f})
	rc.mu.Unlock()
	return func() bool { return rc.stop(id) }
}

func (rc *requestContext) stop(id uint64) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i, a := range rc.funcs {
		if a.id == id {
			last := len(rc.funcs) - 1
			copy(rc.funcs[i:], rc.funcs[i+1:])
			rc.funcs[last] = afterFunc{}
			rc.funcs = rc.funcs[:last]
			return true
		}
	}
	return false
}

// cancel cancels the context; the first call closes Done and starts the
// functions registered by AfterFunc.
func (rc *requestContext) cancel() {
	rc.mu.Lock()
	if rc.err != nil {
		rc.mu.Unlock()
		return
	}
	rc.err = context.Canceled
	if rc.done != nil {
		close(rc.done)
	}
	funcs := rc.funcs
	rc.funcs = nil
	rc.mu.Unlock()
	for _, a := range funcs {
		go a.f()
	}
}

// AfterFunc is context.AfterFunc, through ctx's own AfterFunc method when
// it has one (this server's request contexts, and contexts that wrap one
// and pass the method on): context.AfterFunc would otherwise wrap the
// call in a context of its own, with a goroutine and three allocations
// more for a parent of a kind it does not know.
func AfterFunc(ctx context.Context, f func()) (stop func() bool) {
	if a, ok := ctx.(interface{ AfterFunc(func()) func() bool }); ok {
		return a.AfterFunc(f)
	}
	return context.AfterFunc(ctx, f)
}

// CancelFunc returns the function that cancels ctx, and true, when ctx is
// the context of a request this package's server serves: a handler that
// must be able to cut its request needs no child context of its own.
func CancelFunc(ctx context.Context) (cancel func(), ok bool) {
	rc, ok := ctx.(*requestContext)
	if !ok {
		return nil, false
	}
	return rc.cancel, true
}

var _ context.Context = (*requestContext)(nil)
