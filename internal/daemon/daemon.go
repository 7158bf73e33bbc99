// Package daemon wires piku's daemon together: it reads apps' files into
// supervisor specs, turns the supervisor's routing calls into proxy routes,
// runs cron entries, and serves the control API the CLI talks to.
//
// The daemon keeps no state of its own that matters: everything it runs
// comes from files under PIKU_ROOT, so it can be killed at any moment and
// rebuilds the same picture when it starts again.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/piku/piku/internal/certs"
	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/cron"
	"github.com/piku/piku/internal/earlysignal"
	"github.com/piku/piku/internal/isolation"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/metrics"
	"github.com/piku/piku/internal/migrate"
	"github.com/piku/piku/internal/procgroup"
	"github.com/piku/piku/internal/supervisor"
	"github.com/piku/piku/proxy"
)

// Config is the daemon's configuration.
type Config struct {
	// Root is PIKU_ROOT.
	Root layout.Root
	// HTTPAddr is where the proxy serves HTTP; "" turns HTTP off.
	// Default ":80".
	HTTPAddr string
	// HTTPSAddr is where the proxy serves HTTPS; "" turns HTTPS off.
	// Default ":443".
	HTTPSAddr string
	// Bind is the address app instances listen on. Default "127.0.0.1".
	Bind string
	// PortMin and PortMax bound the ports handed to web instances.
	// Default 20000-29999.
	PortMin, PortMax int
	// ACME turns on certificates from an ACME CA for apps' hosts.
	ACME bool
	// ACMEEmail is the contact address of the ACME account.
	ACMEEmail string
	// ACMEDirectory is the ACME directory URL (ACME_ROOT_CA); default
	// Let's Encrypt.
	ACMEDirectory string
	// ShutdownTimeout bounds the graceful stop of everything when the
	// daemon stops. Default 30s.
	ShutdownTimeout time.Duration
	// Version is reported on the control API.
	Version string
	// Logger is the daemon's own log.
	Logger *slog.Logger
	// MetricsAddr is a TCP address to serve GET /metrics on, besides the
	// control socket; "" (the default) serves it on the socket only. A
	// bare port ("9180", ":9180") listens on loopback.
	MetricsAddr string
	// NetHTTP1 serves plain HTTP with net/http's server instead of the
	// proxy's own (proxy.Options.NetHTTP1): an escape hatch.
	NetHTTP1 bool
	// NoCgroups keeps apps out of cgroups even where the daemon could
	// use them (--cgroups=off): limits are then best effort, the memory
	// watchdog and rlimits only.
	NoCgroups bool
	// SendTimeout cuts a client that stops reading (proxy.Options); 0 =
	// the proxy's default, 60s; negative = none.
	SendTimeout time.Duration
	// MaxConns bounds the proxy's client connections; 0 = derived from
	// the file descriptor limit and the memory (Daemon.connLimit).
	MaxConns int
	// MaxHeaderBytes and MaxHeaderFields bound a request's header
	// (proxy.Options); 0 = the proxy's defaults, 32 KiB and 100 fields.
	MaxHeaderBytes, MaxHeaderFields int
	// Procs is how many threads run the daemon's Go code at once
	// (GOMAXPROCS); 0 = GOMAXPROCS if set, else one, and more while the
	// daemon is busy (procs.go).
	Procs int
	// Ready, when set, is called once the daemon listens and has started
	// bringing apps up.
	Ready func()
}

