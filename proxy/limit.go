package proxy

import (
	"net"
	"sync"
)

// limitListener lets a listener have at most cap(slots) connections open,
// shared with the other listeners given the same slots: Accept waits while
// they are all taken, and clients beyond wait in the kernel's backlog. It
// keeps the proxy from taking the file descriptors the supervisor needs to
// start and restart processes.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newLimitListener(l net.Listener, slots chan struct{}) *limitListener {
	return &limitListener{Listener: l, slots: slots, done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back when it is closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// NetConn returns the connection c wraps, as tls.Conn.NetConn does.
func (c *limitConn) NetConn() net.Conn { return c.Conn }

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
