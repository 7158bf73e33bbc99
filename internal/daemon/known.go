package daemon

import (
	"slices"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/procfile"
)

// A daemon that starts knows its apps before any of them runs: their
// files are under PIKU_ROOT. holdKnownApps gives the proxy the route
// settings of every app that will serve, held (proxy/hold.go), before the
// proxy accepts its first connection: a request for a booting app waits
// for its first ready instance (or gets a 503 with Retry-After when the
// hold bound runs out) instead of a 404, which search engines and caches
// read as "gone". The start-up rollout of each app publishes its route
// again and ends the hold (releaseStartHold).

// holdKnownApps publishes, held, the route of every app that is not
// stopped and has hosts and a web kind to run. An app whose files cannot
// be read, or that asks for a host another app has, is left to its
// start-up rollout, which reports why.
func (d *Daemon) holdKnownApps() {
	apps, err := d.root.Apps()
	if err != nil {
		d.log.Error("listing apps", "err", err)
		return
	}
	for _, app := range apps {
		a, err := appconfig.Load(d.root, app)
		if err != nil || a.Stopped || !servesWeb(a) {
			continue
		}
		route, _, _, err := d.appRoute(a)
		if err != nil || len(route.Hosts) == 0 {
			continue
		}
		d.table.Hold(app)
		if err := publishRoute(d.table, route); err != nil {
			d.table.Release(app)
			d.log.Warn("not holding the app's requests while it starts", "app", app, "err", err)
			continue
		}
		d.mu.Lock()
		if d.startHolds == nil {
			d.startHolds = map[string]bool{}
		}
		d.startHolds[app] = true
		d.mu.Unlock()
	}
}

// releaseStartHold ends the hold holdKnownApps put on app, once its
// start-up rollout is over: the held requests go to the instances that
// came up, or get a 503 when none did.
func (d *Daemon) releaseStartHold(app string) {
	d.mu.Lock()
	held := d.startHolds[app]
	delete(d.startHolds, app)
	d.mu.Unlock()
	if held {
		d.table.Release(app)
	}
}

// servesWeb reports whether the app a runs a web kind (web, a uWSGI
// kind) with at least one instance.
func servesWeb(a *appconfig.App) bool {
	return slices.ContainsFunc(a.Procfile.Processes(), func(e procfile.Entry) bool {
		return (e.Kind == procfile.KindWeb || procfile.IsUWSGI(e.Kind)) && a.Scaling[e.Kind] > 0
	})
}
