package supervisor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"time"
)

// Options configure a Supervisor.
type Options struct {
	Logger    *slog.Logger // default: slog.Default()
	Router    Router       // told about every change of an app's web addresses; required
	Ports     PortRange    // where web instances listen
	StateFile string       // the live processes are recorded here; "" records nothing
	// OutputDir holds each process's output FIFO, which outlives the
	// daemon (adopt.go); "" uses plain pipes, and the processes' output
	// then ends with the daemon.
	OutputDir string
	// OOM, when set, tells exits by the kernel's OOM killer from other
	// SIGKILLs (see OOMCounter).
	OOM OOMCounter
}

// Supervisor runs the processes of every app.
type Supervisor struct {
	log        *slog.Logger
	router     Router
	ports      *ports
	state      *stateFile
	logs       *logFiles
	healthyRun time.Duration
	oom        OOMCounter
	outputs    sync.Map // app name -> *outputLimit
	outputDir  string

	wg sync.WaitGroup // every instance owner

	mu     sync.Mutex
	apps   map[string]*app
	live   map[*instance]struct{} // every instance whose owner runs, routed or not
	closed bool
	// adopted are the live instances of an earlier daemon, by app, until
	// the app's first Apply claims them (adopt.go).
	adopted map[string][]adoptee
	// leftRuns are the cron runs of an earlier daemon, adopted, until
	// LeftRuns hands them to the cron runner.
	leftRuns []LeftRun

	// startMu is held for reading while a process starts and is recorded
	// in the state file; Freeze takes it, Thaw gives it back.
	startMu sync.RWMutex
}

// app is the running formation of one app. Its lock serialises Apply and
// Stop for the app; kinds is guarded by Supervisor.mu.
type app struct {
	lock  sync.Mutex
	gone  bool // stopped and forgotten; Apply must look it up again
	kinds map[string]*kind
	// policy is the one of the last rollout; Stop drains within its
	// DrainTimeout.
	policy Policy
	// pending are the instances a rollout in progress started and has not
	// made live yet; Status shows them beside the live ones.
	pending []*instance
	// routeMu orders the Router.Route calls for the app, so that the last
	// call always carries the latest addresses.
	routeMu sync.Mutex
}

// route tells the router the app's current web addresses (none once the
// app is stopped).
func (s *Supervisor) route(appName string, a *app) {
	a.routeMu.Lock()
	defer a.routeMu.Unlock()
	s.mu.Lock()
	addrs := []string{}
	if !a.gone {
		addrs = a.webAddrs()
	}
	s.mu.Unlock()
	s.router.Route(appName, addrs)
}

// kind is the current generation of one process kind.
type kind struct {
	spec     ProcessSpec
	revision string
	dir      string
	gen      int
	insts    map[int]*instance // by ordinal
	// stale marks adopted instances that run something other than what
	// their app now asks for: the next rollout replaces them.
	stale bool
}

// New returns a Supervisor. It first adopts the live instances that a
// previous daemon recorded in the state file (adopt.go) and stops the
// other processes it left running.
func New(o Options) (*Supervisor, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Router == nil {
		return nil, errors.New("supervisor: a Router is required")
	}
	p, err := newPorts(o.Ports)
	if err != nil {
		return nil, err
	}
	s := &Supervisor{
		log:        o.Logger,
		router:     o.Router,
		ports:      p,
		state:      &stateFile{path: o.StateFile, log: o.Logger, procs: map[int]liveProc{}},
		logs:       &logFiles{files: map[string]*logFile{}},
		healthyRun: healthyRun,
		oom:        o.OOM,
		outputDir:  o.OutputDir,
		apps:       map[string]*app{},
		live:       map[*instance]struct{}{},
	}
	if o.StateFile != "" {
		left, err := readState(o.StateFile)
		if err != nil {
			s.log.Error("reading the process state file", "err", err)
		}
		reapLeftovers(s.log, s.adoptLeftovers(left), 5*time.Second)
		s.state.mu.Lock()
		s.state.writeLocked()
		s.state.mu.Unlock()
	}
	return s, nil
}

// Run waits for ctx to end, then stops every process gracefully and
// returns when they are gone. Apps stop in parallel; each first drains the
// requests in flight to its web instances (Router.Drain, within the app's
// DrainTimeout), so that a daemon that has stopped accepting answers them
// before their instances get SIGTERM.
func (s *Supervisor) Run(ctx context.Context) error {
	<-ctx.Done()
	s.StopUnclaimed(context.Background())
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.drainEach(context.Background(), func(insts []*instance) { stopAll(context.Background(), insts) })
	s.wg.Wait()
	return nil
}

// Freeze stops the supervisor from starting any process, for good, and
// returns once every start under way is recorded in the state file: the
// daemon is about to replace itself (exec) and the next image adopts what
// the file lists. Processes that end meanwhile leave the file as usual.
func (s *Supervisor) Freeze() {
	s.startMu.Lock()
}

// Thaw undoes Freeze, when the daemon stops instead of replacing itself:
// an instance whose restart waited on the freeze starts, so that its
// owner sees the stop, and the stop then ends every process as usual.
// (Frozen, such an owner would wait for ever, and the stop with it.)
func (s *Supervisor) Thaw() {
	s.startMu.Unlock()
}

// DrainAll waits, app by app in parallel, until no request is in flight to
// the app's web instances, for at most its drain timeout; long-lived
// streams are ended when it begins. The processes are left running: the
// daemon hands them over.
func (s *Supervisor) DrainAll(ctx context.Context) { s.drainEach(ctx, nil) }

