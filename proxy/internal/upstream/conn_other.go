//go:build !unix

package upstream

import (
	"errors"

	"github.com/piku/piku/proxy/internal/splice"
)

// usable reports whether an idle backend connection may carry a request;
// without a non-blocking peek it trusts the connection, and the request
// is sent again when nothing of it reached the backend.
func usable(*conn) (ok, closed bool) { return true, false }

// peeker is the unix one's stand-in.
type peeker struct{}

// flushAndWait writes what c.bw holds.
func flushAndWait(c *conn) error { return c.bw.Flush() }

// SpliceTo is unsupported here: the body is read with Read.
func (x *Exchange) SpliceTo(p *splice.Pipe, max int) (int, error) {
	return 0, errors.ErrUnsupported
}
