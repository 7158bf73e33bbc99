package supervisor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/piku/piku/internal/procgroup"
)

// Apps outlive the daemon: their processes are started without Pdeathsig
// (procgroup.StartOutliving) and write their output into a FIFO under
// Options.OutputDir that they hold open for reading too, so that nothing
// kills or blocks them while no daemon reads (until 1 MiB waits unread).
// A daemon that starts finds them in the state file and adopts the live
// ones: the leader is still the recorded process (same start time, so a
// reused pid is never taken), watched through a pidfd. They keep their
// port, generation, start time and restart count, the router sends their
// app's requests to them at once, and the app's first Apply takes them as
// the running generation: unchanged, only what is missing is started; a
// changed app replaces them as any rollout does. Instances of apps that
// are not started again are stopped (StopUnclaimed).

// adoptee is a live instance left by an earlier daemon, adopted and not
// yet claimed by its app's first Apply.
type adoptee struct {
	rec liveProc
	p   *procgroup.Process
}

// specDigest is a digest of what an instance of ps runs under spec: what
// differs compares, so that an adopted instance is kept exactly when a
// running one would be.
func specDigest(ps ProcessSpec, spec *AppSpec) string {
	h := sha256.New()
	for _, s := range []string{ps.Command, strings.Join(ps.Env, "\x00"), strconv.FormatBool(ps.Web),
		strconv.Itoa(ps.FixedPort), ps.HealthPath, ps.HealthHost, spec.Revision, spec.Dir} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// outputPath is the FIFO of instance n of kind, generation gen, of app;
// "" when the supervisor has no output folder (then a plain pipe is
// used).
func (s *Supervisor) outputPath(app, kind string, n, gen int) string {
	if s.outputDir == "" {
		return ""
	}
	return filepath.Join(s.outputDir, fmt.Sprintf("%s.%s.%d.%d.fifo", app, kind, n, gen))
}

// adoptLeftovers splits what an earlier daemon recorded into the
// instances it adopts and the rest, which reapLeftovers stops. The
// adopted are kept in the state file, their ports reserved, and their
// apps routed to the web instances that listen.
func (s *Supervisor) adoptLeftovers(list []liveProc) (rest []liveProc) {
	byApp := map[string][]adoptee{}
	for _, rec := range list {
		if !rec.Supervised && rec.Output != "" && rec.Log != "" && rec.PGID == rec.PID {
			// A cron run that writes into a FIFO: the cron runner
			// follows it (LeftRuns).
			p, err := procgroup.Adopt(rec.PID, rec.PGID, rec.Start, rec.Token, rec.Started)
			if err != nil {
				rest = append(rest, rec)
				continue
			}
			s.log.Info("adopted a cron run left by an earlier daemon", "app", rec.App, "job", rec.Kind, "pid", rec.PID)
			s.state.procs[rec.PID] = rec
			pid := rec.PID
			s.leftRuns = append(s.leftRuns, LeftRun{
				CronRun: CronRun{App: rec.App, Name: rec.Kind, Log: rec.Log, Output: rec.Output, Process: p},
				Done:    func() { s.state.remove(pid) },
			})
			continue
		}
		if !rec.Supervised || rec.Spec == "" || rec.Output == "" || rec.PGID != rec.PID {
			rest = append(rest, rec)
			continue
		}
		p, err := procgroup.Adopt(rec.PID, rec.PGID, rec.Start, rec.Token, rec.Started)
		if err != nil {
			rest = append(rest, rec)
			continue
		}
		if rec.Port != 0 {
			if err := s.ports.reserve(rec.Port); err != nil {
				s.log.Warn("not adopting an instance left by an earlier daemon", "app", rec.App, "process",
					rec.Kind+"."+strconv.Itoa(rec.N), "pid", rec.PID, "err", err)
				rest = append(rest, rec)
				continue
			}
		}
		s.log.Info("adopted an instance left by an earlier daemon", "app", rec.App, "process",
			rec.Kind+"."+strconv.Itoa(rec.N), "generation", rec.Gen, "pid", rec.PID, "port", rec.Port)
		byApp[rec.App] = append(byApp[rec.App], adoptee{rec: rec, p: p})
		s.state.procs[rec.PID] = rec
	}
	for app, ads := range byApp {
		var addrs []string
		for _, ad := range ads {
			if ad.rec.Port == 0 {
				continue
			}
			if _, ok := ad.p.OwnsListener(ad.rec.Port); ok {
				addrs = append(addrs, ad.rec.Addr)
			}
		}
		if len(addrs) > 0 {
			slices.Sort(addrs)
			s.router.Route(app, addrs)
		}
	}
	s.adopted = byApp
	return rest
}

// claimAdopted makes the instances adopted for spec's app its running
// kinds, before the app's first rollout compares them with spec. The
// latest generation of each kind is kept; an older one (a rollout the
// earlier daemon did not finish) is returned to be stopped. A kind whose
// instances run what spec asks for is taken as it is, with a count that
// makes the rollout start the missing ordinals and stop the surplus; any
// other is marked stale, so the rollout replaces it. The caller holds the
// app's lock.
func (s *Supervisor) claimAdopted(spec *AppSpec, a *app) (older []*instance) {
	s.mu.Lock()
	ads := s.adopted[spec.App]
	delete(s.adopted, spec.App)
	s.mu.Unlock()
	if len(ads) == 0 {
		return nil
	}
	latest := map[string]int{}
	for _, ad := range ads {
		latest[ad.rec.Kind] = max(latest[ad.rec.Kind], ad.rec.Gen)
	}
	for _, ad := range ads {
		ps, found := ProcessSpec{Kind: ad.rec.Kind, Web: ad.rec.Port != 0}, false
		if i := slices.IndexFunc(spec.Processes, func(p ProcessSpec) bool { return p.Kind == ad.rec.Kind }); i >= 0 {
			ps, found = spec.Processes[i], true
		}
		in := s.adoptInstance(spec, ps, ad)
		if ad.rec.Gen != latest[ad.rec.Kind] {
			older = append(older, in)
			continue
		}
		s.mu.Lock()
		k := a.kinds[ps.Kind]
		if k == nil {
			k = &kind{spec: ps, revision: ad.rec.Revision, dir: ad.rec.Dir, gen: ad.rec.Gen, insts: map[int]*instance{}}
			// Count -1 is never asked for: the rollout scales the kind
			// to spec's count, starting what is missing.
			k.spec.Count = -1
			k.stale = !found || specDigest(ps, spec) != ad.rec.Spec
			a.kinds[ps.Kind] = k
		}
		k.insts[ad.rec.N] = in
		s.mu.Unlock()
	}
	return older
}

// adoptInstance makes an instance of an adopted process: its owner
// watches the process it has instead of starting one, and copies its
// output from the FIFO, which holds what was written while no daemon read
// it.
func (s *Supervisor) adoptInstance(spec *AppSpec, ps ProcessSpec, ad adoptee) *instance {
	rec := ad.rec
	in := &instance{
		s: s, app: spec.App, spec: ps, n: rec.N, gen: rec.Gen, revision: rec.Revision, dir: rec.Dir,
		policy: spec.Policy, logPath: logPath(spec.Logs.Dir, ps.Kind, rec.N), digest: rec.Spec,
		port: rec.Port, addr: rec.Addr, fixed: rec.Fixed,
		boot: make(chan error, 1), quit: make(chan struct{}), kill: make(chan struct{}), done: make(chan struct{}),
	}
	if in.addr == "" && in.port != 0 {
		in.addr = s.ports.addr(in.port)
	}
	in.log = s.log.With("app", spec.App, "process", in.name(), "generation", rec.Gen)
	in.output = s.outputLimit(spec.App, spec.Logs.withDefaults().Rate)
	in.status = InstanceStatus{Kind: ps.Kind, N: rec.N, State: StateRunning, PID: rec.PID, Port: in.port, Addr: in.addr,
		Revision: rec.Revision, Generation: rec.Gen, StartedAt: rec.Started, Restarts: rec.Restarts}
	_ = os.MkdirAll(spec.Logs.Dir, 0o755)
	p := &proc{Process: ad.p, copied: make(chan struct{}), fifo: rec.Output}
	in.adopted = p
	s.mu.Lock()
	s.logs.open(in.logPath, spec.Logs)
	s.live[in] = struct{}{}
	s.mu.Unlock()
	r, err := procgroup.OpenOutput(rec.Output)
	if err != nil {
		in.log.Warn("cannot read the output of an adopted process: it is lost", "err", err)
		close(p.copied)
	} else {
		p.out = r
		in.copy(p)
	}
	s.wg.Go(func() {
		in.run()
		s.mu.Lock()
		delete(s.live, in)
		s.mu.Unlock()
	})
	return in
}

// StopUnclaimed stops the adopted instances that no rollout claimed: their
// app is stopped, gone, or could not be started. The daemon calls it once
// its start-up rollouts are done; Run does too.
func (s *Supervisor) StopUnclaimed(ctx context.Context) {
	s.mu.Lock()
	left := s.adopted
	s.adopted = nil
	s.mu.Unlock()
	var wg sync.WaitGroup
	for app, ads := range left {
		s.mu.Lock()
		_, running := s.apps[app]
		s.mu.Unlock()
		if !running {
			s.router.Route(app, []string{})
		}
		wg.Go(func() { s.stopAdoptees(ctx, app, ads) })
	}
	wg.Wait()
}

// stopAdoptees stops adopted processes of app that no instance owns:
// SIGTERM to each group, SIGKILL after the default stop timeout or once
// ctx ends.
func (s *Supervisor) stopAdoptees(ctx context.Context, app string, ads []adoptee) {
	var wg sync.WaitGroup
	for _, ad := range ads {
		wg.Go(func() {
			s.log.Info("stopping an instance left by an earlier daemon: its app is not started", "app", app,
				"process", ad.rec.Kind+"."+strconv.Itoa(ad.rec.N), "pid", ad.rec.PID)
			force := make(chan struct{})
			stop := context.AfterFunc(ctx, func() { close(force) })
			ad.p.Stop(Policy{}.withDefaults().StopTimeout, force)
			stop()
			s.state.remove(ad.rec.PID)
			s.ports.release(ad.rec.Port)
			_ = os.Remove(ad.rec.Output)
		})
	}
	wg.Wait()
}
