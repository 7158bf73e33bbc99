package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/procfile"
)

// DefaultKeepReleases is how many releases are kept when the app does not
// set PIKU_KEEP_RELEASES.
const DefaultKeepReleases = 5

// Daemon is the part of the control client a deploy uses: roll the app's
// files out, drop an app that never went live, hold the app's requests
// while its release command runs (PIKU_RELEASE_HOLD).
type Daemon interface {
	Deploy(ctx context.Context, app string, req control.DeployRequest, out io.Writer) error
	Forget(ctx context.Context, app string) error
	Pause(ctx context.Context, app string) (resume func(), err error)
}

var _ Daemon = (*control.Client)(nil)

// Deployer builds releases and puts them live.
type Deployer struct {
	// Root is PIKU_ROOT.
	Root layout.Root
	// Daemon rolls releases out.
	Daemon Daemon
	// Out receives the progress, in piku's style.
	Out io.Writer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// LockHeld says that the caller already holds the app's deploy lock
	// (git-receive-pack holds it for the whole push, hook included), so
	// Deploy and Rollback must not take it again.
	LockHeld bool
}

// LockHeldEnv is set (to 1) in the environment of a push's git process by
// piku's git-receive-pack, which holds the app's deploy lock for the whole
// receive; the pre-receive hook then runs under that lock.
const LockHeldEnv = "PIKU_DEPLOY_LOCK_HELD"

func (d *Deployer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Deployer) step(format string, args ...any) {
	fmt.Fprintf(d.Out, "-----> "+format+"\n", args...)
}

// Push is one pushed branch to deploy.
type Push struct {
	App         string
	Revision    string
	Branch      string
	Fingerprint string // the pushing key, FINGERPRINT from the forced command
	ClientIP    string // the pushing SSH client's address, from SSH_CLIENT
	Source      Source
}

// lock takes app's deploy lock, saying so when it has to wait.
func (d *Deployer) lock(ctx context.Context, app string) (func(), error) {
	if d.LockHeld {
		return func() {}, nil
	}
	return Lock(ctx, d.Root.DeployLock(app), func() {
		d.step("Another deploy of '%s' is running: waiting for it to finish", app)
	})
}

// Deploy builds p into a new release and puts it live. Any failure before
// the new release is live leaves the live release running and untouched;
// a failed rollout switches back to it.
func (d *Deployer) Deploy(ctx context.Context, p Push) (err error) {
	root, app := d.Root, p.App
	if err := layout.ValidateApp(app); err != nil {
		return err
	}
	unlock, err := d.lock(ctx, app)
	if err != nil {
		return err
	}
	defer unlock()
	if id, err := Adopt(root, app, d.now()); err != nil {
		return err
	} else if id != "" {
		d.step("Kept the existing %s as release %s", root.App(app), id)
	}
	prev := LiveID(root, app)
	id := NewID(root, app, d.now(), p.Revision)
	dir := root.Release(app, id)
	d.step("Deploying '%s' from %s (%s) as release %s", app, p.Branch, short(p.Revision), id)
	live := false
	defer func() {
		if err != nil && !live {
			_ = os.RemoveAll(dir)
			_ = os.Remove(root.ReleaseMeta(app, id))
		}
	}()
	if err := os.MkdirAll(root.Releases(app), 0o755); err != nil {
		return err
	}
	if err := Checkout(ctx, p.Source, p.Revision, p.Branch, dir, d.Out); err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	pf, err := readProcfile(dir)
	if err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	// The Procfile's warnings are the daemon's to report, in the rollout
	// (as for every restart and config change), not repeated here.
	b := &build{ctx: ctx, root: root, app: app, dir: dir, out: d.Out, cmd: newIndentWriter(d.Out)}
	if b.env, err = releaseEnv(root, app, dir); err != nil {
		return err
	}
	if err := b.setLimits(); err != nil {
		return err
	}
	timeout, err := releaseTimeout(b.env)
	if err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	hold, err := releaseHold(b.env)
	if err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	if e, ok := pf.Entry(procfile.KindPreflight); ok {
		d.step("Running preflight: %s", e.Command)
		if err := b.shell(e.Command, timeout); err != nil {
			return fmt.Errorf("app %q: preflight failed (%v); nothing was deployed", app, err)
		}
	}
	rt := Detect(dir, pf)
	d.step("%s app detected", rt.Name)
	if err := rt.build(b); err != nil {
		return fmt.Errorf("app %q: build failed: %w; nothing was deployed", app, err)
	}
	// The build may have made node_modules or commands the release
	// command needs.
	if b.env, err = releaseEnv(root, app, dir); err != nil {
		return err
	}
	if e, ok := pf.Entry(procfile.KindRelease); ok {
		if hold {
			resume := d.pause(ctx, app)
			defer resume()
		}
		d.step("Running release: %s", e.Command)
		if err := b.shell(e.Command, timeout); err != nil {
			return fmt.Errorf("app %q: release failed (%v); nothing was deployed", app, err)
		}
	}
	rel := Release{ID: id, Revision: p.Revision, Branch: p.Branch, Time: d.now().UTC(),
		Fingerprint: p.Fingerprint, Runtime: rt.Name}
	rel.Config, rel.Scaling = readSnapshot(root, app)
	if err := writeRelease(root, app, rel); err != nil {
		return err
	}
	if prev != "" {
		// The release being left keeps the config it ran with until now,
		// so rolling back to it later restores that.
		refreshSnapshot(root, app, prev)
	}
	if ip := net.ParseIP(p.ClientIP); ip != nil {
		if err := layout.WriteFile(root.DeployedFromFile(app), []byte(ip.String()+"\n"), 0o600); err != nil {
			return err
		}
	}
	if err := Switch(root, app, id); err != nil {
		return err
	}
	live = true
	req := control.DeployRequest{Restart: []string{"*"}}
	if !autoRestart(b.env) {
		// As piku: the new code goes live at the next explicit restart.
		req = control.DeployRequest{KeepRunning: true}
	}
	if err := d.rollout(ctx, app, req, prev, id); err != nil {
		live = false
		return err
	}
	d.prune(app, b.env, prev)
	d.step("Release %s of '%s' is live (%s)", id, app, short(p.Revision))
	return nil
}

