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
	"slices"
	"strings"
	"time"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/cron"
	"github.com/piku/piku/internal/supervisor"
	"github.com/piku/piku/proxy"
)

// A rollout brings an app's processes, route, certificates, LIVE_ENV and
// cron jobs in line with its files, as one transaction in phases:
//
//	plan     read the files into what should run (nothing changes)
//	guard    refuse what must not run (hosts, static folders)
//	stage    write what new processes read when they start (vassals),
//	         with an undo
//	apply    the supervisor starts the new instances and decides per kind:
//	         committed (the new ones serve) or refused (the old ones stay);
//	         a refused rollout undoes its stage and publishes nothing
//	publish  the publishers, in order, on the committed rollout
//
// The text the client reads goes through a reporter.

// processes is the supervisor as the daemon's operations use it.
type processes interface {
	Apply(ctx context.Context, spec supervisor.AppSpec) error
	Status(app string) []supervisor.InstanceStatus
	Stop(ctx context.Context, app string) error
}

// certHosts is the certificate manager as a rollout uses it.
type certHosts interface {
	SetHosts(app string, hosts []string, acme bool)
}

// cronJobs is the cron runner as the daemon's operations use it.
type cronJobs interface {
	Set(app string, jobs []cron.Job) error
	Remove(app string) error
}

// rollout is one rollout of an app, filled in phase by phase.
type rollout struct {
	app string
	req control.DeployRequest
	rep reporter

	// plan
	files *appconfig.App
	plan  *plan
	route proxy.Route
	maint *appconfig.Maintenance // nil: not in maintenance
	idle  time.Duration          // PIKU_IDLE_TIMEOUT; 0 = never
	wake  bool                   // the rollout wakes the app (idle.go)

	// apply
	failing []string // kinds committed although their new instances failed
}

// publisher publishes one side effect of a committed rollout. The
// publishers run in order; the first that fails stops the rest, and the
// rollout reports its error: the ones before it have taken effect, the
// new processes serve, and the next rollout of the app publishes again.
type publisher struct {
	name    string
	publish func(r *rollout) error
}

// publishers are the daemon's publishers, in the order they run: the
// route first, so the new instances serve as soon as possible. A new side
// effect of a rollout is a publisher added here.
func (d *Daemon) publishers() []publisher {
	return []publisher{
		{"route", d.publishRoute},
		{"certificates", d.publishCertHosts},
		{"LIVE_ENV", d.publishLiveEnv},
		{"cron", d.publishCron},
		{"status", d.publishStatus},
		{"idle", d.publishIdle},
	}
}

// publishIdle gives the sleeper the app's idle timeout. The app's web
// instances run: a hold left from its sleep ends, and its idle time
// counts from now (its route may be older than its instances: a daemon
// that starts makes it before they boot, known.go).
func (d *Daemon) publishIdle(r *rollout) error {
	if r.idle > 0 {
		d.table.MarkActive(r.app)
	}
	if wasAsleep := d.sleeper.set(r.app, r.idle); wasAsleep {
		d.table.Release(r.app)
	}
	return nil
}

// rollout runs one rollout of app under the app's lock.
func (d *Daemon) rollout(ctx context.Context, app string, req control.DeployRequest, out reporter) error {
	return d.runLocked(ctx, &rollout{app: app, req: req, rep: out})
}

// runLocked runs the rollout r under its app's lock.
func (d *Daemon) runLocked(ctx context.Context, r *rollout) error {
	app := r.app
	unlock := d.lock(app)
	defer unlock()
	// A destroy may have run while this rollout waited for the lock.
	if !d.root.Exists(app) {
		return fmt.Errorf("app %q: %w", app, control.ErrUnknownApp)
	}
	st := d.state(app)
	start := time.Now()
	err := d.runRollout(ctx, r)
	d.metrics.Rollout(app, time.Since(start), err)
	d.mu.Lock()
	st.lastErr = ""
	if err != nil {
		st.lastErr = err.Error()
	}
	d.mu.Unlock()
	return err
}

// runRollout runs the phases of r.
func (d *Daemon) runRollout(ctx context.Context, r *rollout) error {
	if err := d.planRollout(r); err != nil {
		return err
	}
	if err := d.guardRollout(r); err != nil {
		return err
	}
	if r.maint != nil && r.maint.Stop {
		return d.stopForMaintenance(ctx, r)
	}
	undo, err := d.stageRollout(r)
	if err != nil {
		return err
	}
	r.rep.step("Rolling out '%s' (%s)", r.app, describe(r.files.Scaling))
	committed, applyErr := d.applyRollout(ctx, r)
	if !committed {
		// Refused: the running version stays, and so do its files.
		if uerr := undo(); uerr != nil {
			return errors.Join(applyErr, uerr)
		}
		return applyErr
	}
	// Committed, possibly with kinds that had nothing to fall back to and
	// failed (applyErr says which): publish what now runs.
	for _, p := range d.publishers() {
		if err := p.publish(r); err != nil {
			return err
		}
	}
	if applyErr != nil {
		return applyErr
	}
	d.reportLive(r)
	return nil
}

