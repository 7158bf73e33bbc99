// Package metrics holds the daemon's Prometheus metrics: what the proxy
// observes of every request, the state of every instance the supervisor
// runs, rollouts, cron runs and the daemon itself, and serves them in the
// Prometheus text format.
//
// Label sets are bounded: app, kind, process ("web.1"), status class,
// outcome, host. Never a path or a client address.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/piku/piku/proxy"
)

// Sources are read at every scrape for the metrics that describe state
// rather than count events. A nil source reports nothing.
type Sources struct {
	// Instances returns every instance of every app.
	Instances func() []Instance
	// Cron returns the last run of every cron entry.
	Cron func() []CronRun
	// Certificates returns the expiry of the certificate of every host.
	Certificates func() map[string]time.Time
	// Limits returns every app's limits and its use against them.
	Limits func() []AppLimits
	// Isolation returns how apps' limits are enforced: "cgroup v2",
	// "cgroup v1" or "best effort".
	Isolation func() string
}

// AppLimits are one app's limits, as the kernel enforces them, and its
// use against them. A limit of 0 is none; a figure the isolation mode
// cannot tell is 0 and not reported.
type AppLimits struct {
	App                                string
	MemoryBytes, MemoryMax, MemoryHigh int64
	Pids, PidsMax                      int64
	CPUSeconds                         float64
	CPUWeight                          int
	CPUMax                             float64 // CPUs
	OpenFiles                          int64   // per process
	OOMKills                           int64
	// OutputDropped is the bytes of the app's output dropped because it
	// wrote more than its rate (PIKU_LOG_RATE).
	OutputDropped int64
	// CoreMax is the core file size limit of a running process of the
	// app in bytes, -1 for none; nil while none runs.
	CoreMax *int64
}

// Instance is one process of an app, as the metrics show it.
type Instance struct {
	App, Kind string
	N         int
	State     string
	Running   bool // a process runs (uptime and CPU are meaningful)
	Restarts  int
	// RecentRestarts are the restart times it knows of; those within the
	// last hour are counted.
	RecentRestarts []time.Time
	Exited         bool // the last exit code is known
	ExitCode       int
	StartedAt      time.Time
	RSS            int64
	CPU            float64
	// HealthFailures is how many health checks in a row the running
	// process failed (0 once one passes).
	HealthFailures int
	// Nice is the running process's nice value (PIKU_NICE), when HasNice.
	Nice    int
	HasNice bool
}

// CronRun is the last run of one cron entry.
type CronRun struct {
	App, Entry string
	Started    time.Time     // zero: never ran
	Duration   time.Duration // of the last run that ended
	Ended      bool          // a run has ended: ExitCode and Duration are known
	ExitCode   int
}

// States lists every instance state, so that the state metric has a
// series for each (Prometheus' state-set idiom).
var States = []string{"starting", "running", "unhealthy", "backoff", "crash-looping", "stopping", "stopped", "exited", "failed"}

// DurationBuckets are the bounds of the request duration histogram, in
// seconds.
var DurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Registry holds every metric of the daemon.
type Registry struct {
	reg *prometheus.Registry
	src Sources

	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	bytesIn    *prometheus.CounterVec
	bytesOut   *prometheus.CounterVec
	upstream   *prometheus.CounterVec
	inFlight   *prometheus.GaugeVec
	cache      *prometheus.CounterVec
	acl        *prometheus.CounterVec
	conns      prometheus.Gauge
	connLimit  prometheus.Gauge
	connFull   prometheus.Counter
	handshakes prometheus.Counter
	rollouts   *prometheus.CounterVec
	rolloutDur *prometheus.HistogramVec
	kinds      *prometheus.CounterVec
	sleeps     *prometheus.CounterVec
	wakes      *prometheus.CounterVec
	coldStart  *prometheus.HistogramVec
	lastCold   *prometheus.GaugeVec

	apps sync.Map // app name -> *appObserver; read on every request
}

