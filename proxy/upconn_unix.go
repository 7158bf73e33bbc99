//go:build unix

package proxy

import (
	"net"
	"syscall"
)

// usable reports whether an idle backend connection may carry a request:
// the backend has not closed it and sent nothing on it since its last
// answer. It looks with one non-blocking MSG_PEEK read, so that idle
// connections need no goroutine each watching them (http.Transport runs
// one per connection for this, persistConn.readLoop). EOF (the backend
// closed the connection, as Node, uvicorn or gunicorn do after a few idle
// seconds) or any byte (a late answer, a body sent to HEAD) make the
// connection unusable; only "nothing to read yet" keeps it.
func usable(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // never wait for the connection to become readable
	})
	return err == nil && ok
}
