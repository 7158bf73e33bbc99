package proxy

import (
	"net"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
)

// table is an immutable snapshot of the routes; SetRoute builds a new one
// and swaps it in, so a request sees either the old or the new table.
type table struct {
	exact map[string]*route // host -> route
	wild  []wildcard        // longest suffix first
	apps  map[string]*route // app -> route
}

type wildcard struct {
	suffix string // ".example.com"
	r      *route
}

// route is a Route compiled for serving.
type route struct {
	Route
	backends []*backend
	next     atomic.Uint32 // round-robin position
	statics  []StaticPath  // longest prefix first
	cache    *cache
	log      *accessLog
	allow    []net.IPNet // AllowIPs
}

// lookup finds the route of the Host header host: exact names first, then
// the longest matching wildcard. The port and a trailing dot are ignored,
// case too.
func (t *table) lookup(host string) *route {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	if r, ok := t.exact[host]; ok {
		return r
	}
	lower := strings.ToLower(host)
	if r, ok := t.exact[lower]; ok {
		return r
	}
	for _, w := range t.wild {
		if strings.HasSuffix(lower, w.suffix) {
			return w.r
		}
	}
	return nil
}

// SetRoute adds or replaces the route of r.App. Requests that start after
// it returns use the new route; the listeners are not touched.
func (s *Server) SetRoute(r Route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Hosts = slices.Clone(r.Hosts)
	r.Backends = slices.Clone(r.Backends)
	s.routes[r.App] = r
	s.rebuild()
}

// RemoveRoute removes the route of app; its hosts get 404 afterwards.
func (s *Server) RemoveRoute(app string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.routes[app]; !ok {
		return
	}
	delete(s.routes, app)
	s.rebuild()
}

// rebuild compiles s.routes into a new table and stores it. Caches and
// access logs of unchanged settings are kept across rebuilds, as is the
// state of every backend. s.mu is held.
func (s *Server) rebuild() {
	t := &table{exact: map[string]*route{}, apps: map[string]*route{}}
	names := make([]string, 0, len(s.routes))
	for app := range s.routes {
		names = append(names, app)
	}
	sort.Strings(names) // the first app by name wins a contested host
	usedLogs := map[string]bool{}
	for _, app := range names {
		cfg := s.routes[app]
		rt := &route{Route: cfg}
		for _, addr := range cfg.Backends {
			b := s.backends[addr]
			if b == nil {
				b = &backend{addr: addr, s: s}
				s.backends[addr] = b
			}
			rt.backends = append(rt.backends, b)
		}
		rt.statics = slices.Clone(cfg.StaticPaths)
		sort.SliceStable(rt.statics, func(i, j int) bool { return len(rt.statics[i].Prefix) > len(rt.statics[j].Prefix) })
		for _, a := range cfg.AllowIPs {
			if n, ok := parseIPNet(a); ok {
				rt.allow = append(rt.allow, n)
			} else {
				s.log.Warn("ignoring allowed address", "app", app, "addr", a)
			}
		}
		if cfg.Cache != nil {
			c := s.caches[app]
			if c == nil || !c.sameConfig(cfg.Cache) {
				c = newCache(*cfg.Cache)
				s.caches[app] = c
			}
			rt.cache = c
		} else {
			delete(s.caches, app)
		}
		if cfg.AccessLog != "" {
			l := s.logs[cfg.AccessLog]
			if l == nil {
				l = newAccessLog(cfg.AccessLog)
				s.logs[cfg.AccessLog] = l
			}
			usedLogs[cfg.AccessLog] = true
			rt.log = l
		}
		t.apps[app] = rt
		for _, h := range cfg.Hosts {
			h = strings.ToLower(h)
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				if !slices.ContainsFunc(t.wild, func(w wildcard) bool { return w.suffix == suffix }) {
					t.wild = append(t.wild, wildcard{suffix, rt})
				}
				continue
			}
			if other, ok := t.exact[h]; ok {
				s.log.Warn("host claimed by two apps", "host", h, "app", other.App, "ignored", app)
				continue
			}
			t.exact[h] = rt
		}
	}
	sort.SliceStable(t.wild, func(i, j int) bool { return len(t.wild[i].suffix) > len(t.wild[j].suffix) })
	for app := range s.caches {
		if _, ok := s.routes[app]; !ok {
			delete(s.caches, app)
		}
	}
	for p, l := range s.logs {
		if !usedLogs[p] {
			l.Close()
			delete(s.logs, p)
		}
	}
	s.table.Store(t)
	// Connections kept to backends no route uses any more (a stopped
	// instance) are closed; the backends stay, so Drain still sees them.
	used := map[*backend]bool{}
	for _, rt := range t.apps {
		for _, b := range rt.backends {
			used[b] = true
		}
	}
	for _, b := range s.backends {
		if !used[b] {
			b.pool.closeIdle()
		}
	}
}

func parseIPNet(s string) (net.IPNet, bool) {
	if _, n, err := net.ParseCIDR(s); err == nil {
		return *n, true
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		s = h
	}
	ip := net.ParseIP(strings.Trim(s, "[]"))
	if ip == nil {
		return net.IPNet{}, false
	}
	if v4 := ip.To4(); v4 != nil {
		return net.IPNet{IP: v4, Mask: net.CIDRMask(32, 32)}, true
	}
	return net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}, true
}
