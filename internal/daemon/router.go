package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/piku/piku/internal/supervisor"
	"github.com/piku/piku/proxy"
)

// routeTable is the proxy's route table as the daemon uses it. The proxy
// owns the table: the daemon sets an app's route settings, the
// supervisor's instance events set its backends (through router), and the
// proxy merges the two under its own lock.
type routeTable interface {
	// SetRouteConfig sets app's hosts, static paths, cache, ACL and TLS
	// settings, keeping its backends; a host another app has is refused
	// with a *proxy.HostTakenError.
	SetRouteConfig(r proxy.Route) error
	// RemoveRouteConfig stops serving app's hosts, keeping its backends.
	RemoveRouteConfig(app string)
	// SetBackends makes addrs the backends of app.
	SetBackends(app string, addrs []string)
	// RemoveRoute forgets app's route, settings and backends.
	RemoveRoute(app string)
	// Route returns app's route as served.
	Route(app string) (proxy.Route, bool)
	// HostOwner returns another app whose route has one of hosts.
	HostOwner(app string, hosts []string) (owner, host string)
	// Drain waits for the requests in flight to addrs.
	Drain(ctx context.Context, addrs []string) int
	// Hold makes app's requests wait while it has no backend, until
	// Release (proxy/hold.go).
	Hold(app string)
	// Release ends app's hold.
	Release(app string)
	// Pause makes app's requests wait even while it has backends, until
	// Resume (proxy/hold.go).
	Pause(app string)
	// Resume ends app's pause.
	Resume(app string)
	// Held reports whether app is held or paused and how many of its
	// requests wait.
	Held(app string) (held bool, waiting int)
	// MarkActive makes now app's last activity, for its idle timer.
	MarkActive(app string)
}

// router implements supervisor.Router over the proxy's route table: the
// supervisor says which addresses serve an app, the proxy combines them
// with the app's route settings.
type router struct{ table routeTable }

// Route makes addrs the backends of app's route.
func (r router) Route(app string, addrs []string) {
	r.table.SetBackends(app, addrs)
}

// Drain waits for the requests in flight to addrs and returns how many
// were left when ctx ended.
func (r router) Drain(ctx context.Context, addrs []string) int {
	return r.table.Drain(ctx, addrs)
}

// publishRoute makes route the settings of its app's route, or stops
// serving the app when it has no host. The backends are the
// supervisor's, and stay as they are.
func publishRoute(table routeTable, route proxy.Route) error {
	if len(route.Hosts) == 0 {
		table.RemoveRouteConfig(route.App)
		return nil
	}
	err := table.SetRouteConfig(route)
	var taken *proxy.HostTakenError
	if errors.As(err, &taken) {
		return hostTakenError(route.App, taken.Host, taken.Owner)
	}
	return err
}

// hostTakenError is the error of an app asking for a host another app
// serves.
func hostTakenError(app, host, owner string) error {
	return fmt.Errorf("app %q: NGINX_SERVER_NAME: %s is already served by app %q; remove it there first", app, host, owner)
}

var (
	_ supervisor.Router = router{}
	_ routeTable        = (*proxy.Server)(nil)
)