func (c *Config) defaults() {
	if c.Bind == "" {
		c.Bind = "127.0.0.1"
	}
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = 20000, 29999
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Daemon is a running piku daemon.
type Daemon struct {
	cfg   Config
	root  layout.Root
	log   *slog.Logger
	sup   *supervisor.Supervisor
	proxy *proxy.Server
	// table is the proxy's route table, the one writer of every route.
	table routeTable
	// procs, certHosts and jobs are sup, certs and cron as a rollout uses
	// them.
	procs     processes
	certHosts certHosts
	jobs      cronJobs
	certs     *certs.Manager
	cron      *cron.Runner
	// cgroups holds the apps' cgroups and limits; asked holds, by app,
	// what its ENV set at its last plan; watchdog stands in for the
	// memory cgroup in best-effort mode.
	cgroups  *isolation.Cgroups
	asked    sync.Map
	watchdog *isolation.MemoryWatchdog
	// metrics is what GET /metrics shows.
	metrics *metrics.Registry
	// sleeper puts apps with PIKU_IDLE_TIMEOUT to sleep and wakes them
	// (idle.go); activity is the proxy as it reads it.
	sleeper  *sleeper
	activity activity

	certMu     sync.Mutex
	certExpiry map[string]time.Time // by app host, of the certificate last served

	mu    sync.Mutex
	apps  map[string]*appState
	locks map[string]*sync.Mutex
	// startHolds are the apps held until their start-up rollout ends
	// (known.go).
	startHolds map[string]bool

	// lis are the daemon's listening sockets, handed over when it
	// restarts in place; restartReq carries the control API's requests
	// for that (handover.go).
	lis        *listeners
	restartReq chan chan error
}

// appState is what the daemon remembers of an app between operations.
type appState struct {
	revision   string
	hosts      []string
	lastErr    string
	strategies map[string]string // kind -> how it was last replaced (supervisor.Strategy*)
}

// GCPercent is the daemon's garbage collection target (GOGC), unless GOGC
// is set in its environment. The proxy makes short-lived garbage on every
// request; collecting it a quarter as often measured about 20 % more small
// requests per second, for a few MiB more heap.
const GCPercent = 400

// Run runs the daemon until ctx ends, then stops every app gracefully and
// returns.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	// An image a restart in place started has caught stop signals since
	// its start (earlysignal): one that came before ctx heard of them
	// stops it too, once it knows the apps it adopted.
	ctx, release := stopOnSignal(ctx, earlysignal.Stops, cfg.Logger)
	defer release()
	gov := setProcs(cfg.Procs, cfg.Logger)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	// GCPercent trades memory for CPU; in a memory cgroup (a small VPS's
	// service, a container) the garbage collector works harder as the
	// heap nears half the cgroup's limit instead, rather than let the
	// kernel kill the daemon and every app with it.
	if cg := cgroupMemoryLimit("/proc/self/cgroup", "/sys/fs/cgroup"); cg > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cg / 2)
		cfg.Logger.Info("memory cgroup", "limit", cg, "gomemlimit", cg/2)
	}
	isolation.LogProtectDaemon(cfg.Logger)
	root := cfg.Root
	// On a server Python piku ran, keep the files it needs and the modes
	// of its folders before Init and the rollouts below change them, for
	// `piku migrate back`.
	if saved, err := migrate.Save(root, time.Now()); err != nil {
		return err
	} else if saved {
		cfg.Logger.Info("kept Python piku's vassals, hooks, LIVE_ENV files and folder modes for `piku migrate back`", "dir", root.PythonPikuDir())
	}
	if err := root.Init(); err != nil {
		return err
	}
	// SIGHUP would end the daemon (Go's default) and every app with it:
	// it restarts the daemon in place (handover.go). The handler is there
	// before any app starts: an image started by such a restart has
	// SIGHUP ignored until then, and an app would inherit that.
	hup := notifyHangup()
	defer stopHangup(hup)
	lis := inheritListeners(cfg.Logger)
	l, err := lis.listen("unix:"+root.Socket(), func() (net.Listener, error) { return control.Listen(root.Socket()) })
	if err != nil {
		return err
	}
	defer l.Close()
	if err := layout.WriteFile(root.PidFile(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(root.PidFile())

	d := &Daemon{
		cfg:   cfg,
		root:  root,
		log:   cfg.Logger,
		apps:  map[string]*appState{},
		locks: map[string]*sync.Mutex{},
		// the certificates' expiry, by app host
		certExpiry: map[string]time.Time{},
		lis:        lis,
		restartReq: make(chan chan error),
	}
	if err := d.build(); err != nil {
		return err
	}

	runCtx, stopRunning := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRunning()
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	goRun := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	goRun("supervisor", d.sup.Run)
	if gov != nil {
		goRun("threads", func(ctx context.Context) error { return gov.run(ctx, d.log) })
	}
	goRun("orphan reaper", func(ctx context.Context) error { return reapOrphans(ctx, d.log) })
	// The proxy stops first when the daemon stops (below), so that it has
	// stopped accepting before the apps behind it stop.
	// The known apps' routes are there, held, before the proxy accepts:
	// a booting app is waited for, never a 404 (known.go).
	d.holdKnownApps()
	proxyCtx, stopProxy := context.WithCancel(runCtx)
	defer stopProxy()
	proxyDone := make(chan struct{})
	goRun("proxy", func(context.Context) error { defer close(proxyDone); return d.proxy.Run(proxyCtx) })
	goRun("cron", d.cron.Run)
	goRun("idle apps", func(ctx context.Context) error { return d.sleeper.Run(ctx, d.activity) })
	goRun("certificates", d.certs.Run)
	goRun("memory watchdog", d.watchMemory)
	goRun("cloudflare ranges", func(ctx context.Context) error {
		return d.proxy.RefreshCloudflare(ctx, &http.Client{Timeout: 30 * time.Second})
	})
	metricsCtx, stopMetrics := context.WithCancel(runCtx)
	defer stopMetrics()
	metricsDone := make(chan struct{})
	if cfg.MetricsAddr != "" {
		goRun("metrics", func(context.Context) error {
			defer close(metricsDone)
			return d.serveMetrics(metricsCtx, cfg.MetricsAddr)
		})
	} else {
		close(metricsDone)
	}

	srv := control.NewServer(d, control.Info{PID: os.Getpid(), Version: cfg.Version, Root: root.Dir(), Started: time.Now()}, d.log)
	srv.Handle("GET /metrics", d.metrics.Handler())
	// The daemon's own profiles (CPU, heap, goroutines), for whoever may
	// reach the socket: the piku user (mode 0600), never an app's process.
	srv.Handle("GET /debug/pprof/", http.HandlerFunc(pprof.Index))
	srv.Handle("GET /debug/pprof/profile", http.HandlerFunc(pprof.Profile))
	srv.RefuseCallers(isolation.CallerCheck(os.Getpid()))
	srv.HandleRestart(d.askRestart)
	ctlCtx, stopControl := context.WithCancel(context.Background())
	ctlDone := make(chan error, 1)
	go func() { ctlDone <- srv.Serve(ctlCtx, l, cfg.ShutdownTimeout) }()

	abi, why := isolation.LandlockABI()
	landlock := "ABI " + strconv.Itoa(abi) + ": apps are confined to their own files (PIKU_LANDLOCK=off opts out)"
	if abi == 0 {
		landlock = "none: apps are not confined (" + why + ")"
	}
	d.log.Info("piku daemon started", "root", root.Dir(), "pid", os.Getpid(),
		"http", cfg.HTTPAddr, "https", cfg.HTTPSAddr, "version", cfg.Version, "landlock", landlock, "isolation", d.isolationMode())
	// Start-up has a context of its own, ended first when the daemon
	// stops: a signal during start-up must not wait for every app's boot.
	startCtx, cancelStart := context.WithCancel(runCtx)
	defer cancelStart()
	startDone := make(chan struct{})
	go func() {
		defer close(startDone)
		d.startAll(startCtx)
		// What an earlier daemon left of apps that did not start again
		// (stopped, destroyed, broken) is stopped, and the sockets it
		// handed over that the settings no longer name are closed.
		d.sup.StopUnclaimed(context.WithoutCancel(startCtx))
		d.cron.StopUnclaimed()
		lis.closeUnclaimed()
	}()
	if cfg.Ready != nil {
		cfg.Ready()
	}

	var runErr error
	var next *restartPlan
wait:
	for {
		select {
		case <-ctx.Done():
			d.log.Info("piku daemon stopping: stopping every app")
			break wait
		case runErr = <-errc:
			d.log.Error("piku daemon failing", "err", runErr)
			break wait
		case <-hup:
			d.log.Info("SIGHUP received: restarting in place")
			if next, err = d.planRestart(ctx); err == nil {
				break wait
			}
		case reply := <-d.restartReq:
			d.log.Info("restart asked for: restarting in place")
			next, err = d.planRestart(ctx)
			reply <- err
			if err == nil {
				break wait
			}
		}
	}
	cancelStart()
	stopControl()
	<-ctlDone
	<-startDone
	if next != nil {
		// Stop accepting and drain, then hand over: returns only when
		// a stop signal came meanwhile, which the stop below obeys.
		d.restartInPlace(ctx, next, stopProxy, proxyDone, stopMetrics, metricsDone)
		d.log.Info("piku daemon stopping: a stop signal came during the restart in place; stopping every app")
	}
	// Stop accepting, then stop the apps: the supervisor drains each
	// app's requests in flight (within its PIKU_DRAIN_TIMEOUT) before its
	// instances get SIGTERM, and the proxy's graceful shutdown answers
	// them meanwhile.
	stopProxy()
	<-d.proxy.StoppedAccepting()
	d.log.Info("proxy stopped accepting: draining the requests in flight, then stopping every app")
	stopRunning() // supervisor and cron stop their processes gracefully
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.ShutdownTimeout + 5*time.Second):
		d.log.Error("piku daemon: shutdown took too long; exiting anyway")
	}
	// Reap what the stop killed and was re-parented here, so the apps'
	// cgroups are empty and can go.
	procgroup.ReapOrphans()
	d.cgroups.Close()
	d.log.Info("piku daemon stopped")
	return runErr
}

// lock serialises operations on one app; different apps proceed in parallel.
func (d *Daemon) lock(app string) func() {
	d.mu.Lock()
	m, ok := d.locks[app]
	if !ok {
		m = &sync.Mutex{}
		d.locks[app] = m
	}
	d.mu.Unlock()
	m.Lock()
	return m.Unlock
}

func (d *Daemon) state(app string) *appState {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, ok := d.apps[app]
	if !ok {
		st = &appState{}
		d.apps[app] = st
	}
	return st
}

// startAll brings up every deployed app that is not stopped, in parallel.
func (d *Daemon) startAll(ctx context.Context) {
	apps, err := d.root.Apps()
	if err != nil {
		d.log.Error("listing apps", "err", err)
		return
	}
	var wg sync.WaitGroup
	for _, app := range apps {
		if _, err := os.Stat(d.root.StoppedFile(app)); err == nil {
			d.log.Info("app is stopped; not starting it", "app", app)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &logWriter{log: d.log, app: app}
			defer d.releaseStartHold(app)
			if err := d.rollout(ctx, app, control.DeployRequest{}, reporter{w: w, log: d.log, app: app}); err != nil {
				d.log.Error("starting app", "app", app, "err", err)
			}
		}()
	}
	wg.Wait()
}