// New returns a Registry with the Go runtime's and the daemon process's
// metrics (goroutines, open file descriptors and their limit) registered.
func New(src Sources) *Registry {
	r := &Registry{reg: prometheus.NewRegistry(), src: src}
	app := []string{"app"}
	f := func(c prometheus.Collector) { r.reg.MustRegister(c) }
	r.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "piku_http_requests_total", Help: "Requests the proxy answered for the app, by status class (2xx, 5xx...).",
	}, []string{"app", "class"})
	r.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "piku_http_request_duration_seconds", Help: "How long the proxy took to answer the app's requests.", Buckets: DurationBuckets,
	}, app)
	r.bytesIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "piku_http_request_body_bytes_total", Help: "Bytes of request bodies read from clients.",
	}, app)
	r.bytesOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "piku_http_response_body_bytes_total", Help: "Bytes of response bodies written to clients.",
	}, app)
	r.upstream = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "piku_http_upstream_errors_total", Help: "Requests whose backend refused the connection (refused) or did not answer in time (timeout).",
	}, []string{"app", "error"})
	r.inFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "piku_http_requests_in_flight", Help: "Requests of the app being answered now.",
	}, app)
	r.cache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "piku_http_cache_lookups_total", Help: "Requests the app's cache applied to, by result (hit, miss).",
	}, []string{"app", "result"})
	r.acl = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "piku_http_acl_refused_total", Help: "Requests refused by the app's Cloudflare ACL.",
	}, app)
	r.conns = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "piku_proxy_connections_open", Help: "Client connections the proxy holds open.",
	})
	r.connLimit = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "piku_proxy_connections_limit", Help: "Client connections the proxy holds open at most (the daemon's max-connections); 0 = no bound.",
	})
	r.connFull = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "piku_proxy_connections_limit_reached_total", Help: "Times the client connections came near their limit: keep-alive was turned off until a tenth was free, and clients beyond waited in the backlog.",
	})
	r.handshakes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "piku_proxy_tls_handshakes_total", Help: "TLS handshakes clients started with the proxy.",
	})
	r.rollouts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "piku_rollouts_total", Help: "Rollouts of the app (deploy, restart, config:set, ps:scale, daemon start), by outcome (ok, failed).",
	}, []string{"app", "outcome"})
	r.rolloutDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "piku_rollout_duration_seconds", Help: "How long the app's rollouts took.",
		Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	}, app)
	r.kinds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "piku_rollout_kinds_total", Help: "What rollouts decided for each process kind they changed, by outcome (ready, kept, replaced failing, first failing).",
	}, []string{"app", "kind", "outcome"})
	r.sleeps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "piku_app_sleeps_total", Help: "Times the app's web instances were stopped after PIKU_IDLE_TIMEOUT without a request.",
	}, app)
	r.wakes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "piku_app_wakes_total", Help: "Times a request woke the app from its sleep, by outcome (ok, failed).",
	}, []string{"app", "outcome"})
	r.coldStart = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "piku_app_cold_start_seconds", Help: "How long the app took to wake: from the wake's start until its web instances were ready.",
		Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, app)
	r.lastCold = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "piku_app_last_cold_start_seconds", Help: "How long the app's last wake took (piku top shows it).",
	}, app)
	for _, c := range []prometheus.Collector{r.requests, r.duration, r.bytesIn, r.bytesOut, r.upstream,
		r.inFlight, r.cache, r.acl, r.conns, r.connLimit, r.connFull, r.handshakes, r.rollouts, r.rolloutDur, r.kinds, r.sleeps, r.wakes, r.coldStart, r.lastCold} {
		f(c)
	}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f(stateCollector{r})
	return r
}

// Handler serves the metrics in the Prometheus exposition format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
}

// TLSHandshake counts a handshake a client started.
func (r *Registry) TLSHandshake() { r.handshakes.Inc() }

// Rollout records one rollout of app.
func (r *Registry) Rollout(app string, d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "failed"
	}
	r.rollouts.WithLabelValues(app, outcome).Inc()
	r.rolloutDur.WithLabelValues(app).Observe(d.Seconds())
}

// RolloutKind records what a rollout of app decided for one process kind
// (the supervisor's outcome: "ready", "kept"...).
func (r *Registry) RolloutKind(app, kind, outcome string) {
	r.kinds.WithLabelValues(app, kind, outcome).Inc()
}

// Sleep records that app's web instances were put to sleep.
func (r *Registry) Sleep(app string) { r.sleeps.WithLabelValues(app).Inc() }