// rollout asks the daemon to roll id out. When that fails it switches
// back to prev and has the daemon re-read it (the supervisor keeps the old
// processes when a rollout fails), or, on a first deploy, drops the app.
func (d *Deployer) rollout(ctx context.Context, app string, req control.DeployRequest, prev, id string) error {
	req.First = prev == ""
	err := d.Daemon.Deploy(ctx, app, req, newIndentWriter(d.Out))
	if control.IsNotRunning(err) {
		d.step("The piku daemon is not running: '%s' will start with it (`piku service start`)", app)
		return nil
	}
	if err == nil {
		return nil
	}
	// The daemon's error names the app.
	rerr := fmt.Errorf("the rollout of release %s failed: %w", id, err)
	if prev == "" {
		// The deploy owns the first-release policy: the daemon left the
		// failing processes (control.ErrKept) or never started them, and
		// the app is dropped here, in the daemon and on disk, once.
		d.step("The first release of '%s' did not come up: its processes were stopped and the app removed", app)
		_ = os.Remove(d.Root.App(app))
		_ = d.Daemon.Forget(context.WithoutCancel(ctx), app)
		return fmt.Errorf("%w; nothing of '%s' runs: push again to retry", rerr, app)
	}
	d.step("Switching '%s' back to release %s", app, prev)
	if serr := Switch(d.Root, app, prev); serr != nil {
		return errors.Join(rerr, serr)
	}
	if derr := d.Daemon.Deploy(context.WithoutCancel(ctx), app, control.DeployRequest{}, newIndentWriter(d.Out)); derr != nil {
		return errors.Join(rerr, fmt.Errorf("restoring release %s: %w", prev, derr))
	}
	return fmt.Errorf("%w; release %s is still live", rerr, prev)
}

func (d *Deployer) prune(app string, env *procfile.Env, protect ...string) {
	keep := DefaultKeepReleases
	if v, ok := env.Get("PIKU_KEEP_RELEASES"); ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
			keep = n
		}
	}
	removed, err := Prune(d.Root, app, keep, protect...)
	if err != nil {
		d.step("Warning: pruning old releases: %v", err)
	}
	if len(removed) > 0 {
		d.step("Removed old releases: %s", strings.Join(removed, " "))
	}
}

// Rollback puts release id of app back live (the one before the live one
// when id is ""), with the config and scaling it ran with, without
// rebuilding. A failed rollout switches back.
func (d *Deployer) Rollback(ctx context.Context, app, id string) error {
	root := d.Root
	if err := layout.ValidateApp(app); err != nil {
		return err
	}
	unlock, err := d.lock(ctx, app)
	if err != nil {
		return err
	}
	defer unlock()
	rels, err := Releases(root, app)
	if err != nil {
		return err
	}
	prev := LiveID(root, app)
	var target *Release
	for i := range rels {
		switch {
		case id != "" && rels[i].ID == id:
			target = &rels[i]
		case id == "" && prev != "" && rels[i].ID < prev && target == nil:
			target = &rels[i]
		}
	}
	if target == nil {
		if id != "" {
			return fmt.Errorf("app %q has no release %q (see `piku releases %s`)", app, id, app)
		}
		return fmt.Errorf("app %q has no release older than the live one to roll back to", app)
	}
	if target.ID == prev {
		return fmt.Errorf("release %s of %q is already live", target.ID, app)
	}
	d.step("Rolling '%s' back to release %s (%s)", app, target.ID, short(target.Revision))
	var prevRel Release
	if prev != "" {
		refreshSnapshot(root, app, prev)
		prevRel, _ = ReadRelease(root, app, prev)
	}
	if err := restoreSnapshot(root, app, *target); err != nil {
		return err
	}
	if err := Switch(root, app, target.ID); err != nil {
		return err
	}
	env, _, err := appconfig.LoadEnv(root, app)
	if err != nil {
		return err
	}
	req := control.DeployRequest{Restart: []string{"*"}}
	if !autoRestart(env) {
		req.Restart = nil
	}
	err = d.Daemon.Deploy(ctx, app, req, newIndentWriter(d.Out))
	switch {
	case control.IsNotRunning(err):
		d.step("The piku daemon is not running: '%s' will start with release %s", app, target.ID)
		return nil
	case err == nil:
		d.step("Release %s of '%s' is live", target.ID, app)
		return nil
	}
	rerr := fmt.Errorf("the rollout of release %s failed: %w", target.ID, err)
	if prev == "" {
		return rerr
	}
	d.step("Switching '%s' back to release %s", app, prev)
	if err := restoreSnapshot(root, app, prevRel); err != nil {
		return errors.Join(rerr, err)
	}
	if err := Switch(root, app, prev); err != nil {
		return errors.Join(rerr, err)
	}
	if err := d.Daemon.Deploy(context.WithoutCancel(ctx), app, control.DeployRequest{}, newIndentWriter(d.Out)); err != nil {
		return errors.Join(rerr, err)
	}
	return fmt.Errorf("%w; release %s is still live", rerr, prev)
}

