package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/proxy"
	"github.com/piku/piku/supervisor"
)

// Apps implements control.Backend.
func (d *Daemon) Apps(ctx context.Context) ([]control.AppStatus, error) {
	apps, err := d.root.Apps()
	if err != nil {
		return nil, err
	}
	out := make([]control.AppStatus, 0, len(apps))
	for _, app := range apps {
		out = append(out, d.status(app))
	}
	return out, nil
}

// Status implements control.Backend.
func (d *Daemon) Status(ctx context.Context, app string) (control.AppStatus, error) {
	if !d.root.Exists(app) {
		return control.AppStatus{}, fmt.Errorf("app %q: %w", app, control.ErrUnknownApp)
	}
	return d.status(app), nil
}

func (d *Daemon) status(app string) control.AppStatus {
	st := control.AppStatus{App: app, Instances: []control.Instance{}}
	if _, err := os.Stat(d.root.StoppedFile(app)); err == nil {
		st.Stopped = true
	}
	d.mu.Lock()
	if as, ok := d.apps[app]; ok {
		st.Revision, st.Hosts, st.Error = as.revision, as.hosts, as.lastErr
	}
	// A static-only app runs no process: it is running when the proxy
	// serves its files.
	if rt, ok := d.routes[app]; ok && rt.StaticSite != "" && len(rt.Hosts) > 0 && !st.Stopped {
		st.Running = true
	}
	d.mu.Unlock()
	for _, in := range d.sup.Status(app) {
		st.Instances = append(st.Instances, control.Instance{
			Kind: in.Kind, N: in.N, State: string(in.State), PID: in.PID, Port: in.Port,
			Addr: in.Addr, StartedAt: in.StartedAt, Restarts: in.Restarts, LastExit: in.LastExit,
			NextRetry: in.NextRetry, RSS: in.RSS, Revision: in.Revision, Generation: in.Generation,
			LogDropped: in.LogDropped, LogError: in.LogError,
			HealthFailures: in.HealthFailures, LastHealthError: in.LastHealthError,
		})
		if in.State == supervisor.StateRunning {
			st.Running = true // a process that is up but never became ready is not
		}
	}
	jobs, _ := d.cron.Status(app)
	for _, j := range jobs {
		cj := control.CronJob{Name: j.Name, Schedule: j.Schedule, NextRun: j.NextRun, LastRun: j.LastRun, Running: j.Running}
		cj.LastExit = j.LastExit
		st.Cron = append(st.Cron, cj)
	}
	if len(st.Cron) > 0 && !st.Stopped {
		st.Running = true
	}
	return st
}

