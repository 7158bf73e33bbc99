package proxy

import (
	"io"
	"net"
	"net/http"
	"time"
)

// Observer is told what the proxy does, for metrics. Options.Observer nil
// (the default) costs the request path nothing but a nil check.
//
// Every method is called on the request path or a connection's goroutine
// and must be quick and safe for concurrent use.
type Observer interface {
	// App returns the observer of one app's requests. It is called once
	// per request, as the request is matched to the app's route.
	App(app string) AppObserver
	// ConnOpened and ConnClosed bracket each client connection the
	// proxy's HTTP servers manage (a connection upgraded to a WebSocket
	// counts as closed once handed over).
	ConnOpened()
	ConnClosed()
}

// BudgetObserver is an Observer also told when the client connections
// come near Options.MaxConns (keep-alive is turned off until a tenth of
// it is free again).
type BudgetObserver interface {
	ConnBudgetFull()
}

// AppObserver is told about the requests of one app.
type AppObserver interface {
	// Started is called when a request for the app comes in; Done when
	// its response is complete, with its status (101 for a connection
	// upgraded to a WebSocket), duration and the bytes of the request
	// body read and of the response body written.
	Started()
	Done(status int, d time.Duration, in, out int64)
	// UpstreamFailed is called when a backend could not be used: none
	// accepted the connection, or the app has none running (the request
	// got a 502), or it took too long to answer (504).
	UpstreamFailed(e UpstreamError)
	// CacheLookup is called for each request the app's cache applies to.
	CacheLookup(hit bool)
	// ACLRefused is called when the Cloudflare ACL refused a client.
	ACLRefused()
}

// UpstreamError is a kind of backend failure.
type UpstreamError string

// The kinds of backend failure.
const (
	// UpstreamRefused: no backend accepted the connection, or none runs.
	UpstreamRefused UpstreamError = "refused"
	// UpstreamTimeout: the backend did not answer in time.
	UpstreamTimeout UpstreamError = "timeout"
)

// observe starts observing one request of rt's app. It wraps w (unless it
// is a logWriter already) and r's body to count what goes through them;
// observed must be called with what it returns once the response is
// complete. With no observer, it returns nils.
func (s *Server) observe(r *http.Request, rt *route) (AppObserver, *countingBody) {
	if s.o.Observer == nil {
		return nil, nil
	}
	ao := s.o.Observer.App(rt.App)
	ao.Started()
	var body *countingBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &countingBody{ReadCloser: r.Body}
		r.Body = body
	}
	return ao, body
}

// observed reports the end of a request to ao.
func observed(ao AppObserver, r *http.Request, lw *logWriter, body *countingBody, d time.Duration) {
	var in int64
	if body != nil {
		in = body.n
	}
	ao.Done(responseStatus(r, lw), d, in, lw.bytes)
}

// countingBody counts the bytes of a request body read.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// connState tells the observer about client connections.
func (s *Server) connState(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		s.o.Observer.ConnOpened()
	case http.StateClosed, http.StateHijacked:
		s.o.Observer.ConnClosed()
	}
}
