//go:build unix

package upstream

import "syscall"

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
	if c.peek == nil {
		sc, ok := c.nc.(syscall.Conn)
		if !ok {
			return true, false
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return false, false
		}
		// Made once per connection: a check costs no allocation.
		p := &peeker{rc: rc}
		p.fn = p.look
		c.peek = p
	}
	return c.peek.usable()
}

// peeker looks at one connection without reading from it.
type peeker struct {
	rc     syscall.RawConn
	fn     func(fd uintptr) bool
	ok     bool
	closed bool
	b      [1]byte
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