// Deploy implements control.Backend.
func (d *Daemon) Deploy(ctx context.Context, app string, req control.DeployRequest, out io.Writer) error {
	if !d.root.Exists(app) {
		return fmt.Errorf("app %q: %w", app, control.ErrUnknownApp)
	}
	if err := d.checkKinds(app, req.Restart); err != nil {
		return err
	}
	if err := os.Remove(d.root.StoppedFile(app)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	err := d.rollout(ctx, app, req, out)
	var kept *supervisor.KeptError
	if req.First && errors.As(err, &kept) {
		// A first release that did not come up is dropped, not retried.
		if ferr := d.Forget(context.WithoutCancel(ctx), app); ferr != nil {
			return errors.Join(err, ferr)
		}
		return kept.Err // names the app
	}
	return err
}

// checkKinds refuses a restart of kinds the app's Procfile does not have;
// "*" is every kind. A Procfile that cannot be read is left to the rollout
// to report.
func (d *Daemon) checkKinds(app string, kinds []string) error {
	if len(kinds) == 0 || (len(kinds) == 1 && kinds[0] == "*") {
		return nil
	}
	a, err := appconfig.Load(d.root, app)
	if err != nil {
		return nil
	}
	for _, k := range kinds {
		if k == "*" {
			continue
		}
		if err := a.CheckKind(k); err != nil {
			return err
		}
	}
	return nil
}

// rollout reads app's files and brings its processes, routes and cron jobs
// in line with them. The previous processes keep serving until the new
// ones are ready; if they never are, nothing changes.
func (d *Daemon) rollout(ctx context.Context, app string, req control.DeployRequest, out io.Writer) error {
	unlock := d.lock(app)
	defer unlock()
	st := d.state(app)
	start := time.Now()
	err := d.rolloutLocked(ctx, app, req, out)
	d.metrics.Rollout(app, time.Since(start), err)
	d.mu.Lock()
	st.lastErr = ""
	if err != nil {
		st.lastErr = err.Error()
	}
	d.mu.Unlock()
	return err
}

func (d *Daemon) rolloutLocked(ctx context.Context, app string, req control.DeployRequest, out io.Writer) error {
	a, err := appconfig.Load(d.root, app)
	if err != nil {
		return err
	}
	for _, w := range a.Procfile.Warnings {
		fmt.Fprintf(out, "-----> Warning: %s\n", w)
	}
	p, err := d.makePlan(a, req.Restart)
	if err != nil {
		return err
	}
	route, err := proxy.RouteFromEnv(app, a.Dir, a.Env.Map())
	if err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	if err := d.checkStaticDirs(app, route, p.static); err != nil {
		return err
	}
	d.mu.Lock()
	err = d.checkHosts(app, route.Hosts)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	p.spec.KeepRunning = req.KeepRunning
	if err := os.MkdirAll(d.root.Data(app), 0o755); err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	if err := os.MkdirAll(d.root.Logs(app), 0o755); err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	route.AccessLog = d.root.AccessLog(app)
	if b, err := os.ReadFile(d.root.DeployedFromFile(app)); err == nil {
		if ip := net.ParseIP(strings.TrimSpace(string(b))); ip != nil {
			route.AllowIPs = []string{ip.String()}
		}
	}
	if route.Cache != nil && route.Cache.Path == "" {
		route.Cache.Path = d.root.Cache(app)
	}
	route.StaticSite = p.static

	// New uWSGI instances read their vassal files when they start, so these
	// are written first, and put back as they were if the rollout fails.
	// Everything else (routes, certificate hosts, LIVE_ENV) is published
	// only once the rollout succeeded.
	undoVassals, err := d.writeVassals(app, p.vassals)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "-----> Rolling out '%s' (%s)\n", app, describe(a.Scaling))
	var reported, kept bool
	var failing []string // kinds committed although their new instances failed
	p.spec.Report = func(o supervisor.Outcome) {
		d.metrics.RolloutKind(app, o.Kind, outcomeLabel(o.Result))
		reported = true
		kept = kept || o.Result == supervisor.ResultKept
		if o.Result == supervisor.ResultReplacedFailing || o.Result == supervisor.ResultFirstFailing {
			failing = append(failing, o.Kind)
		}
		switch {
		case o.Result == supervisor.ResultReplacedFailing:
			// Not an error of the rollout: say why here.
			fmt.Fprintf(out, "       %s: %s: %v\n", o.Kind, o.Result, o.Err)
		case o.Result == supervisor.ResultFirstFailing && req.First:
			// Deploy drops a first release that did not come up.
			fmt.Fprintf(out, "       %s: failing\n", o.Kind)
		default:
			fmt.Fprintf(out, "       %s: %s\n", o.Kind, o.Result)
		}
	}
	p.spec.Progress = func(msg string, transient bool) {
		if transient {
			d.log.Debug(msg, "app", app)
			control.WriteProgress(out, "       "+msg)
			return
		}
		fmt.Fprintf(out, "       %s\n", msg)
	}
	applyErr := d.sup.Apply(ctx, p.spec)
	if applyErr != nil && (kept || !reported) {
		// Refused: the running version stays, and so do its files.
		if uerr := undoVassals(); uerr != nil {
			return errors.Join(applyErr, uerr)
		}
		return applyErr
	}
	// Committed, possibly with kinds that had nothing to fall back to and
	// failed (applyErr says which): publish what now runs.
	d.mu.Lock()
	if err := d.checkHosts(app, route.Hosts); err != nil { // another rollout may have claimed them meanwhile
		d.mu.Unlock()
		return err
	}
	if old, ok := d.routes[app]; ok {
		route.Backends = old.Backends // what the supervisor routed
	} else {
		route.Backends = d.webAddrs(app)
	}
	d.routes[app] = route
	d.mu.Unlock()
	if len(route.Hosts) > 0 {
		d.proxy.SetRoute(route)
		d.certs.SetHosts(app, route.Hosts, d.cfg.ACME)
	} else {
		d.proxy.RemoveRoute(app)
		d.certs.SetHosts(app, nil, false)
	}
	if req.KeepRunning {
		fmt.Fprintf(out, "-----> PIKU_AUTO_RESTART is off: the running processes keep their code and settings until `piku restart %s`\n", app)
	} else if err := appconfig.WriteLiveEnv(d.root, app, a.Env); err != nil {
		return err
	}
	if err := d.cron.Set(app, p.jobs); err != nil {
		return fmt.Errorf("app %q: cron: %w", app, err)
	}
	d.mu.Lock()
	st := d.apps[app]
	st.revision, st.hosts = p.spec.Revision, route.Hosts
	d.mu.Unlock()
	if applyErr != nil {
		return applyErr
	}
	for _, in := range d.sup.Status(app) {
		if in.Port != 0 {
			fmt.Fprintf(out, "       %s.%d listening on %s\n", in.Kind, in.N, in.Addr)
		}
	}
	where := ""
	if len(route.Hosts) > 0 {
		where = " on " + strings.Join(route.Hosts, ", ")
	}
	if len(failing) > 0 {
		sort.Strings(failing)
		verb := "is"
		if len(failing) > 1 {
			verb = "are"
		}
		fmt.Fprintf(out, "-----> '%s' is live%s, but %s %s failing: retried with backoff (see `piku logs %s`)\n",
			app, where, strings.Join(failing, ", "), verb, app)
		return nil
	}
	fmt.Fprintf(out, "-----> '%s' is live%s\n", app, where)
	return nil
}