// Wake records a wake of app that took d; err is why it failed.
func (r *Registry) Wake(app string, d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "failed"
	}
	r.wakes.WithLabelValues(app, outcome).Inc()
	if err == nil {
		r.coldStart.WithLabelValues(app).Observe(d.Seconds())
		r.lastCold.WithLabelValues(app).Set(d.Seconds())
	}
}

// Forget removes the series of an app that is gone.
func (r *Registry) Forget(app string) {
	r.apps.Delete(app)
	l := prometheus.Labels{"app": app}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		r.requests, r.duration, r.bytesIn, r.bytesOut, r.upstream, r.inFlight, r.cache, r.acl, r.rollouts, r.rolloutDur, r.kinds,
		r.sleeps, r.wakes, r.coldStart, r.lastCold,
	} {
		v.DeletePartialMatch(l)
	}
}

// App implements proxy.Observer.
func (r *Registry) App(app string) proxy.AppObserver {
	if a, ok := r.apps.Load(app); ok {
		return a.(*appObserver)
	}
	a, _ := r.apps.LoadOrStore(app, r.newApp(app))
	return a.(*appObserver)
}

// ConnOpened implements proxy.Observer.
func (r *Registry) ConnOpened() { r.conns.Inc() }

// ConnClosed implements proxy.Observer.
func (r *Registry) ConnClosed() { r.conns.Dec() }

// ConnBudgetFull implements proxy.BudgetObserver.
func (r *Registry) ConnBudgetFull() { r.connFull.Inc() }

// SetConnLimit sets the bound on client connections shown.
func (r *Registry) SetConnLimit(n int) { r.connLimit.Set(float64(n)) }

// appObserver holds one app's series, looked up once.
type appObserver struct {
	classes  [6]prometheus.Counter // by status/100; [0] for anything outside 1xx-5xx
	duration prometheus.Observer
	in, out  prometheus.Counter
	refused  prometheus.Counter
	timeout  prometheus.Counter
	inFlight prometheus.Gauge
	hit      prometheus.Counter
	miss     prometheus.Counter
	acl      prometheus.Counter
}

func (r *Registry) newApp(app string) *appObserver {
	a := &appObserver{
		duration: r.duration.WithLabelValues(app),
		in:       r.bytesIn.WithLabelValues(app),
		out:      r.bytesOut.WithLabelValues(app),
		refused:  r.upstream.WithLabelValues(app, string(proxy.UpstreamRefused)),
		timeout:  r.upstream.WithLabelValues(app, string(proxy.UpstreamTimeout)),
		inFlight: r.inFlight.WithLabelValues(app),
		hit:      r.cache.WithLabelValues(app, "hit"),
		miss:     r.cache.WithLabelValues(app, "miss"),
		acl:      r.acl.WithLabelValues(app),
	}
	a.classes[0] = r.requests.WithLabelValues(app, "other")
	for c := 1; c <= 5; c++ {
		a.classes[c] = r.requests.WithLabelValues(app, strconv.Itoa(c)+"xx")
	}
	return a
}

func (a *appObserver) Started() { a.inFlight.Inc() }

func (a *appObserver) Done(status int, d time.Duration, in, out int64) {
	a.inFlight.Dec()
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	a.classes[c].Inc()
	a.duration.Observe(d.Seconds())
	if in > 0 {
		a.in.Add(float64(in))
	}
	if out > 0 {
		a.out.Add(float64(out))
	}
}

func (a *appObserver) UpstreamFailed(e proxy.UpstreamError) {
	if e == proxy.UpstreamTimeout {
		a.timeout.Inc()
	} else {
		a.refused.Inc()
	}
}

func (a *appObserver) CacheLookup(hit bool) {
	if hit {
		a.hit.Inc()
	} else {
		a.miss.Inc()
	}
}

func (a *appObserver) ACLRefused() { a.acl.Inc() }

var (
	_ proxy.Observer    = (*Registry)(nil)
	_ proxy.AppObserver = (*appObserver)(nil)
)

var (
	_ proxy.Observer       = (*Registry)(nil)
	_ proxy.BudgetObserver = (*Registry)(nil)
)