// refreshSnapshot records the current config and scaling in release id.
func refreshSnapshot(root layout.Root, app, id string) {
	r, err := ReadRelease(root, app, id)
	if err != nil {
		return
	}
	r.Config, r.Scaling = readSnapshot(root, app)
	_ = writeRelease(root, app, r)
}

// DefaultReleaseTimeout bounds the preflight and release commands when the
// app does not set PIKU_RELEASE_TIMEOUT.
const DefaultReleaseTimeout = 10 * time.Minute

// releaseTimeout is PIKU_RELEASE_TIMEOUT: seconds or a Go duration;
// DefaultReleaseTimeout when unset.
func releaseTimeout(env *procfile.Env) (time.Duration, error) {
	v, ok := env.Get("PIKU_RELEASE_TIMEOUT")
	v = strings.TrimSpace(v)
	if !ok || v == "" {
		return DefaultReleaseTimeout, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
		return time.Duration(f * float64(time.Second)), nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return d, nil
	}
	return 0, fmt.Errorf("PIKU_RELEASE_TIMEOUT=%q: want seconds (600) or a duration (10m)", v)
}

// pause has the daemon hold app's requests from now until the release
// is live (or the deploy failed), for PIKU_RELEASE_HOLD; resume ends it.
// An app that does not run yet (a first deploy) and a daemon that is not
// running have nothing to hold.
func (d *Deployer) pause(ctx context.Context, app string) (resume func()) {
	end, err := d.Daemon.Pause(ctx, app)
	switch {
	case err == nil:
		d.step("Holding the requests to '%s' until the release is live (PIKU_RELEASE_HOLD)", app)
		return func() {
			end()
			d.step("Requests to '%s' are served again", app)
		}
	case !control.IsNotRunning(err) && !errors.Is(err, control.ErrUnknownApp):
		d.step("Warning: the requests to '%s' are not held during the release: %v", app, err)
	}
	return func() {}
}

// releaseHold reads PIKU_RELEASE_HOLD: whether the app's requests are held
// while its release command runs and until the release is live.
func releaseHold(env *procfile.Env) (bool, error) {
	v, _ := env.Get("PIKU_RELEASE_HOLD")
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false", "no", "off":
		return false, nil
	case "1", "true", "yes", "on":
		return true, nil
	}
	return false, fmt.Errorf("PIKU_RELEASE_HOLD=%q: want 1 (hold the app's requests while release runs) or 0", v)
}

// autoRestart is piku's PIKU_AUTO_RESTART: on unless set to a false value.
func autoRestart(env *procfile.Env) bool {
	v, _ := env.Get("PIKU_AUTO_RESTART")
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "false", "0", "no", "off":
		return false
	}
	return true
}

func readProcfile(dir string) (*procfile.Procfile, error) {
	b, err := os.ReadFile(dir + "/Procfile")
	if errors.Is(err, os.ErrNotExist) {
		return nil, errors.New("the pushed revision has no Procfile: add one (see `piku init`)")
	}
	if err != nil {
		return nil, err
	}
	return procfile.Parse(bytes.NewReader(b), "Procfile")
}

// releaseEnv is the environment of app as it will run from release dir:
// piku's bootstrap variables (with PWD the release, and the release's own
// built commands first on PATH), the release's ENV, then config:set.
func releaseEnv(root layout.Root, app, dir string) (*procfile.Env, error) {
	env := appconfig.Bootstrap(root, app)
	env.Set("PWD", dir)
	if exists(layout.ReleaseBin(dir)) {
		path, _ := env.Get("PATH")
		env.Set("PATH", layout.ReleaseBin(dir)+":"+path)
	}
	if data, err := os.ReadFile(dir + "/ENV"); err == nil {
		appEnv, err := procfile.ParseEnv(bytes.NewReader(data), "ENV", env.Get)
		if err != nil {
			return nil, fmt.Errorf("app %q: %w", app, err)
		}
		env.Merge(appEnv)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	overrides, err := appconfig.ReadOverrides(root, app)
	if err != nil {
		return nil, err
	}
	env.Merge(overrides)
	return env, nil
}