// writeVassals writes the uWSGI vassal files of app and removes the ones
// it no longer has, in uwsgi-available/ with their copies in
// uwsgi-enabled/, as piku lays them out. The returned undo puts every
// file back as it was.
func (d *Daemon) writeVassals(app string, vassals map[string][]byte) (undo func() error, err error) {
	old, err := d.root.VassalFiles(app)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app, err)
	}
	saved := map[string][]byte{}
	for _, p := range old {
		if b, err := os.ReadFile(p); err == nil {
			saved[p] = b
		}
	}
	var written []string
	undo = func() error {
		var errs []error
		for _, p := range written {
			if _, ok := saved[p]; !ok {
				if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
			}
		}
		for p, b := range saved {
			errs = append(errs, layout.WriteFile(p, b, 0o600))
		}
		return errors.Join(errs...)
	}
	keep := map[string]bool{}
	for path, ini := range vassals {
		name := filepath.Base(path)
		enabled := d.root.VassalEnabledFile(name)
		keep[path], keep[enabled] = true, true
		written = append(written, path, enabled)
		if err := layout.WriteFile(path, ini, 0o600); err != nil {
			return nil, errors.Join(err, undo())
		}
		if err := layout.WriteFile(enabled, ini, 0o600); err != nil {
			return nil, errors.Join(err, undo())
		}
	}
	for _, p := range old {
		if !keep[p] {
			_ = os.Remove(p)
		}
	}
	return undo, nil
}

// webAddrs returns the addresses of app's running web instances.
func (d *Daemon) webAddrs(app string) []string {
	addrs := []string{}
	for _, in := range d.sup.Status(app) {
		if in.Addr != "" {
			addrs = append(addrs, in.Addr)
		}
	}
	return addrs
}

func describe(scaling map[string]int) string {
	if len(scaling) == 0 {
		return "no processes"
	}
	kinds := make([]string, 0, len(scaling))
	for k, n := range scaling {
		kinds = append(kinds, fmt.Sprintf("%s:%d", k, n))
	}
	sort.Strings(kinds)
	return strings.Join(kinds, " ")
}

// Stop implements control.Backend.
func (d *Daemon) Stop(ctx context.Context, app string, out io.Writer) error {
	if !d.root.Exists(app) {
		return fmt.Errorf("app %q: %w", app, control.ErrUnknownApp)
	}
	unlock := d.lock(app)
	defer unlock()
	if err := d.cron.Remove(app); err != nil {
		return fmt.Errorf("app %q: cron: %w", app, err)
	}
	if err := d.sup.Stop(ctx, app); err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	d.mu.Lock()
	if rt, ok := d.routes[app]; ok {
		rt.Backends = nil
		d.routes[app] = rt
		if len(rt.Hosts) > 0 {
			d.proxy.SetRoute(rt)
		}
	}
	d.mu.Unlock()
	fmt.Fprintf(out, "-----> '%s' stopped\n", app)
	return nil
}

// Forget implements control.Backend.
func (d *Daemon) Forget(ctx context.Context, app string) error {
	unlock := d.lock(app)
	defer unlock()
	if err := d.cron.Remove(app); err != nil {
		return fmt.Errorf("app %q: cron: %w", app, err)
	}
	if err := d.sup.Stop(ctx, app); err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	d.proxy.RemoveRoute(app)
	d.certs.SetHosts(app, nil, false)
	d.mu.Lock()
	delete(d.routes, app)
	delete(d.apps, app)
	d.mu.Unlock()
	d.metrics.Forget(app)
	d.cgroups.Remove(app)
	return nil
}

var _ control.Backend = (*Daemon)(nil)
