package daemon

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/cron"
	"github.com/piku/piku/internal/isolation"
	"github.com/piku/piku/internal/procgroup"
	"github.com/piku/piku/internal/release"
	"github.com/piku/piku/internal/supervisor"
	"github.com/piku/piku/internal/uwsgi"
	"github.com/piku/piku/procfile"
	"github.com/piku/piku/proxy"
)

// plan is what one rollout of an app needs, derived from its files.
type plan struct {
	spec    supervisor.AppSpec
	jobs    []cron.Job
	static  string // the `static` entry's directory, if any
	vassals map[string][]byte
}

// ENV keys piku adds for the supervisor (all optional, per app).
const (
	keyStopTimeout  = "PIKU_STOP_TIMEOUT"         // seconds or a Go duration; default 10s
	keyBootTimeout  = "PIKU_BOOT_TIMEOUT"         // default 60s
	keyDrainTimeout = "PIKU_DRAIN_TIMEOUT"        // wait for requests to old instances; default 30s
	keyRestartDelay = "PIKU_RESTART_DELAY"        // first restart delay; default 100ms
	keyRestartMax   = "PIKU_RESTART_MAX"          // backoff cap; default 30s
	keyHealthPath   = "PIKU_HEALTHCHECK_PATH"     // readiness: HTTP path answering below 500
	keyHealthEvery  = "PIKU_HEALTHCHECK_INTERVAL" // liveness of running web instances; default 10s, 0 = off
	keyHealthWait   = "PIKU_HEALTHCHECK_TIMEOUT"  // one check; default 5s
	keyHealthFails  = "PIKU_HEALTHCHECK_FAILURES" // failed checks in a row that restart; default 3
	keyLogMaxSize   = "PIKU_LOG_MAX_SIZE"         // MB per log file before rotation; default 10
	keyLogBackups   = "PIKU_LOG_BACKUPS"          // rotated files kept; default 5
	keyLogMaxAge    = "PIKU_LOG_MAX_AGE"          // days rotated files are kept; default 0 (no limit)
	keyLogRate      = "PIKU_LOG_RATE"             // output copied to the logs per second, per app; default 1M, max = none
	keyServerName   = "NGINX_SERVER_NAME"
	keyPinnedPort   = "PORT"
	keyRollout      = "PIKU_ROLLOUT" // rolling (default) or recreate: stop-then-start
)

// makePlan turns an app's files into a rollout plan.
func (d *Daemon) makePlan(a *appconfig.App, restart []string) (*plan, error) {
	env := a.Env
	p := &plan{vassals: map[string][]byte{}}
	policy, err := policyFromEnv(env)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", a.Name, err)
	}
	logs, err := logPolicyFromEnv(env)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", a.Name, err)
	}
	logs.Dir = d.root.Logs(a.Name)
	p.spec = supervisor.AppSpec{
		App:      a.Name,
		Revision: release.LiveRevision(d.root, a.Name),
		Dir:      a.Dir,
		Restart:  restart,
		Policy:   policy,
		Logs:     logs,
	}
	healthPath, _ := env.Get(keyHealthPath)
	healthHost := ""
	if names, ok := env.Get(keyServerName); ok {
		hosts, err := proxy.ParseHosts(names)
		if err != nil {
			return nil, fmt.Errorf("app %q: %s: %w", a.Name, keyServerName, err)
		}
		if len(hosts) > 0 && !strings.HasPrefix(hosts[0], "*") {
			healthHost = hosts[0]
		}
	}
	pinned := 0
	if v, ok := a.Env.Get(keyPinnedPort); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("app %q: PORT=%q is not a port number", a.Name, v)
		}
		if err := d.checkPinnedPort(a.Name, n); err != nil {
			return nil, err
		}
		pinned = n
	}
	recreate := false
	switch v, _ := env.Get(keyRollout); strings.ToLower(strings.TrimSpace(v)) {
	case "", supervisor.StrategyRolling:
	case supervisor.StrategyRecreate:
		recreate = true
	default:
		return nil, fmt.Errorf("app %q: %s=%q: want %s or %s", a.Name, keyRollout, v, supervisor.StrategyRolling, supervisor.StrategyRecreate)
	}
	base := procfile.NewEnv()
	base.Merge(env)
	base.Unset(keyPinnedPort) // the supervisor sets PORT per instance
	if err := d.bindAddress(a.Name, base); err != nil {
		return nil, err
	}
	limits, err := isolation.ParseLimits(env.Get)
	if err != nil {
		return nil, fmt.Errorf("app %q: ENV: %w", a.Name, err)
	}
	nice, _ := env.Get(isolation.KeyNice)
	if err := limits.CheckKinds(strings.TrimSpace(nice), func(kind string) bool {
		return slices.ContainsFunc(a.Procfile.Entries, func(e procfile.Entry) bool { return e.Kind == kind })
	}); err != nil {
		return nil, fmt.Errorf("app %q: ENV: %w", a.Name, err)
	}
	procs, err := d.cgroups.Apply(a.Name, limits)
	if err != nil {
		return nil, err
	}
	d.noteLimits(a.Name, limits, logs.Rate)
	if len(procs) > 0 {
		base.Set(procgroup.CgroupProcsVar, strings.Join(procs, ":"))
	}
	for _, kv := range isolation.ConfineEnv(d.root, a.Name, env.Get) {
		k, v, _ := strings.Cut(kv, "=")
		base.Set(k, v)
	}
	// The per-process limits every mode enforces (rlimits, nice), set
	// by each process's prelude before it runs anything; they override
	// what the app's ENV may say of the prelude's own variables.
	environ := func(kind string) []string {
		return append(base.Environ(), limits.ProcessEnv(kind)...)
	}

	for _, e := range a.Procfile.Entries {
		switch {
		case e.Kind == procfile.KindStatic:
			p.static = staticDir(a.Dir, e.Command)
		case procfile.IsCron(e.Kind):
			p.jobs = append(p.jobs, cron.Job{
				Name:     e.Kind,
				Schedule: e.Schedule,
				Command:  e.Command,
				Dir:      a.Dir,
				Env:      environ(e.Kind),
				Log:      d.root.CronLog(a.Name, e.Kind),
			})
		}
	}
	for _, e := range a.Procfile.Processes() {
		count := a.Scaling[e.Kind]
		ps := supervisor.ProcessSpec{
			Kind:    e.Kind,
			Command: e.Command,
			Count:   count,
			Env:     environ(e.Kind),
			// Recreate: stop-then-start, while the proxy holds the
			// app's requests (rollout.go).
			Recreate: recreate,
		}
		switch {
		case e.Kind == procfile.KindWeb:
			ps.Web = true
			ps.FixedPort = pinned
			ps.HealthPath, ps.HealthHost = healthPath, healthHost
		case procfile.IsUWSGI(e.Kind):
			if err := uwsgi.Check(e.Kind, env); err != nil {
				return nil, fmt.Errorf("app %q: %s: %w", a.Name, e.Kind, err)
			}
			ini, err := uwsgi.Vassal(uwsgi.Options{
				App:        a.Name,
				Kind:       e.Kind,
				Command:    e.Command,
				AppDir:     a.Dir,
				VirtualEnv: d.root.Env(a.Name),
				Env:        base,
			})
			if err != nil {
				return nil, fmt.Errorf("app %q: %s: %w", a.Name, e.Kind, err)
			}
			// One vassal per instance, named as piku names them; the
			// files are alike, uWSGI takes the port from PORT.
			for n := 1; n <= count; n++ {
				p.vassals[d.root.VassalAvailable(a.Name, e.Kind, n)] = ini
			}
			ps.Command = uwsgi.InstanceCommand(d.root.UwsgiAvailableDir(), a.Name, e.Kind)
			ps.Web = true
			ps.HealthPath, ps.HealthHost = healthPath, healthHost
		}
		p.spec.Processes = append(p.spec.Processes, ps)
	}
	return p, nil
}

