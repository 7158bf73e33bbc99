package supervisor

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

// ports hands out the ports of web instances. A port is never given to two
// live instances, and ports something else listens on are skipped. The
// search goes round the range from where the last one ended, so a port that
// was just freed (and may still have connections draining) is not reused
// at once.
type ports struct {
	bind     string
	min, max int

	mu    sync.Mutex
	used  map[int]bool
	next  int
	probe func(addr string) bool // reports whether addr is free
}

func newPorts(r PortRange) (*ports, error) {
	if r.Bind == "" {
		r.Bind = "127.0.0.1"
	}
	if r.Min == 0 && r.Max == 0 {
		r.Min, r.Max = 5000, 5999
	}
	if r.Min <= 0 || r.Max > 65535 || r.Min > r.Max {
		return nil, fmt.Errorf("port range %d-%d is not valid", r.Min, r.Max)
	}
	return &ports{bind: r.Bind, min: r.Min, max: r.Max, used: map[int]bool{}, next: r.Min, probe: canListen}, nil
}

func (p *ports) addr(port int) string { return net.JoinHostPort(p.bind, strconv.Itoa(port)) }

// take reserves fixed if it is not 0, or else a free port of the range.
func (p *ports) take(fixed int) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fixed != 0 {
		if p.used[fixed] {
			return 0, fmt.Errorf("port %d is in use by another instance", fixed)
		}
		p.used[fixed] = true
		return fixed, nil
	}
	n := p.max - p.min + 1
	for i := 0; i < n; i++ {
		port := p.next
		p.next++
		if p.next > p.max {
			p.next = p.min
		}
		if p.used[port] || !p.probe(p.addr(port)) {
			continue
		}
		p.used[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free port in %s:%d-%d", p.bind, p.min, p.max)
}

// release returns port to the range.
func (p *ports) release(port int) {
	if port == 0 {
		return
	}
	p.mu.Lock()
	delete(p.used, port)
	p.mu.Unlock()
}

func canListen(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
