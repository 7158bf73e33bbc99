package supervisor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// change is what a rollout does to one kind.
type change struct {
	ps      ProcessSpec
	old     *kind
	replace bool        // a new generation replaces old
	gen     int         // generation of the started instances
	started []*instance // new instances
	surplus []*instance // instances a scale-down stops
}

// Apply brings app's processes in line with spec and returns when the
// rollout is done. Per kind, compared with what runs:
//
//   - same command, environment, port, health check, revision and
//     directory, same count: nothing happens;
//   - the same but another count: scale in place. New ordinals start, the
//     highest surplus ones are routed away, drained and stopped; the others
//     are not touched;
//   - anything else, or the kind is in spec.Restart ("*" for all): replace.
//     A new generation starts on fresh ports; once every new instance is
//     ready the router sends requests to them, the old addresses are
//     drained and the old generation is stopped.
//
// New instances of every kind must be ready within the boot timeout: a web
// instance when it accepts TCP connections (or answers the health path
// below 500), any other when it is still up after a second or the boot
// timeout, whichever comes first (or has exited cleanly). If one exits or
// times out, the new instances are stopped, the old ones keep running and
// routed, and Apply returns why, with the last lines of the instance's
// log; new instances of kinds that had nothing running stay supervised
// (there is nothing to fall back to), restarting with backoff. Kinds that
// spec no longer has are stopped.
//
// A web kind with a fixed port cannot run two generations at once: its old
// instance on that port is stopped before the new one starts.
//
// Rollouts of one app are serialised; different apps roll out
// concurrently.
func (s *Supervisor) Apply(ctx context.Context, spec AppSpec) error {
	if spec.App == "" {
		return errors.New("apply: the app has no name")
	}
	spec.Policy = spec.Policy.withDefaults()
	spec.Logs = spec.Logs.withDefaults()
	seen := map[string]bool{}
	for _, ps := range spec.Processes {
		if ps.Kind == "" || seen[ps.Kind] || ps.Count < 0 {
			return fmt.Errorf("rolling out %s: process kind %q is empty, repeated or has a negative count", spec.App, ps.Kind)
		}
		seen[ps.Kind] = true
	}
	a, err := s.lockApp(spec.App, true)
	if err != nil {
		return fmt.Errorf("rolling out %s: %w", spec.App, err)
	}
	defer a.lock.Unlock()
	s.mu.Lock()
	a.policy = spec.Policy
	s.mu.Unlock()

	restartAll := slices.Contains(spec.Restart, "*")
	var changes []*change
	for _, ps := range spec.Processes {
		old := a.kinds[ps.Kind]
		c := &change{ps: ps, old: old, replace: true, gen: 1}
		switch {
		case old == nil:
		case restartAll || slices.Contains(spec.Restart, ps.Kind) || differs(old, ps, &spec):
			c.gen = old.gen + 1
		case old.spec.Count == ps.Count:
			continue
		default:
			c.replace, c.gen = false, old.gen
		}
		changes = append(changes, c)
	}

	// Start the new instances.
	var fresh []*instance
	fail := func(err error) error {
		// Kinds that had nothing running keep their new instances under
		// supervision (restarted with backoff): there is no older version
		// to fall back to, and a process that fails at boot, say while its
		// database comes up, should be retried rather than dropped.
		var drop []*instance
		kept := false
		s.mu.Lock()
		a.pending = nil
		for _, c := range changes {
			if c.replace && (c.old == nil || len(c.old.insts) == 0) && len(c.started) > 0 {
				k := &kind{spec: c.ps, revision: spec.Revision, dir: spec.Dir, gen: c.gen, insts: map[int]*instance{}}
				for _, in := range c.started {
					k.insts[in.n] = in
				}
				a.kinds[c.ps.Kind] = k
				kept = true
				continue
			}
			drop = append(drop, c.started...)
		}
		s.mu.Unlock()
		if kept {
			s.route(spec.App, a)
			err = fmt.Errorf("%w (nothing older was running: the new processes stay supervised and are retried with backoff)", err)
		}
		stopAll(context.WithoutCancel(ctx), drop)
		return fmt.Errorf("rolling out %s: %w", spec.App, err)
	}
	for _, c := range changes {
		if c.replace && c.old != nil && c.ps.Web && c.ps.FixedPort != 0 {
			s.freeFixedPort(ctx, spec.App, a, c.old, c.ps.FixedPort, spec.Policy.DrainTimeout)
		}
		first := 1
		if !c.replace {
			first = c.old.spec.Count + 1
			for n, in := range c.old.insts {
				if n > c.ps.Count {
					c.surplus = append(c.surplus, in)
				}
			}
		}
		for n := first; n <= c.ps.Count; n++ {
			fixed := 0
			if n == 1 && c.ps.Web {
				fixed = c.ps.FixedPort
			}
			in, err := s.spawn(&spec, c.ps, n, c.gen, fixed)
			if err != nil {
				return fail(err)
			}
			c.started = append(c.started, in)
			fresh = append(fresh, in)
			s.mu.Lock()
			a.pending = append(a.pending, in)
			s.mu.Unlock()
		}
	}
	if err := waitBoot(ctx, fresh, spec.Policy.BootTimeout); err != nil {
		return fail(err)
	}

	// Commit: route to the new set, drain and stop what it replaced.
	var retired []*instance
	s.mu.Lock()
	a.pending = nil
	for _, c := range changes {
		if c.replace {
			if c.old != nil {
				retired = slices.AppendSeq(retired, maps.Values(c.old.insts))
			}
			k := &kind{spec: c.ps, revision: spec.Revision, dir: spec.Dir, gen: c.gen, insts: map[int]*instance{}}
			for _, in := range c.started {
				k.insts[in.n] = in
			}
			a.kinds[c.ps.Kind] = k
			continue
		}
		for _, in := range c.started {
			c.old.insts[in.n] = in
		}
		for _, in := range c.surplus {
			delete(c.old.insts, in.n)
		}
		c.old.spec = c.ps
		retired = append(retired, c.surplus...)
	}
	for name, k := range a.kinds {
		if !seen[name] {
			retired = slices.AppendSeq(retired, maps.Values(k.insts))
			delete(a.kinds, name)
		}
	}
	s.mu.Unlock()

	s.route(spec.App, a)
	// Highest ordinals first, as a scale-down promises.
	slices.SortFunc(retired, func(x, y *instance) int { return y.n - x.n })
	s.drain(ctx, spec.App, webAddrs(retired), spec.Policy.DrainTimeout)
	stopAll(context.WithoutCancel(ctx), retired)
	return nil
}

