package metrics

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/piku/piku/proxy"
)

// scrape GETs the registry's handler over real HTTP.
func scrape(t *testing.T, r *Registry) string {
	t.Helper()
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("%d %v", res.StatusCode, err)
	}
	return string(b)
}

func TestExposition(t *testing.T) {
	started := time.Now().Add(-time.Minute)
	r := New(Sources{
		Instances: func() []Instance {
			return []Instance{
				{App: "blog", Kind: "web", N: 1, State: "running", Running: true, Restarts: 3,
					RecentRestarts: []time.Time{time.Now().Add(-2 * time.Hour), time.Now().Add(-time.Minute)},
					Exited:         true, ExitCode: -1, StartedAt: started, RSS: 1 << 20, CPU: 1.5, HealthFailures: 2,
					Nice: 10, HasNice: true},
				// the same process in a rollout's new generation: not counted twice
				{App: "blog", Kind: "web", N: 1, State: "starting"},
				{App: "blog", Kind: "worker", N: 1, State: "backoff"},
			}
		},
		Cron: func() []CronRun {
			return []CronRun{
				{App: "blog", Entry: "cron1", Started: time.Unix(1700000000, 0), Ended: true, Duration: 2 * time.Second, ExitCode: 3},
				{App: "blog", Entry: "cron2"}, // never ran
			}
		},
		Certificates: func() map[string]time.Time { return map[string]time.Time{"blog.test": time.Unix(1800000000, 0)} },
	})
	a := r.App("blog")
	a.Started()
	a.Done(200, 3*time.Millisecond, 10, 100)
	a.Started()
	a.Done(503, 20*time.Millisecond, 0, 50)
	a.Started() // still in flight
	a.UpstreamFailed(proxy.UpstreamRefused)
	a.CacheLookup(true)
	a.CacheLookup(false)
	a.CacheLookup(false)
	a.ACLRefused()
	r.ConnOpened()
	r.ConnOpened()
	r.ConnClosed()
	r.TLSHandshake()
	r.Rollout("blog", 2*time.Second, nil)
	r.Rollout("blog", time.Second, errors.New("boom"))
	r.RolloutKind("blog", "web", "ready")
	r.RolloutKind("blog", "worker", "kept")

	out := scrape(t, r)
	for _, want := range []string{
		`piku_http_requests_total{app="blog",class="2xx"} 1`,
		`piku_http_requests_total{app="blog",class="5xx"} 1`,
		`piku_http_requests_total{app="blog",class="4xx"} 0`,
		`piku_http_request_duration_seconds_bucket{app="blog",le="0.005"} 1`,
		`piku_http_request_duration_seconds_bucket{app="blog",le="0.025"} 2`,
		`piku_http_request_duration_seconds_count{app="blog"} 2`,
		`piku_http_request_body_bytes_total{app="blog"} 10`,
		`piku_http_response_body_bytes_total{app="blog"} 150`,
		`piku_http_requests_in_flight{app="blog"} 1`,
		`piku_http_upstream_errors_total{app="blog",error="refused"} 1`,
		`piku_http_upstream_errors_total{app="blog",error="timeout"} 0`,
		`piku_http_cache_lookups_total{app="blog",result="hit"} 1`,
		`piku_http_cache_lookups_total{app="blog",result="miss"} 2`,
		`piku_http_acl_refused_total{app="blog"} 1`,
		`piku_proxy_connections_open 1`,
		`piku_proxy_tls_handshakes_total 1`,
		`piku_rollouts_total{app="blog",outcome="ok"} 1`,
		`piku_rollouts_total{app="blog",outcome="failed"} 1`,
		`piku_rollout_duration_seconds_count{app="blog"} 2`,
		`piku_rollout_kinds_total{app="blog",kind="web",outcome="ready"} 1`,
		`piku_rollout_kinds_total{app="blog",kind="worker",outcome="kept"} 1`,
		`piku_instance_health_check_failures{app="blog",kind="web",process="web.1"} 2`,
		`piku_instance_state{app="blog",kind="web",process="web.1",state="running"} 1`,
		`piku_instance_state{app="blog",kind="web",process="web.1",state="starting"} 0`,
		`piku_instance_state{app="blog",kind="worker",process="worker.1",state="backoff"} 1`,
		`piku_instance_restarts_total{app="blog",kind="web",process="web.1"} 3`,
		`piku_instance_restarts_last_hour{app="blog",kind="web",process="web.1"} 1`,
		`piku_instance_last_exit_code{app="blog",kind="web",process="web.1"} -1`,
		`piku_instance_resident_memory_bytes{app="blog",kind="web",process="web.1"} 1.048576e+06`,
		`piku_instance_cpu_seconds_total{app="blog",kind="web",process="web.1"} 1.5`,
		`piku_instance_nice{app="blog",kind="web",process="web.1"} 10`,
		`piku_cron_last_run_timestamp_seconds{app="blog",entry="cron1"} 1.7e+09`,
		`piku_cron_last_run_duration_seconds{app="blog",entry="cron1"} 2`,
		`piku_cron_last_exit_code{app="blog",entry="cron1"} 3`,
		`piku_certificate_expiry_timestamp_seconds{host="blog.test"} 1.8e+09`,
		"go_goroutines ",
		"process_open_fds ",
		"process_max_fds ",
	} {
		if !strings.Contains(out, "\n"+want) {
			t.Errorf("missing %s", want)
		}
	}
	for _, absent := range []string{
		`piku_instance_uptime_seconds{app="blog",kind="worker"`, // no process runs
		`piku_instance_last_exit_code{app="blog",kind="worker"`, // never exited
		`piku_instance_nice{app="blog",kind="worker"`,           // no process runs
		`entry="cron2"`,
	} {
		if strings.Contains(out, absent) {
			t.Errorf("has %s", absent)
		}
	}

	r.Forget("blog")
	if out := scrape(t, r); strings.Contains(out, `piku_http_requests_total{app="blog"`) {
		t.Error("a forgotten app's request series are still there")
	}
}

