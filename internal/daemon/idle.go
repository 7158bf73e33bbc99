package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/supervisor"
	"github.com/piku/piku/proxy"
)

// keyIdleTimeout is the key of an app whose web instances sleep when idle.
const keyIdleTimeout = "PIKU_IDLE_TIMEOUT"

// StateSleeping is the state `piku ps` shows for the web instances of an
// app asleep after PIKU_IDLE_TIMEOUT without a request.
const StateSleeping = "sleeping"

// idleTimeout reads PIKU_IDLE_TIMEOUT of app's files: 0 = never.
func idleTimeout(a *appconfig.App) (time.Duration, error) {
	v, ok := a.Env.Get(keyIdleTimeout)
	if !ok || v == "" {
		return 0, nil
	}
	d, err := proxy.ParseSeconds(v)
	if err != nil {
		return 0, fmt.Errorf("app %q: %s: %w", a.Name, keyIdleTimeout, err)
	}
	return d, nil
}

// activity is the proxy as the sleeper reads it.
type activity interface {
	LastRequest(app string) (time.Time, bool)
}

// sleeper puts the web instances of apps with PIKU_IDLE_TIMEOUT to sleep
// when no request came for that long, and wakes them when the proxy holds
// a request for them. One goroutine (Run) owns the timer; each sleep and
// wake runs in a goroutine of its own that Run waits for, under the app's
// lock like every rollout.
type sleeper struct {
	d      *Daemon
	notify chan struct{} // a change: timeouts, wakes asked

	mu      sync.Mutex
	apps    map[string]*idleApp
	pending map[string]bool // apps to wake
}

// idleApp is one app's sleep state.
type idleApp struct {
	timeout time.Duration
	asleep  bool
	busy    bool           // a sleep or a wake runs
	kinds   map[string]int // the web kinds put to sleep, with their counts
}

func newSleeper(d *Daemon) *sleeper {
	return &sleeper{d: d, notify: make(chan struct{}, 1), apps: map[string]*idleApp{}, pending: map[string]bool{}}
}

func (s *sleeper) poke() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// set records app's idle timeout after a rollout that started its web
// instances: the app is awake. It reports whether it was asleep.
func (s *sleeper) set(app string, timeout time.Duration) (wasAsleep bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.poke()
	if a := s.apps[app]; a != nil {
		wasAsleep = a.asleep
	}
	if timeout <= 0 {
		delete(s.apps, app)
	} else {
		a := s.apps[app]
		if a == nil {
			a = &idleApp{}
			s.apps[app] = a
		}
		a.timeout, a.asleep, a.kinds = timeout, false, nil
	}
	return wasAsleep
}

// forget stops watching app (stopped, forgotten).
func (s *sleeper) forget(app string) {
	s.mu.Lock()
	delete(s.apps, app)
	delete(s.pending, app)
	s.mu.Unlock()
}

// wake asks for app to be woken; the proxy calls it for every request
// that starts waiting, so it only notes the wish.
func (s *sleeper) wake(app string) {
	s.mu.Lock()
	if a := s.apps[app]; a != nil && (a.asleep || a.busy) {
		s.pending[app] = true
		s.poke()
	}
	s.mu.Unlock()
}

// sleeping returns the web kinds of app put to sleep; nil when awake.
func (s *sleeper) sleeping(app string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.apps[app]; a != nil && a.asleep {
		return a.kinds
	}
	return nil
}

// Run puts idle apps to sleep and wakes them until ctx ends.
func (s *sleeper) Run(ctx context.Context, act activity) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		next := time.Duration(-1)
		s.mu.Lock()
		for app, a := range s.apps {
			if a.busy {
				continue
			}
			if s.pending[app] {
				delete(s.pending, app)
				if a.asleep {
					a.busy = true
					wg.Go(func() { s.done(app, s.d.wakeApp(ctx, app)) })
				}
				continue
			}
			if a.asleep {
				continue
			}
			last, ok := act.LastRequest(app)
			if !ok {
				continue
			}
			due := last.Add(a.timeout).Sub(now)
			if due <= 0 {
				a.busy = true
				wg.Go(func() { s.sleepDone(app, s.d.sleepApp(ctx, app, a.timeout)) })
				continue
			}
			if next < 0 || due < next {
				next = due
			}
		}
		s.mu.Unlock()
		if next < 0 {
			next = time.Hour
		}
		timer.Reset(next)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-s.notify:
		}
	}
}

// sleepDone records the end of a sleep: kinds are the web kinds put to
// sleep (nil: the app was not idle after all, or had none).
func (s *sleeper) sleepDone(app string, kinds map[string]int) {
	s.mu.Lock()
	if a := s.apps[app]; a != nil {
		a.busy = false
		if len(kinds) > 0 {
			a.asleep, a.kinds = true, kinds
		}
	}
	s.mu.Unlock()
	s.poke()
}

// done records the end of a wake; a wake that failed leaves the app
// awake (its processes are retried with backoff, ps says why).
func (s *sleeper) done(app string, err error) {
	s.mu.Lock()
	if a := s.apps[app]; a != nil {
		a.busy = false
		if err != nil {
			a.asleep, a.kinds = false, nil
		}
	}
	s.mu.Unlock()
	s.poke()
}

// sleepApp stops app's web instances if no request came for timeout: the
// proxy holds the app's requests from then on and asks for a wake. It
// returns the web kinds it stopped.
func (d *Daemon) sleepApp(ctx context.Context, app string, timeout time.Duration) map[string]int {
	unlock := d.lock(app)
	defer unlock()
	if last, ok := d.activity.LastRequest(app); !ok || time.Since(last) < timeout {
		return nil // a request came meanwhile
	}
	a, err := appconfig.Load(d.root, app)
	if err != nil || a.Stopped {
		return nil
	}
	p, err := d.makePlan(a, nil)
	if err != nil {
		d.log.Warn("not putting the app to sleep", "app", app, "err", err)
		return nil
	}
	kinds := map[string]int{}
	spec := p.spec
	spec.KeepRunning = true // only the web counts change
	for i, ps := range spec.Processes {
		if ps.Web && ps.Count > 0 {
			kinds[ps.Kind] = ps.Count
			spec.Processes[i].Count = 0
		}
	}
	if len(kinds) == 0 {
		return nil
	}
	d.table.Hold(app)
	if err := d.procs.Apply(ctx, spec); err != nil {
		d.table.Release(app)
		d.log.Warn("putting the app to sleep failed", "app", app, "err", err)
		return nil
	}
	d.log.Info("app asleep: no request for "+timeout.String()+"; the next one wakes it", "app", app)
	d.metrics.Sleep(app)
	return kinds
}

// wakeApp starts app's web instances again (a rollout that keeps the
// other kinds as they run); the requests the proxy holds are served as
// soon as they are ready, and get a 503 if they fail.
func (d *Daemon) wakeApp(ctx context.Context, app string) error {
	start := time.Now()
	w := &logWriter{log: d.log, app: app}
	err := d.runLocked(ctx, &rollout{app: app, req: control.DeployRequest{KeepRunning: true}, rep: reporter{w: w, log: d.log, app: app}, wake: true})
	d.table.Release(app)
	d.metrics.Wake(app, time.Since(start), err)
	if err != nil {
		var kept *supervisor.KeptError
		if !errors.As(err, &kept) {
			d.log.Error("waking the app failed", "app", app, "err", err)
		}
		d.log.Warn("the app did not wake: its held requests got a 503", "app", app, "err", err)
		return err
	}
	d.log.Info("app awake", "app", app, "cold_start", time.Since(start).Round(time.Millisecond))
	return nil
}
