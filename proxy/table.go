package proxy

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// table is an immutable snapshot of the routes; every change (SetRoute,
// SetRouteConfig, SetBackends, RemoveRoute) builds a new one under
// Server.mu and swaps it in, so a request sees either the old or the new
// table. The route settings and the backends have different writers (the
// daemon and the supervisor's instance events) and are merged here, under
// the one lock, so neither can put back a stale copy of the other.
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
	hold     *holdState  // non-nil while the app is held (hold.go)
	activity *activity   // last request, with TrackActivity
}

// lookup finds the route of the Host header host: exact names first, then
// the longest matching wildcard. The port and a trailing dot are ignored,
// case too.
func (t *table) lookup(host string) *route {
	// A Host without a port (most) is not split: SplitHostPort would
	// make an error to say so.
	if strings.IndexByte(host, ':') >= 0 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
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

// SetRoute adds or replaces the route of r.App, its settings and its
// backends at once. Requests that start after it returns use the new
// route; the listeners are not touched. A daemon with a supervisor sets
// the two halves apart, with SetRouteConfig and SetBackends.
func (s *Server) SetRoute(r Route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backendsOf[r.App] = slices.Clone(r.Backends)
	r.Hosts = slices.Clone(r.Hosts)
	r.Backends = nil
	s.routes[r.App] = r
	s.rebuild()
}

// LastRequest returns when app's route last ended a request (other than
// an ACME challenge), now while one is in flight, or when its activity
// started being tracked; false when the route does not track it
// (Route.TrackActivity).
func (s *Server) LastRequest(app string) (time.Time, bool) {
	s.mu.Lock()
	a := s.activity[app]
	s.mu.Unlock()
	if a == nil {
		return time.Time{}, false
	}
	return a.lastRequest(), true
}

// MarkActive records now as app's last activity, as if a request had
// just ended: its web instances have just started (a rollout, a wake), so
// its idle time counts from now, not from when its route was made (the
// daemon makes the routes of the apps it knows before they boot). It
// does nothing for a route that does not track its activity.
func (s *Server) MarkActive(app string) {
	s.mu.Lock()
	a := s.activity[app]
	s.mu.Unlock()
	if a != nil {
		a.touch()
	}
}

// HostTakenError is returned by SetRouteConfig for a host name another
// app's route already has.
type HostTakenError struct {
	App   string // the app that asked for the host
	Host  string
	Owner string // the app whose route has it
}

func (e *HostTakenError) Error() string {
	return fmt.Sprintf("app %q: %s is already served by app %q", e.App, e.Host, e.Owner)
}

// SetRouteConfig adds or replaces the settings of r.App's route (hosts,
// static paths, cache, ACL, TLS...), keeping the backends SetBackends
// gave it: r.Backends is ignored. A host name another app's route has is
// refused with a *HostTakenError and nothing changes; the app that has a
// name keeps it. The table is swapped once.
func (s *Server) SetRouteConfig(r Route) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if owner, h := s.hostOwnerLocked(r.App, r.Hosts); owner != "" {
		return &HostTakenError{App: r.App, Host: h, Owner: owner}
	}
	r.Hosts = slices.Clone(r.Hosts)
	r.Backends = nil
	s.routes[r.App] = r
	s.rebuild()
	return nil
}

// SetBackends makes addrs the backends of app's route: the addresses its
// web instances listen on. They are kept while app has no route settings
// yet, and used once SetRouteConfig gives it some. The table is swapped
// only when the route exists and its backends change.
func (s *Server) SetBackends(app string, addrs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Equal(s.backendsOf[app], addrs) {
		return
	}
	s.backendsOf[app] = slices.Clone(addrs)
	if _, ok := s.routes[app]; ok {
		s.rebuild()
	}
}

// Route returns app's route as the proxy serves it: the settings of the
// last SetRouteConfig with the backends of the last SetBackends.
func (s *Server) Route(app string) (Route, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.routes[app]
	if !ok {
		return Route{}, false
	}
	r.Hosts = slices.Clone(r.Hosts)
	r.Backends = slices.Clone(s.backendsOf[app])
	return r, true
}

// HostOwner returns an app other than app whose route has one of hosts,
// and that host; "" when there is none. HostOwner("", []string{h})
// tells whether any app serves h.
func (s *Server) HostOwner(app string, hosts []string) (owner, host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hostOwnerLocked(app, hosts)
}

func (s *Server) hostOwnerLocked(app string, hosts []string) (owner, host string) {
	for other, rt := range s.routes {
		if other == app {
			continue
		}
		for _, h := range hosts {
			if slices.ContainsFunc(rt.Hosts, func(o string) bool { return strings.EqualFold(o, h) }) {
				return other, h
			}
		}
	}
	return "", ""
}

// RemoveRouteConfig removes the settings of app's route, so that its
// hosts get 404, and keeps its backends for a later SetRouteConfig.
func (s *Server) RemoveRouteConfig(app string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.routes[app]; !ok {
		return
	}
	delete(s.routes, app)
	s.rebuild()
}

// RemoveRoute removes the route of app, settings and backends; its hosts
// get 404 afterwards.
func (s *Server) RemoveRoute(app string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.backendsOf, app)
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
		cfg.Backends = s.backendsOf[app]
		rt := &route{Route: cfg, hold: s.holds[app]}
		if cfg.TrackActivity {
			a := s.activity[app]
			if a == nil {
				a = newActivity(time.Now())
				s.activity[app] = a
			}
			rt.activity = a
		} else {
			delete(s.activity, app)
		}
		for _, addr := range cfg.Backends {
			b := s.backends[addr]
			if b == nil {
				b = &backend{addr: addr, selfKey: selfKey(addr), s: s}
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
	for app := range s.activity {
		if _, ok := s.routes[app]; !ok {
			delete(s.activity, app)
		}
	}
	for p, l := range s.logs {
		if !usedLogs[p] {
			l.Close()
			delete(s.logs, p)
		}
	}
	s.table.Store(t)
	// Held requests wake once the table they will look up has backends.
	for app, h := range s.holds {
		rt := t.apps[app]
		h.setUp(rt != nil && len(rt.backends) > 0)
	}
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
			b.pool.CloseIdle()
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
