package proxy

import (
	"errors"
	"slices"
	"testing"
)

// TestRouteWriters: the route's settings (the daemon's) and its backends
// (the supervisor's) are written apart and merged by the proxy, so that
// neither writer can put back a stale copy of the other's half, and each
// change swaps the table once, or not at all when nothing changed.
func TestRouteWriters(t *testing.T) {
	type step struct {
		name  string
		do    func(s *Server) error
		want  []string // backends of "app" afterwards; nil = no route
		swaps int      // table swaps the step makes
	}
	cfg := func(hosts ...string) func(s *Server) error {
		return func(s *Server) error {
			return s.SetRouteConfig(Route{App: "app", Hosts: hosts, Backends: []string{"stale:1"}})
		}
	}
	backends := func(addrs ...string) func(s *Server) error {
		return func(s *Server) error { s.SetBackends("app", addrs); return nil }
	}
	steps := []step{
		{"backends before any settings are kept, not served", backends("a:1"), nil, 0},
		{"the settings take the kept backends, not their own", cfg("app.test"), []string{"a:1"}, 1},
		{"new backends", backends("b:1", "c:1"), []string{"b:1", "c:1"}, 1},
		{"the same backends again", backends("b:1", "c:1"), []string{"b:1", "c:1"}, 0},
		{"new settings keep the backends", cfg("app.test", "www.app.test"), []string{"b:1", "c:1"}, 1},
		{"settings removed, backends kept", func(s *Server) error { s.RemoveRouteConfig("app"); return nil }, nil, 1},
		{"settings back", cfg("app.test"), []string{"b:1", "c:1"}, 1},
		{"everything removed", func(s *Server) error { s.RemoveRoute("app"); return nil }, nil, 1},
		{"settings without backends", cfg("app.test"), []string{}, 1},
	}
	s := New(Options{})
	for _, st := range steps {
		before := s.table.Load()
		swaps := 0
		if err := st.do(s); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if s.table.Load() != before {
			swaps = 1
		}
		if swaps != st.swaps {
			t.Errorf("%s: %d table swaps, want %d", st.name, swaps, st.swaps)
		}
		r, ok := s.Route("app")
		if st.want == nil {
			if ok {
				t.Errorf("%s: route %+v, want none", st.name, r)
			}
			if s.table.Load().apps["app"] != nil {
				t.Errorf("%s: the table serves app", st.name)
			}
			continue
		}
		if !ok {
			t.Fatalf("%s: no route", st.name)
		}
		if !slices.Equal(r.Backends, st.want) && !(len(r.Backends) == 0 && len(st.want) == 0) {
			t.Errorf("%s: Route has backends %q, want %q", st.name, r.Backends, st.want)
		}
		var served []string
		for _, b := range s.table.Load().apps["app"].backends {
			served = append(served, b.addr)
		}
		if !slices.Equal(served, st.want) && !(len(served) == 0 && len(st.want) == 0) {
			t.Errorf("%s: the table serves %q, want %q", st.name, served, st.want)
		}
	}
}

// TestSetRouteConfigHostTaken: a host name another app's route has is
// refused, whatever the case, and nothing changes.
func TestSetRouteConfigHostTaken(t *testing.T) {
	s := New(Options{})
	if err := s.SetRouteConfig(Route{App: "b", Hosts: []string{"shared.test"}}); err != nil {
		t.Fatal(err)
	}
	before := s.table.Load()
	err := s.SetRouteConfig(Route{App: "a", Hosts: []string{"a.test", "Shared.test"}})
	var taken *HostTakenError
	if !errors.As(err, &taken) || taken.Owner != "b" || taken.Host != "Shared.test" {
		t.Fatalf("err = %v, want Shared.test taken by b", err)
	}
	if want := `app "a": Shared.test is already served by app "b"`; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if _, ok := s.Route("a"); ok || s.table.Load() != before {
		t.Error("the refused settings changed the table")
	}
	if err := s.SetRouteConfig(Route{App: "b", Hosts: []string{"shared.test", "b.test"}}); err != nil {
		t.Errorf("the owner changing its own route: %v", err)
	}
}
