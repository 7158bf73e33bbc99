package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/supervisor"
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
	if m, err := appconfig.ReadMaintenance(d.root, app); m != nil && err == nil {
		st.Maintenance = &control.MaintenanceStatus{Message: m.Message, Stop: m.Stop}
	}
	d.mu.Lock()
	if as, ok := d.apps[app]; ok {
		st.Revision, st.Hosts, st.Error = as.revision, as.hosts, as.lastErr
		if len(as.strategies) > 0 {
			st.Rollouts = maps.Clone(as.strategies)
		}
	}
	d.mu.Unlock()
	// A static-only app runs no process: it is running when the proxy
	// serves its files.
	if rt, ok := d.table.Route(app); ok && rt.StaticSite != "" && len(rt.Hosts) > 0 && !st.Stopped {
		st.Running = true
	}
	insts := d.sup.Status(app)
	st.Limits = d.appLimits(app, insts)
	for _, in := range insts {
		st.Instances = append(st.Instances, control.Instance{
			Kind: in.Kind, N: in.N, State: string(in.State), PID: in.PID, Port: in.Port,
			Addr: in.Addr, StartedAt: in.StartedAt, Restarts: in.Restarts, LastExit: in.LastExit,
			NextRetry: in.NextRetry, RSS: in.RSS, Revision: in.Revision, Generation: in.Generation,
			LogDropped: in.LogDropped, LogError: in.LogError, LogRateDropped: in.LogRateDropped,
			HealthFailures: in.HealthFailures, LastHealthError: in.LastHealthError,
		})
		if in.State == supervisor.StateRunning {
			st.Running = true // a process that is up but never became ready is not
		}
	}
	asleep := d.sleeper.sleeping(app)
	for _, kind := range slices.Sorted(maps.Keys(asleep)) {
		for n := 1; n <= asleep[kind]; n++ {
			st.Instances = append(st.Instances, control.Instance{Kind: kind, N: n, State: StateSleeping})
		}
	}
	if len(asleep) > 0 && !st.Stopped {
		st.Running = true // it wakes on the next request
	}
	_, st.Held = d.table.Held(app)
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
	err := d.rollout(ctx, app, req, reporter{w: out, log: d.log, app: app})
	var kept *supervisor.KeptError
	if errors.As(err, &kept) {
		if req.First {
			// The deploy drops a first release that did not come up
			// (it owns that policy: it removes the app's files too), so
			// its processes are not said to be retried.
			return control.Coded(control.CodeKept, kept.Err) // names the app
		}
		return control.Coded(control.CodeKept, err)
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
	// A destroy may have run while this stop waited for the lock.
	if !d.root.Exists(app) {
		return fmt.Errorf("app %q: %w", app, control.ErrUnknownApp)
	}
	d.sleeper.forget(app)
	d.table.Release(app)
	if err := d.jobs.Remove(app); err != nil {
		return fmt.Errorf("app %q: cron: %w", app, err)
	}
	if err := d.procs.Stop(ctx, app); err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	// What left its group and cleared its environment is still in the
	// app's cgroup.
	d.cgroups.Kill(app)
	// The supervisor has routed the app to no backend.
	fmt.Fprintf(out, "-----> '%s' stopped\n", app)
	return nil
}

// Forget implements control.Backend.
func (d *Daemon) Forget(ctx context.Context, app string) error {
	unlock := d.lock(app)
	defer unlock()
	d.sleeper.forget(app)
	d.table.Release(app)
	if err := d.jobs.Remove(app); err != nil {
		return fmt.Errorf("app %q: cron: %w", app, err)
	}
	if err := d.procs.Stop(ctx, app); err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	d.table.RemoveRoute(app)
	d.certHosts.SetHosts(app, nil, false)
	d.mu.Lock()
	delete(d.apps, app)
	d.mu.Unlock()
	d.metrics.Forget(app)
	d.asked.Delete(app)
	d.watchdog.Forget(app)
	d.cgroups.Kill(app)
	d.cgroups.Remove(app)
	return nil
}

var _ control.Backend = (*Daemon)(nil)