func TestTop(t *testing.T) {
	inst := []Instance{
		{App: "a", Kind: "web", N: 1, State: "running", Running: true, Restarts: 2,
			RecentRestarts: []time.Time{time.Now()}, StartedAt: time.Now().Add(-time.Minute), RSS: 100},
		{App: "a", Kind: "web", N: 2, State: "backoff", Exited: true, ExitCode: 3},
		{App: "idle", Kind: "worker", N: 1, State: "running", Running: true, StartedAt: time.Now(), RSS: 5},
	}
	r := New(Sources{Instances: func() []Instance { return inst }})
	a := r.App("a")
	send := func(n, status int, d time.Duration) {
		for range n {
			a.Started()
			a.Done(status, d, 0, 0)
		}
	}
	send(10, 200, 2*time.Millisecond) // bucket 0.001-0.0025
	sample := func(at time.Time) Sample {
		s, err := ParseSample(strings.NewReader(scrape(t, r)), at)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t0 := time.Unix(1000, 0)
	first := sample(t0)
	send(6, 200, 40*time.Millisecond) // bucket 0.025-0.05
	send(2, 502, 40*time.Millisecond)
	r.Wake("a", 2*time.Second, nil)
	r.Wake("a", 1500*time.Millisecond, nil)
	r.Wake("a", time.Second, errors.New("crashed")) // failed: no cold start
	second := sample(t0.Add(2 * time.Second))

	got := Top(first, second)
	if len(got) != 2 || got[0].App != "a" || got[1].App != "idle" {
		t.Fatalf("apps %+v", got)
	}
	g := got[0]
	check := func(name string, v, want float64) {
		t.Helper()
		if math.Abs(v-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	check("requests", float64(g.Requests), 18)
	check("2xx", float64(g.RequestsByClass["2xx"]), 16)
	check("errors", float64(g.Errors), 2)
	check("requests/s", g.RequestsPerSec, 4)
	check("error rate", g.ErrorRate, 0.25)
	// 8 requests in the interval, all in the 25-50ms bucket.
	check("p50", g.P50Ms, 25+25*0.5)
	check("p95", g.P95Ms, 25+25*0.95)
	if g.LatencySince != "interval" {
		t.Errorf("latency since %q", g.LatencySince)
	}
	if g.Wakes != 2 || g.LastColdStartMs != 1500 {
		t.Errorf("wakes %d, last cold start %vms; want 2, 1500ms", g.Wakes, g.LastColdStartMs)
	}
	if g.InstancesUp != 1 || g.InstancesTotal != 2 || g.Restarts != 2 || g.RestartsLastHour != 1 || g.MemoryBytes != 100 {
		t.Errorf("instances: %+v", g)
	}
	if len(g.Instances) != 2 || g.Instances[1].LastExitCode == nil || *g.Instances[1].LastExitCode != 3 || g.Instances[0].LastExitCode != nil {
		t.Errorf("instances: %+v", g.Instances)
	}

	// No previous sample: latency over everything since the start.
	since := Top(Sample{}, second)[0]
	if since.LatencySince != "start" || since.RequestsPerSec != 0 {
		t.Errorf("without a previous sample: %+v", since)
	}
	check("p50 since start", since.P50Ms, 1+1.5*(9.0/10))
	if idle := got[1]; idle.LatencySince != "" || idle.Requests != 0 || idle.InstancesUp != 1 {
		t.Errorf("idle app: %+v", idle)
	}
}

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name string
		q    float64
		bs   []bucket
		want float64
	}{
		{"middle of the first bucket", 0.5, []bucket{{1, 10}, {2, 10}, {inf, 10}}, 0.5},
		{"second bucket", 0.75, []bucket{{1, 5}, {2, 10}, {inf, 10}}, 1.5},
		{"beyond the last bound", 0.99, []bucket{{1, 5}, {2, 5}, {inf, 10}}, 2},
		{"exactly at a bound", 0.5, []bucket{{1, 5}, {2, 10}, {inf, 10}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quantile(tt.q, tt.bs); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestParseSampleRejectsGarbage(t *testing.T) {
	if _, err := ParseSample(bytes.NewReader([]byte("not{ a metric")), time.Now()); err == nil {
		t.Error("no error")
	}
}

// BenchmarkRequest is what the metrics add to one proxied request: the
// app's lookup, in flight up and down, the status class, the duration and
// the bytes.
func BenchmarkRequest(b *testing.B) {
	r := New(Sources{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a := r.App("blog")
			a.Started()
			a.Done(200, 3*time.Millisecond, 0, 13)
		}
	})
}

// TestLimits: each app's limits and use, its OOM kills and the isolation
// mode are exposed, and piku top reads them back.
func TestLimits(t *testing.T) {
	none, unlimited := int64(0), int64(-1)
	r := New(Sources{
		Isolation: func() string { return "cgroup v1" },
		Limits: func() []AppLimits {
			return []AppLimits{
				{App: "blog", MemoryBytes: 100 << 20, MemoryMax: 512 << 20, Pids: 7, PidsMax: 1024,
					CPUSeconds: 2.5, CPUWeight: 100, CPUMax: 1.5, OpenFiles: 4096, OOMKills: 2, OutputDropped: 5000, CoreMax: &none},
				{App: "shop", Pids: 1, PidsMax: 1024, CPUWeight: 100, CoreMax: &unlimited},
				{App: "idle", PidsMax: 1024},
			}
		},
	})
	out := scrape(t, r)
	for _, want := range []string{
		`piku_isolation_mode{mode="cgroup v1"} 1`,
		`piku_isolation_mode{mode="best effort"} 0`,
		`piku_app_memory_bytes{app="blog"} 1.048576e+08`,
		`piku_app_memory_limit_bytes{app="blog"} 5.36870912e+08`,
		`piku_app_processes{app="blog"} 7`,
		`piku_app_processes_limit{app="blog"} 1024`,
		`piku_app_cpu_seconds_total{app="blog"} 2.5`,
		`piku_app_cpu_limit_cpus{app="blog"} 1.5`,
		`piku_app_open_files_limit{app="blog"} 4096`,
		`piku_app_oom_kills_total{app="blog"} 2`,
		`piku_app_oom_kills_total{app="shop"} 0`,
		`piku_app_output_dropped_bytes_total{app="blog"} 5000`,
		`piku_app_output_dropped_bytes_total{app="shop"} 0`,
		`piku_app_core_file_size_limit_bytes{app="blog"} 0`,
		`piku_app_core_file_size_limit_bytes{app="shop"} +Inf`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	// No limit is no series: nothing says a limit holds that does not.
	if strings.Contains(out, `piku_app_memory_limit_bytes{app="shop"}`) || strings.Contains(out, `piku_app_cpu_limit_cpus{app="shop"}`) ||
		strings.Contains(out, `piku_app_core_file_size_limit_bytes{app="idle"}`) {
		t.Errorf("a limit series for an app without that limit:\n%s", out)
	}
	s, err := ParseSample(strings.NewReader(out), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	apps := Top(Sample{}, s)
	if len(apps) != 3 || apps[0].App != "blog" || apps[0].Isolation != "cgroup v1" || apps[0].Limits == nil {
		t.Fatalf("Top = %+v", apps)
	}
	want := LimitsTop{MemoryBytes: 100 << 20, MemoryMax: 512 << 20, Pids: 7, PidsMax: 1024, CPUSeconds: 2.5,
		CPUWeight: 100, CPUMax: 1.5, OpenFiles: 4096, OOMKills: 2, CoreMax: &none}
	if !reflect.DeepEqual(*apps[0].Limits, want) {
		t.Errorf("blog's limits in top = %+v, want %+v", *apps[0].Limits, want)
	}
	if shop := apps[2].Limits; apps[2].App != "shop" || shop == nil || shop.CoreMax == nil || *shop.CoreMax != -1 {
		t.Errorf("shop's unlimited core files in top = %+v", apps[2])
	}
}
