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

// KeptError is Apply's error when new instances of kinds that had nothing
// running did not come up: they stay supervised and are retried with
// backoff, since there is nothing older to fall back to. A caller that
// gives up on the app instead (Stop) reports Err alone.
type KeptError struct {
	// Err is why the rollout failed.
	Err error
}

// Error is Err's message and that the new processes are retried.
func (e *KeptError) Error() string {
	return e.Err.Error() + " (nothing older was running: the new processes stay supervised and are retried with backoff)"
}

// Unwrap returns Err.
func (e *KeptError) Unwrap() error { return e.Err }

// change is what a rollout does to one kind.
type change struct {
	ps      ProcessSpec
	old     *kind
	replace bool        // a new generation replaces old
	gen     int         // generation of the started instances
	started []*instance // new instances
	surplus []*instance // instances a scale-down stops
	outcome Outcome
	// strategy is how a replace ran: StrategyRolling or StrategyRecreate.
	strategy string
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
//     A new generation starts on fresh ports; once it is ready the router
//     sends requests to it, the old addresses are drained and the old
//     generation is stopped.
//
// New instances must be ready within the boot timeout: a web instance when
// it accepts TCP connections (or answers the health path below 500), any
// other when it is still up after a second or the boot timeout, whichever
// comes first (or has exited cleanly). Then each kind is decided on its
// own (see Outcome):
//
//   - its new instances are ready: they are committed;
//   - they are not, and the kind had nothing healthy running (no instance,
//     or one in backoff, crash-looping or exited): they are committed
//     anyway and stay supervised, restarting with backoff, since there is
//     nothing better to keep;
//   - they are not, and a healthy old generation runs: the new instances
//     are stopped and the old ones keep running and routed.
//
// spec.Report, when set, gets each changed kind's outcome. Apply returns an
// error naming every kind whose change did not come up, except kinds whose
// old generation was already failing (their new one is committed and
// reported, not an error: a config change that fixes or reaches the
// healthy kinds must not be refused because of them). Kinds that spec no
// longer has are stopped.
//
// A web kind with a fixed port cannot run two generations at once: its old
// instance on that port is stopped before the new one starts. A kind with
// Recreate is replaced the same way, all its old instances stopped first
// (routed away and drained, so a proxy that holds the app's requests
// serves them from the new generation).
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
	// An earlier daemon's instances of the app are its running kinds; an
	// older generation they left is stopped.
	if older := s.claimAdopted(&spec, a); len(older) > 0 {
		s.drain(ctx, spec.App, webAddrs(older), spec.Policy.DrainTimeout)
		stopAll(context.WithoutCancel(ctx), older)
	}

	restartAll := slices.Contains(spec.Restart, "*")
	var changes []*change
	for _, ps := range spec.Processes {
		old := a.kinds[ps.Kind]
		c := &change{ps: ps, old: old, replace: true, gen: 1}
		restart := restartAll || slices.Contains(spec.Restart, ps.Kind)
		if old != nil && spec.KeepRunning && !restart && !old.stale {
			// Stay on the running generation; only the count may change.
			c.ps = old.spec
			c.ps.Count = ps.Count
			ps = c.ps
		}
		switch {
		case old == nil:
		case restart || (!spec.KeepRunning && differs(old, ps, &spec)):
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
	for _, c := range changes {
		if c.replace && c.old != nil {
			c.strategy = StrategyRolling
			switch {
			case c.ps.Recreate:
				c.strategy = StrategyRecreate
				s.stopKind(ctx, spec.App, a, c.old, 0, spec.Policy.DrainTimeout)
			case c.ps.Web && c.ps.FixedPort != 0:
				c.strategy = StrategyRecreate
				s.stopKind(ctx, spec.App, a, c.old, c.ps.FixedPort, spec.Policy.DrainTimeout)
			}
		}
		if !c.replace {
			for n, in := range c.old.insts {
				if n > c.ps.Count {
					c.surplus = append(c.surplus, in)
				}
			}
		}
		for n := 1; n <= c.ps.Count; n++ {
			if !c.replace && c.old.insts[n] != nil {
				continue // runs already: scaling starts only the missing ordinals
			}
			fixed := 0
			if n == 1 && c.ps.Web {
				fixed = c.ps.FixedPort
			}
			from := &spec
			if !c.replace {
				// New ordinals of a running generation run like it.
				like := spec
				like.Revision, like.Dir = c.old.revision, c.old.dir
				from = &like
			}
			in, err := s.spawn(from, c.ps, n, c.gen, fixed)
			if err != nil {
				s.mu.Lock()
				a.pending = nil
				s.mu.Unlock()
				stopAll(context.WithoutCancel(ctx), fresh)
				return fmt.Errorf("rolling out %s: %w", spec.App, err)
			}
			c.started = append(c.started, in)
			fresh = append(fresh, in)
			s.mu.Lock()
			a.pending = append(a.pending, in)
			s.mu.Unlock()
		}
	}
	booted := waitBoot(ctx, fresh, spec.Policy.BootTimeout, spec.Progress)

	// Decide each kind, then commit: route to the new set, drain and stop
	// what it replaced.
	var retired, dropped []*instance
	var refused, retrying []error
	s.mu.Lock()
	a.pending = nil
	for _, c := range changes {
		var errs []error
		for _, in := range c.started {
			if err := booted[in]; err != nil {
				errs = append(errs, err)
			}
		}
		out := Outcome{Kind: c.ps.Kind, Result: ResultReady, Err: errors.Join(errs...), Strategy: c.strategy}
		if out.Err != nil {
			switch {
			case c.old == nil || len(c.old.insts) == 0:
				out.Result = ResultFirstFailing
			case !healthy(c.old):
				out.Result = ResultReplacedFailing
			default:
				out.Result = ResultKept
			}
		}
		c.outcome = out
		switch out.Result {
		case ResultKept:
			dropped = append(dropped, c.started...)
			refused = append(refused, out.Err)
			continue
		case ResultFirstFailing:
			retrying = append(retrying, out.Err)
		}
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

	stopAll(context.WithoutCancel(ctx), dropped)
	s.route(spec.App, a)
	// Highest ordinals first, as a scale-down promises.
	slices.SortFunc(retired, func(x, y *instance) int { return y.n - x.n })
	s.drain(ctx, spec.App, webAddrs(retired), spec.Policy.DrainTimeout)
	stopAll(context.WithoutCancel(ctx), retired)
	if spec.Report != nil {
		for _, c := range changes {
			spec.Report(c.outcome)
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("rolling out %s: %w", spec.App, errors.Join(append(refused, retrying...)...))
	}
	if len(retrying) > 0 {
		return &KeptError{Err: fmt.Errorf("rolling out %s: %w", spec.App, errors.Join(retrying...))}
	}
	return nil
}

// healthy reports whether every instance of k is running (none is in
// backoff, crash-looping or exited). The caller holds Supervisor.mu.
func healthy(k *kind) bool {
	for _, in := range k.insts {
		in.mu.Lock()
		state := in.status.State
		in.mu.Unlock()
		if state != StateRunning {
			return false
		}
	}
	return true
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
	return k.stale || o.Command != ps.Command || !slices.Equal(o.Env, ps.Env) || o.Web != ps.Web ||
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

// stopKind stops the instances of k that listen on port (every instance
// when port is 0), after routing requests away from them and draining
// them for at most drainTimeout.
func (s *Supervisor) stopKind(ctx context.Context, appName string, a *app, k *kind, port int, drainTimeout time.Duration) {
	s.mu.Lock()
	var old []*instance
	for n, in := range k.insts {
		if port == 0 || in.port == port {
			old = append(old, in)
			delete(k.insts, n)
		}
	}
	s.mu.Unlock()
	if len(old) == 0 {
		return
	}
	s.route(appName, a)
	s.drain(ctx, appName, webAddrs(old), drainTimeout)
	stopAll(context.WithoutCancel(ctx), old)
}

// progressEvery is how often waitBoot says what it still waits for.
const progressEvery = 5 * time.Second

// waitBoot waits until every instance of insts is ready, has failed (it
// exited, or a web instance was not ready within timeout: it is marked
// failed), or ctx ends, and returns the failures by instance. A worker's
// owner decides by itself whether it started (up for the boot timeout or a
// second, counted from its own start), so waitBoot does not time workers
// out: counting from here would call a worker started before its process
// even exists on a busy machine. progress, if not nil, is told how the boot
// goes.
func waitBoot(ctx context.Context, insts []*instance, timeout time.Duration, progress func(string, bool)) map[*instance]error {
	var pmu sync.Mutex
	report := func(transient bool, format string, args ...any) {
		if progress != nil {
			pmu.Lock()
			defer pmu.Unlock()
			progress(fmt.Sprintf(format, args...), transient)
		}
	}
	say := func(format string, args ...any) { report(false, format, args...) }
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var (
		mu         sync.Mutex
		errs       = map[*instance]error{}
		wg, ticker sync.WaitGroup
		awaited    sync.Map // *instance -> true while a web instance is not ready
	)
	for _, in := range insts {
		if in.spec.Web {
			awaited.Store(in, true)
			say("waiting for %s to answer on %s (PORT=%d)", in.name(), in.address(), in.port)
		}
	}
	ticker.Go(func() {
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case <-tctx.Done():
				return
			case <-tick.C:
			}
			for _, in := range insts {
				if _, ok := awaited.Load(in); ok {
					report(true, "still waiting for %s (%s of %s): %s", in.name(),
						time.Since(start).Round(time.Second), timeout, in.lastProbe())
				}
			}
		}
	})
	for _, in := range insts {
		wg.Go(func() {
			deadline := tctx.Done()
			if !in.spec.Web {
				deadline = nil
			}
			var err error
			select {
			case err = <-in.boot:
				if err == nil && in.spec.Web {
					awaited.Delete(in)
					say("%s is ready on %s", in.name(), in.address())
				}
			case <-ctx.Done():
				err = fmt.Errorf("%s: %w", in.name(), ctx.Err())
			case <-deadline:
				if ctx.Err() != nil {
					err = fmt.Errorf("%s: %w", in.name(), ctx.Err())
					break
				}
				in.update(func(st *InstanceStatus) {
					if st.State == StateStarting {
						st.State = StateFailed
					}
				})
				err = fmt.Errorf("%s was not ready within %s: %s", in.name(), timeout, in.lastProbe())
				if tail := lastLines(in.logPath, 10); tail != "" {
					err = fmt.Errorf("%w; last log lines:\n%s", err, tail)
				}
			}
			if err != nil {
				mu.Lock()
				errs[in] = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	cancel() // ends the ticker
	ticker.Wait()
	return errs
}