// planRollout reads the app's files into r's plan and route.
func (d *Daemon) planRollout(r *rollout) error {
	a, err := appconfig.Load(d.root, r.app)
	if err != nil {
		return err
	}
	r.files = a
	for _, w := range a.Procfile.Warnings {
		r.rep.step("Warning: %s", w)
	}
	p, err := d.makePlan(a, r.req.Restart)
	if err != nil {
		return placeEnvError(d.root, r.app, err)
	}
	p.spec.KeepRunning = r.req.KeepRunning
	r.plan = p
	if r.route, r.idle, r.maint, err = d.appRoute(a); err != nil {
		return err
	}
	r.route.StaticSite = p.static
	return nil
}

// appRoute reads the route settings of the app a from its files, with
// its idle timeout and maintenance mode.
func (d *Daemon) appRoute(a *appconfig.App) (route proxy.Route, idle time.Duration, maint *appconfig.Maintenance, err error) {
	route, err = proxy.RouteFromEnv(a.Name, a.Dir, a.Env.Map())
	if err != nil {
		return route, 0, nil, placeEnvError(d.root, a.Name, fmt.Errorf("app %q: %w", a.Name, err))
	}
	if !route.NoAccessLog {
		route.AccessLog = d.root.AccessLog(a.Name)
	}
	if b, err := os.ReadFile(d.root.DeployedFromFile(a.Name)); err == nil {
		if ip := net.ParseIP(strings.TrimSpace(string(b))); ip != nil {
			route.AllowIPs = []string{ip.String()}
		}
	}
	if route.Cache != nil && route.Cache.Path == "" {
		route.Cache.Path = d.root.Cache(a.Name)
	}
	if idle, err = idleTimeout(a); err != nil {
		return route, 0, nil, placeEnvError(d.root, a.Name, err)
	}
	route.TrackActivity = idle > 0
	if maint, err = appconfig.ReadMaintenance(d.root, a.Name); err != nil {
		return route, 0, nil, err
	}
	if maint != nil {
		page, err := readMaintenancePage(a.Dir)
		if err != nil {
			return route, 0, nil, fmt.Errorf("app %q: %w", a.Name, err)
		}
		route.Maintenance = &proxy.Maintenance{Message: maint.Message, Page: page}
	}
	return route, idle, maint, nil
}

// maxMaintenancePage bounds the maintenance.html an app may ship.
const maxMaintenancePage = 1 << 20

// readMaintenancePage reads the maintenance.html of the checkout dir; nil
// when there is none.
func readMaintenancePage(dir string) ([]byte, error) {
	path := filepath.Join(dir, "maintenance.html")
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMaintenancePage+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxMaintenancePage {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxMaintenancePage)
	}
	return b, nil
}

// stopForMaintenance is the rollout of an app in maintenance with its
// processes stopped (maintenance:on --stop): the processes and cron jobs
// stop, and the route, with its maintenance page, and the certificates
// are published.
func (d *Daemon) stopForMaintenance(ctx context.Context, r *rollout) error {
	d.sleeper.forget(r.app)
	d.table.Release(r.app)
	if err := d.jobs.Remove(r.app); err != nil {
		return fmt.Errorf("app %q: cron: %w", r.app, err)
	}
	if err := d.procs.Stop(ctx, r.app); err != nil {
		return fmt.Errorf("app %q: %w", r.app, err)
	}
	for _, p := range []publisher{{"route", d.publishRoute}, {"certificates", d.publishCertHosts}, {"status", d.publishStatus}} {
		if err := p.publish(r); err != nil {
			return err
		}
	}
	r.rep.step("'%s' is in maintenance with its processes stopped: every request gets a 503 until `piku maintenance:off %s`", r.app, r.app)
	return nil
}

// recreatesWeb reports whether a rollout of spec may stop a web kind
// before starting its replacement: the kind asks for it
// (PIKU_ROLLOUT=recreate) or pins its port.
func recreatesWeb(spec supervisor.AppSpec) bool {
	return slices.ContainsFunc(spec.Processes, func(ps supervisor.ProcessSpec) bool {
		return ps.Web && (ps.Recreate || ps.FixedPort != 0)
	})
}

// setStrategy records how app's kind was last replaced, for `piku ps`.
func (d *Daemon) setStrategy(app, kind, strategy string) {
	st := d.state(app)
	d.mu.Lock()
	defer d.mu.Unlock()
	if st.strategies == nil {
		st.strategies = map[string]string{}
	}
	st.strategies[kind] = strategy
}

