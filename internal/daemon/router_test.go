package daemon

import (
	"slices"
	"sync"
	"testing"

	"github.com/piku/piku/proxy"
)

// pausedTable is the proxy's table with a hook: the next SetRouteConfig
// says it has started, then waits for release before it goes on.
type pausedTable struct {
	routeTable
	entered, release chan struct{}
}

func (t *pausedTable) SetRouteConfig(r proxy.Route) error {
	if t.entered != nil {
		close(t.entered)
		t.entered = nil
		<-t.release
	}
	return t.routeTable.SetRouteConfig(r)
}

// TestRouteStaleBackends: a rollout publishes the app's route settings
// while a respawn of an instance moves the app to a new port. Whatever the
// order the two writes reach the proxy in, it serves the new port: the
// rollout cannot put back the backends it saw before the respawn (a stale
// port could by then be another app's).
func TestRouteStaleBackends(t *testing.T) {
	p := proxy.New(proxy.Options{})
	table := &pausedTable{routeTable: p}
	r := router{table: table}
	cfg := proxy.Route{App: "app", Hosts: []string{"app.test"}}
	if err := publishRoute(table, cfg); err != nil {
		t.Fatal(err)
	}
	r.Route("app", []string{"127.0.0.1:20001"})

	// The rollout publishes; the respawn's route happens while its
	// publication is under way.
	table.entered, table.release = make(chan struct{}), make(chan struct{})
	entered := table.entered
	var wg sync.WaitGroup
	wg.Add(1)
	var err error
	go func() {
		defer wg.Done()
		err = publishRoute(table, proxy.Route{App: "app", Hosts: []string{"app.test", "www.app.test"}})
	}()
	<-entered
	r.Route("app", []string{"127.0.0.1:20002"})
	close(table.release)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := p.Route("app")
	if !ok {
		t.Fatal("no route")
	}
	if want := []string{"127.0.0.1:20002"}; !slices.Equal(got.Backends, want) {
		t.Errorf("backends %q, want %q", got.Backends, want)
	}
	if want := []string{"app.test", "www.app.test"}; !slices.Equal(got.Hosts, want) {
		t.Errorf("hosts %q, want %q", got.Hosts, want)
	}
}

// TestPublishRouteHostTaken: a host another app serves is refused with
// the error the user has always seen.
func TestPublishRouteHostTaken(t *testing.T) {
	p := proxy.New(proxy.Options{})
	if err := publishRoute(p, proxy.Route{App: "b", Hosts: []string{"x.test"}}); err != nil {
		t.Fatal(err)
	}
	err := publishRoute(p, proxy.Route{App: "a", Hosts: []string{"x.test"}})
	want := `app "a": NGINX_SERVER_NAME: x.test is already served by app "b"; remove it there first`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}
