//go:build unix

package upstream

import (
	"bufio"
	"errors"
	"io"
	"syscall"

	"github.com/piku/piku/proxy/internal/splice"
)

// usable reports whether an idle backend connection may carry a request:
// the backend has not closed it and sent nothing on it since its last
// answer, and whether the backend closed it. It looks with one
// non-blocking MSG_PEEK read, so that idle connections need no goroutine
// each watching them (http.Transport runs one per connection for this,
// persistConn.readLoop). EOF (the backend closed the connection, as
// Node, uvicorn or gunicorn do after a few idle seconds) or any byte (a
// late answer, a body sent to HEAD) make the connection unusable; only
// "nothing to read yet" keeps it.
func usable(c *conn) (ok, closed bool) {
	p, err := c.raw()
	if p == nil {
		return err == nil, false
	}
	return p.usable()
}

// flushAndWait writes what c.bw holds and returns once the answer can be
// read, the connection's read deadline passed or it was closed (the read
// that follows then says which). The wait is armed before the request is
// written, so that no answer can come unseen, and the read that follows
// finds it: without the wait, the first read, right after the write,
// finds nothing, and a second read follows the poller's wake-up.
func flushAndWait(c *conn) error {
	p, _ := c.raw()
	if p == nil {
		return c.bw.Flush()
	}
	p.step, p.werr = 0, nil
	_ = p.rc.Read(p.sendFn)
	if p.step == 0 {
		// The read could not begin (the connection closed, or its
		// deadline passed): the request goes out all the same, and
		// the read that follows says what became of it.
		return c.bw.Flush()
	}
	return p.werr
}

// raw returns c's raw connection helper, made at the first call; nil (and
// no error) for a connection that has no file descriptor.
func (c *conn) raw() (*peeker, error) {
	if c.peek == nil {
		sc, ok := c.nc.(syscall.Conn)
		if !ok {
			return nil, nil
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return nil, err
		}
		// Made once per connection: a look or a send costs no
		// allocation.
		p := &peeker{rc: rc, bw: c.bw}
		p.fn = p.look
		p.sendFn = p.send
		c.peek = p
	}
	return c.peek, nil
}

// peeker looks at one connection without reading from it, and sends a
// request on it with the wait for the answer armed first.
type peeker struct {
	rc     syscall.RawConn
	fn     func(fd uintptr) bool
	ok     bool
	closed bool
	b      [1]byte

	bw     *bufio.Writer // the connection's writer
	sendFn func(fd uintptr) bool
	step   int   // calls of send in this flushAndWait
	werr   error // the flush's error
}

func (p *peeker) usable() (ok, closed bool) {
	p.ok, p.closed = false, false
	err := p.rc.Read(p.fn)
	return err == nil && p.ok, p.closed
}

func (p *peeker) look(fd uintptr) bool {
	n, _, err := syscall.Recvfrom(int(fd), p.b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	p.ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
	p.closed = err == nil && n == 0 || err == syscall.ECONNRESET
	return true // never wait for the connection to become readable
}

// send is flushAndWait's step under the connection's read lock, the
// poller's readiness reset: the first call writes the request and asks to
// wait for the connection to become readable (a write that failed ends
// it), the second, once it is, ends the wait without reading.
func (p *peeker) send(uintptr) bool {
	p.step++
	if p.step == 1 {
		p.werr = p.bw.Flush()
		return p.werr != nil
	}
	return true
}

// SpliceTo moves up to max bytes of a body of known length (a
// Content-Length) into p: those the read buffer holds first (a copy),
// then straight from the connection (splice(2), on Linux), without the
// bytes passing through the proxy's memory. It returns 0, io.EOF at the
// body's end as Read does, io.ErrUnexpectedEOF when the backend ended it
// short, splice.ErrFull when p can take nothing yet, and
// errors.ErrUnsupported for any other body or a connection that cannot
// splice, before it took any of the body.
func (x *Exchange) SpliceTo(p *splice.Pipe, max int) (int, error) {
	if x.eof {
		return 0, io.EOF
	}
	lb, ok := x.body.(*lengthBody)
	if !ok || !splice.Supported {
		return 0, errors.ErrUnsupported
	}
	if lb.n <= 0 {
		x.eof = true
		return 0, io.EOF
	}
	max = int(min(int64(max), lb.n))
	var n int
	var err error
	if b := lb.br.Buffered(); b > 0 {
		buf, _ := lb.br.Peek(min(b, max))
		n, err = p.Write(buf)
		_, _ = lb.br.Discard(n)
		if err == nil && n == 0 {
			err = splice.ErrFull
		}
	} else {
		var pk *peeker
		pk, err = x.c.raw()
		if err == nil && pk == nil {
			err = errors.ErrUnsupported
		}
		if err != nil {
			return 0, err
		}
		n, err = p.FillFrom(pk.rc, max)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}
	lb.n -= int64(n)
	if lb.n == 0 {
		x.eof = true
	}
	return n, err
}
