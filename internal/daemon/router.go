package daemon

import (
	"context"

	"github.com/piku/piku/supervisor"
)

// router implements supervisor.Router over the proxy: the supervisor says
// which addresses serve an app, the router combines them with the app's
// route settings (host names, static paths, cache...) and swaps the
// proxy's table.
type router struct{ d *Daemon }

// Route makes addrs the backends of app's route.
func (r router) Route(app string, addrs []string) {
	d := r.d
	d.mu.Lock()
	rt, ok := d.routes[app]
	if ok {
		rt.Backends = append([]string(nil), addrs...)
		d.routes[app] = rt
	}
	d.mu.Unlock()
	if ok && len(rt.Hosts) > 0 {
		d.proxy.SetRoute(rt)
	}
}

// Drain waits for the requests in flight to addrs and returns how many
// were left when ctx ended.
func (r router) Drain(ctx context.Context, addrs []string) int {
	return r.d.proxy.Drain(ctx, addrs)
}

var _ supervisor.Router = router{}
