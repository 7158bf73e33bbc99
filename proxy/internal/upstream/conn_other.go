//go:build !unix

package upstream

// usable reports whether an idle backend connection may carry a request;
// without a non-blocking peek it trusts the connection, and the request
// is sent again when nothing of it reached the backend.
func usable(*conn) (ok, closed bool) { return true, false }

// peeker is the unix one's stand-in.
type peeker struct{}

// flushAndWait writes what c.bw holds.
func flushAndWait(c *conn) error { return c.bw.Flush() }
