package proxy

import (
	"net"
	"sync"
	"sync/atomic"
)

// acceptGate tells when every listener Run opened has been closed: from
// then on the proxy accepts no new connection, and a daemon that stops can
// let the requests in flight finish before it stops the apps behind them.
type acceptGate struct {
	open   atomic.Int32
	closed chan struct{}
	once   sync.Once
}

func newAcceptGate() *acceptGate { return &acceptGate{closed: make(chan struct{})} }

// wrap counts ln as open until its first Close.
func (g *acceptGate) wrap(ln net.Listener) net.Listener {
	g.open.Add(1)
	return &gatedListener{Listener: ln, g: g}
}

// shut closes the gate's channel, once.
func (g *acceptGate) shut() { g.once.Do(func() { close(g.closed) }) }

// gatedListener is a listener an acceptGate counts.
type gatedListener struct {
	net.Listener
	g    *acceptGate
	once sync.Once
}

func (l *gatedListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() {
		if l.g.open.Add(-1) == 0 {
			l.g.shut()
		}
	})
	return err
}

// StoppedAccepting is closed once Run has closed every listener: when its
// context has ended and the graceful shutdown has begun (requests in flight
// may still be running), or when Run returns without having listened.
func (s *Server) StoppedAccepting() <-chan struct{} { return s.accept.closed }