// drain waits until no request is in flight to addrs, for at most timeout.
// What is still open then (upgraded connections, event streams, long
// polls) is cut when the instances behind addrs stop; drain logs how much.
func (s *Supervisor) drain(ctx context.Context, appName string, addrs []string, timeout time.Duration) {
	if len(addrs) == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if n := s.router.Drain(dctx, addrs); n > 0 {
		s.log.Warn("drain deadline reached: cutting the requests still open", "app", appName,
			"requests", n, "drain_timeout", timeout)
	}
}

// differs reports whether ps (in spec) needs a new generation of k.
func differs(k *kind, ps ProcessSpec, spec *AppSpec) bool {
	o := k.spec
	return o.Command != ps.Command || !slices.Equal(o.Env, ps.Env) || o.Web != ps.Web ||
		o.FixedPort != ps.FixedPort || o.HealthPath != ps.HealthPath || o.HealthHost != ps.HealthHost ||
		k.revision != spec.Revision || k.dir != spec.Dir
}

// webAddrs returns the addresses of every web instance of a, sorted. The
// caller holds Supervisor.mu (under which instances change address).
func (a *app) webAddrs() []string {
	out := []string{}
	for _, k := range a.kinds {
		for _, in := range k.insts {
			if in.spec.Web {
				out = append(out, in.addr)
			}
		}
	}
	slices.Sort(out)
	return out
}

// freeFixedPort stops the instance of k that listens on port, after routing
// requests away from it and draining it for at most drainTimeout.
func (s *Supervisor) freeFixedPort(ctx context.Context, appName string, a *app, k *kind, port int, drainTimeout time.Duration) {
	s.mu.Lock()
	var holder *instance
	for n, in := range k.insts {
		if in.port == port {
			holder = in
			delete(k.insts, n)
		}
	}
	s.mu.Unlock()
	if holder == nil {
		return
	}
	s.route(appName, a)
	s.drain(ctx, appName, []string{holder.address()}, drainTimeout)
	holder.stop(context.WithoutCancel(ctx))
}

// waitBoot waits until every instance of insts is ready. It returns at the
// first failure: an instance that exited, one not ready within timeout, or
// ctx ending.
func waitBoot(ctx context.Context, insts []*instance, timeout time.Duration) error {
	bctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	tctx, cancel := context.WithTimeout(bctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, in := range insts {
		wg.Go(func() {
			var err error
			select {
			case err = <-in.boot:
			case <-tctx.Done():
				if bctx.Err() != nil {
					return
				}
				if !in.spec.Web {
					// A worker still up at the deadline has started, unless
					// it has just reported otherwise.
					select {
					case err = <-in.boot:
					default:
					}
					break
				}
				err = fmt.Errorf("%s was not ready within %s", in.name(), timeout)
				if tail := lastLines(in.logPath, 10); tail != "" {
					err = fmt.Errorf("%w; last log lines:\n%s", err, tail)
				}
			}
			if err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	return context.Cause(bctx)
}
