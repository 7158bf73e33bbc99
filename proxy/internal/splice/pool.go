// Package splice moves bytes between sockets through a kernel pipe,
// without copying them into the process: the proxy's way of relaying a
// large answer to a client that keeps up, at a third of the CPU of a copy.
package splice

import "sync"

// Pool lends pipes, at most Max open at once (each costs two file
// descriptors). A pipe comes back empty; one that does not is closed.
type Pool struct {
	Max int

	mu     sync.Mutex
	idle   []*Pipe
	open   int
	closed bool
}

// Get lends a pipe, or nil when Max are lent or none can be opened.
func (pl *Pool) Get() *Pipe {
	if !Supported {
		return nil
	}
	pl.mu.Lock()
	if n := len(pl.idle); n > 0 {
		p := pl.idle[n-1]
		pl.idle = pl.idle[:n-1]
		pl.mu.Unlock()
		return p
	}
	if pl.open >= pl.Max || pl.closed {
		pl.mu.Unlock()
		return nil
	}
	pl.open++
	pl.mu.Unlock()
	p, err := newPipe()
	if err != nil {
		pl.mu.Lock()
		pl.open--
		pl.mu.Unlock()
		return nil
	}
	return p
}

// Put takes a pipe back: kept for the next Get when empty, else closed.
func (pl *Pool) Put(p *Pipe) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if p.n != 0 || pl.closed || len(pl.idle) >= maxIdle {
		pl.open--
		p.close()
		return
	}
	pl.idle = append(pl.idle, p)
}

// Close closes the idle pipes.
func (pl *Pool) Close() {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, p := range pl.idle {
		p.close()
		pl.open--
	}
	pl.idle = nil
	pl.closed = true
}

// maxIdle bounds the pipes kept for reuse.
const maxIdle = 16
