package supervisor

import (
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
)

// ports hands out the ports of web instances. A port is never given to two
// live instances, and ports something else listens on are skipped. The
// search starts at a random port of the range, so that another app cannot
// tell which port an instance will get next and bind it first; a port
// among the last recentPorts freed (which may still have connections
// draining) is taken only when no other is free.
type ports struct {
	bind     string
	min, max int

	mu     sync.Mutex
	used   map[int]bool
	recent []int                  // the last ports released, oldest first
	probe  func(addr string) bool // reports whether addr is free
	random func(n int) int        // a number in [0, n)
}

// recentPorts is how many freed ports are kept back while others are free.
const recentPorts = 64

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
	return &ports{bind: r.Bind, min: r.Min, max: r.Max, used: map[int]bool{}, probe: canListen, random: rand.IntN}, nil
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
	start := p.random(n)
	for _, recentOK := range []bool{false, true} {
		for i := 0; i < n; i++ {
			port := p.min + (start+i)%n
			if p.used[port] || !recentOK && slices.Contains(p.recent, port) || !p.probe(p.addr(port)) {
				continue
			}
			p.used[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port in %s:%d-%d", p.bind, p.min, p.max)
}

// reserve marks port, which an adopted instance listens on, as taken.
func (p *ports) reserve(port int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used[port] {
		return fmt.Errorf("port %d is in use by another instance", port)
	}
	p.used[port] = true
	return nil
}

// release returns port to the range.
func (p *ports) release(port int) {
	if port == 0 {
		return
	}
	p.mu.Lock()
	delete(p.used, port)
	p.recent = append(p.recent, port)
	if len(p.recent) > recentPorts {
		p.recent = p.recent[1:]
	}
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