// staticDir resolves a `static` entry's path against the app directory.
func staticDir(appDir, path string) string {
	path = strings.TrimSpace(path)
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(appDir, path)
}

func policyFromEnv(env *procfile.Env) (supervisor.Policy, error) {
	var p supervisor.Policy
	var err error
	if p.StopTimeout, err = durationKey(env, keyStopTimeout); err != nil {
		return p, err
	}
	if p.DrainTimeout, err = durationKey(env, keyDrainTimeout); err != nil {
		return p, err
	}
	if p.BootTimeout, err = durationKey(env, keyBootTimeout); err != nil {
		return p, err
	}
	if p.BackoffInitial, err = durationKey(env, keyRestartDelay); err != nil {
		return p, err
	}
	if p.BackoffMax, err = durationKey(env, keyRestartMax); err != nil {
		return p, err
	}
	if p.HealthInterval, err = durationKey(env, keyHealthEvery); err != nil {
		return p, err
	}
	if v, ok := env.Get(keyHealthEvery); ok && strings.TrimSpace(v) != "" && p.HealthInterval == 0 {
		p.HealthInterval = -1 // set to 0: off
	}
	if p.HealthTimeout, err = durationKey(env, keyHealthWait); err != nil {
		return p, err
	}
	if p.HealthFailures, err = intKey(env, keyHealthFails); err != nil {
		return p, err
	}
	return p, nil
}

func logPolicyFromEnv(env *procfile.Env) (supervisor.LogPolicy, error) {
	var l supervisor.LogPolicy
	var err error
	if l.MaxSizeMB, err = intKey(env, keyLogMaxSize); err != nil {
		return l, err
	}
	if l.MaxBackups, err = intKey(env, keyLogBackups); err != nil {
		return l, err
	}
	if l.MaxAgeDays, err = intKey(env, keyLogMaxAge); err != nil {
		return l, err
	}
	if v, ok := env.Get(keyLogRate); ok && strings.TrimSpace(v) != "" {
		v = strings.TrimSpace(v)
		if v == "max" {
			l.Rate = -1
		} else if l.Rate, err = isolation.ParseSize(v); err != nil || l.Rate < 1<<10 {
			return l, fmt.Errorf("%s=%q: accepted is a size per second of at least 1K, in bytes or with a K, M or G suffix (512K, 2M), or max for no limit", keyLogRate, v)
		}
	}
	return l, nil
}

// durationKey reads a duration setting: plain seconds ("10", "2.5") or a Go
// duration ("500ms", "1m"). Unset is zero (the supervisor's default).
func durationKey(env *procfile.Env, key string) (time.Duration, error) {
	v, ok := env.Get(key)
	if !ok || strings.TrimSpace(v) == "" {
		return 0, nil
	}
	v = strings.TrimSpace(v)
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
		return time.Duration(f * float64(time.Second)), nil
	}
	dur, err := time.ParseDuration(v)
	if err != nil || dur < 0 {
		return 0, fmt.Errorf("%s=%q: want seconds (10) or a duration (500ms, 1m)", key, v)
	}
	return dur, nil
}

func intKey(env *procfile.Env, key string) (int, error) {
	v, ok := env.Get(key)
	if !ok || strings.TrimSpace(v) == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a whole number", key, v)
	}
	return n, nil
}