// guardRollout refuses a plan that must not run: static folders outside
// the app's own, host names another app serves.
func (d *Daemon) guardRollout(r *rollout) error {
	if err := d.checkStaticDirs(r.app, r.route, r.plan.static); err != nil {
		return placeEnvError(d.root, r.app, err)
	}
	return placeEnvError(d.root, r.app, d.checkHosts(r.app, r.route.Hosts))
}

// stageRollout writes what new instances read when they start: the app's
// data and log folders and its uWSGI vassal files. The undo puts the
// vassals back as they were; the folders stay.
func (d *Daemon) stageRollout(r *rollout) (undo func() error, err error) {
	for _, dir := range []string{d.root.Data(r.app), d.root.Logs(r.app)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("app %q: %w", r.app, err)
		}
	}
	return d.writeVassals(r.app, r.plan.vassals)
}

// applyRollout has the supervisor roll the plan out and reports each
// kind's outcome. committed is false when the running version stays (a
// kind kept its old instances, or nothing was decided); err says why the
// rollout failed, committed or not.
func (d *Daemon) applyRollout(ctx context.Context, r *rollout) (committed bool, err error) {
	var reported, kept bool
	spec := r.plan.spec
	if recreatesWeb(spec) {
		// The web instances stop before the new ones start: the proxy
		// holds the app's requests meanwhile and serves them from the
		// new instances (or answers 503 if they do not come up).
		d.table.Hold(r.app)
		defer d.table.Release(r.app)
	}
	spec.Report = func(o supervisor.Outcome) {
		d.metrics.RolloutKind(r.app, o.Kind, outcomeLabel(o.Result))
		if o.Strategy != "" {
			d.setStrategy(r.app, o.Kind, o.Strategy)
		}
		reported = true
		kept = kept || o.Result == supervisor.ResultKept
		if o.Result == supervisor.ResultReplacedFailing || o.Result == supervisor.ResultFirstFailing {
			r.failing = append(r.failing, o.Kind)
		}
		r.rep.outcome(o, r.req.First)
	}
	spec.Progress = r.rep.progress
	err = d.procs.Apply(ctx, spec)
	if err != nil && (kept || !reported) {
		return false, err
	}
	return true, err
}

// publishRoute gives the app's route its new settings; the supervisor has
// already given it its new backends.
func (d *Daemon) publishRoute(r *rollout) error {
	// Another app's rollout may have claimed the hosts since the guard:
	// the proxy refuses them then.
	return publishRoute(d.table, r.route)
}

// publishCertHosts asks for certificates of the app's hosts.
func (d *Daemon) publishCertHosts(r *rollout) error {
	if len(r.route.Hosts) == 0 {
		d.certHosts.SetHosts(r.app, nil, false)
		return nil
	}
	d.certHosts.SetHosts(r.app, r.route.Hosts, d.cfg.ACME)
	return nil
}

// publishLiveEnv records the ENV the app now runs with (LIVE_ENV), unless
// PIKU_AUTO_RESTART is off and the running processes kept their own.
func (d *Daemon) publishLiveEnv(r *rollout) error {
	if r.wake {
		return nil // the processes woken run the settings they slept with
	}
	if r.req.KeepRunning {
		r.rep.step("PIKU_AUTO_RESTART is off: the running processes keep their code and settings until `piku restart %s`", r.app)
		return nil
	}
	return appconfig.WriteLiveEnv(d.root, r.app, r.files.Env)
}

// publishCron gives the cron runner the app's jobs.
func (d *Daemon) publishCron(r *rollout) error {
	if err := d.jobs.Set(r.app, r.plan.jobs); err != nil {
		return fmt.Errorf("app %q: cron: %w", r.app, err)
	}
	return nil
}

// publishStatus records the revision and hosts `piku apps` shows.
func (d *Daemon) publishStatus(r *rollout) error {
	st := d.state(r.app)
	d.mu.Lock()
	st.revision, st.hosts = r.plan.spec.Revision, r.route.Hosts
	d.mu.Unlock()
	return nil
}

// reportLive tells the client where the app now listens.
func (d *Daemon) reportLive(r *rollout) {
	for _, in := range d.procs.Status(r.app) {
		if in.Port != 0 {
			r.rep.detail("%s.%d listening on %s", in.Kind, in.N, in.Addr)
		}
	}
	where := ""
	if len(r.route.Hosts) > 0 {
		where = " on " + strings.Join(r.route.Hosts, ", ")
	}
	if r.maint != nil {
		r.rep.step("'%s' is in maintenance%s: every request gets a 503 until `piku maintenance:off %s`", r.app, where, r.app)
	}
	if len(r.failing) == 0 {
		r.rep.step("'%s' is live%s", r.app, where)
		return
	}
	failing := slices.Sorted(slices.Values(r.failing))
	verb := "is"
	if len(failing) > 1 {
		verb = "are"
	}
	r.rep.step("'%s' is live%s, but %s %s failing: retried with backoff (see `piku logs %s`)",
		r.app, where, strings.Join(failing, ", "), verb, r.app)
}