// drainEach drains every app's web instances, apps in parallel, each for
// at most its longest drain timeout, then calls then (if set) with the
// app's instances; it returns when every app is done.
func (s *Supervisor) drainEach(ctx context.Context, then func([]*instance)) {
	s.mu.Lock()
	byApp := map[string][]*instance{}
	for in := range s.live {
		byApp[in.app] = append(byApp[in.app], in)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for app, insts := range byApp {
		wg.Go(func() {
			var timeout time.Duration
			for _, in := range insts {
				timeout = max(timeout, in.policy.withDefaults().DrainTimeout)
			}
			s.drain(ctx, app, webAddrs(insts), timeout)
			if then != nil {
				then(insts)
			}
		})
	}
	wg.Wait()
}

// Status returns the instances of app, sorted by kind, ordinal and
// generation: the live ones and, while a rollout is in progress, the new
// ones it is starting.
func (s *Supervisor) Status(appName string) []InstanceStatus {
	s.mu.Lock()
	var insts []*instance
	if a := s.apps[appName]; a != nil {
		for _, k := range a.kinds {
			insts = slices.AppendSeq(insts, maps.Values(k.insts))
		}
		insts = append(insts, a.pending...)
	}
	s.mu.Unlock()
	out := make([]InstanceStatus, 0, len(insts))
	for _, in := range insts {
		out = append(out, in.snapshot())
	}
	slices.SortFunc(out, func(a, b InstanceStatus) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.N, b.N), cmp.Compare(a.Generation, b.Generation))
	})
	return out
}

// lockApp returns name's app, locked; create makes it if missing.
func (s *Supervisor) lockApp(name string, create bool) (*app, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, errors.New("the supervisor is shutting down")
		}
		a := s.apps[name]
		if a == nil {
			if !create {
				s.mu.Unlock()
				return nil, nil
			}
			a = &app{kinds: map[string]*kind{}}
			s.apps[name] = a
		}
		s.mu.Unlock()
		a.lock.Lock()
		if !a.gone {
			return a, nil
		}
		a.lock.Unlock()
	}
}

// Stop stops every process of app gracefully and forgets the app. Its web
// addresses are routed away and drained first, for at most the app's drain
// timeout.
func (s *Supervisor) Stop(ctx context.Context, appName string) error {
	s.mu.Lock()
	ads := s.adopted[appName]
	delete(s.adopted, appName)
	s.mu.Unlock()
	s.stopAdoptees(ctx, appName, ads)
	a, err := s.lockApp(appName, false)
	if err != nil || a == nil {
		return err
	}
	defer a.lock.Unlock()
	s.mu.Lock()
	var all []*instance
	for _, k := range a.kinds {
		all = slices.AppendSeq(all, maps.Values(k.insts))
	}
	a.kinds = map[string]*kind{}
	a.gone = true
	delete(s.apps, appName)
	drainTimeout := a.policy.withDefaults().DrainTimeout
	s.mu.Unlock()
	s.route(appName, a)
	s.drain(ctx, appName, webAddrs(all), drainTimeout)
	stopAll(ctx, all)
	return nil
}

// stopAll stops insts in parallel.
func stopAll(ctx context.Context, insts []*instance) {
	var wg sync.WaitGroup
	for _, in := range insts {
		wg.Go(func() { in.stop(ctx) })
	}
	wg.Wait()
}

func webAddrs(insts []*instance) []string {
	var out []string
	for _, in := range insts {
		if in.spec.Web {
			out = append(out, in.address())
		}
	}
	slices.Sort(out)
	return out
}

// spawn creates instance n of ps and starts its owner goroutine.
func (s *Supervisor) spawn(spec *AppSpec, ps ProcessSpec, n, gen, fixed int) (*instance, error) {
	in := &instance{
		s: s, app: spec.App, spec: ps, n: n, gen: gen, revision: spec.Revision, dir: spec.Dir,
		policy: spec.Policy, logPath: logPath(spec.Logs.Dir, ps.Kind, n),
		boot: make(chan error, 1), quit: make(chan struct{}), kill: make(chan struct{}), done: make(chan struct{}),
		digest: specDigest(ps, spec),
	}
	in.log = s.log.With("app", spec.App, "process", in.name(), "generation", gen)
	in.output = s.outputLimit(spec.App, spec.Logs.withDefaults().Rate)
	if ps.Web {
		port, err := s.ports.take(fixed)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", in.name(), err)
		}
		in.port, in.addr = port, s.ports.addr(port)
		in.fixed = fixed != 0
	}
	if err := os.MkdirAll(spec.Logs.Dir, 0o755); err != nil {
		s.ports.release(in.port)
		return nil, fmt.Errorf("%s: %w", in.name(), err)
	}
	in.status = InstanceStatus{Kind: ps.Kind, N: n, State: StateStarting, Port: in.port, Addr: in.addr,
		Revision: spec.Revision, Generation: gen}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.ports.release(in.port)
		return nil, errors.New("the supervisor is shutting down")
	}
	s.logs.open(in.logPath, spec.Logs)
	s.live[in] = struct{}{}
	s.wg.Go(func() {
		in.run()
		s.mu.Lock()
		delete(s.live, in)
		s.mu.Unlock()
	})
	s.mu.Unlock()
	return in, nil
}
