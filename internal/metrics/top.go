package metrics

import (
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Sample is what `piku top` reads of one scrape of /metrics.
type Sample struct {
	At   time.Time
	apps map[string]*appSample
	// isolation is how apps' limits are enforced ("" when the daemon
	// does not say).
	isolation string
}

type appSample struct {
	classes   map[string]float64 // requests by status class
	upstream  map[string]float64 // upstream errors by kind
	buckets   []bucket           // the duration histogram, cumulative
	count     float64            // requests in the histogram
	instances map[string]*InstanceTop
	wakes     float64 // wakes that succeeded
	lastCold  float64 // the last wake's cold start, in seconds
	limits    *LimitsTop
}

type bucket struct {
	le    float64
	count float64
}

// ParseSample reads a scrape in the Prometheus text format.
func ParseSample(r io.Reader, at time.Time) (Sample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Sample{}, fmt.Errorf("reading the metrics: %w", err)
	}
	s := Sample{At: at, apps: map[string]*appSample{}}
	app := func(name string) *appSample {
		a := s.apps[name]
		if a == nil {
			a = &appSample{classes: map[string]float64{}, upstream: map[string]float64{}, instances: map[string]*InstanceTop{}}
			s.apps[name] = a
		}
		return a
	}
	each := func(name string, f func(l map[string]string, m *dto.Metric)) {
		fam := fams[name]
		if fam == nil {
			return
		}
		for _, m := range fam.Metric {
			l := map[string]string{}
			for _, lp := range m.Label {
				l[lp.GetName()] = lp.GetValue()
			}
			f(l, m)
		}
	}
	each("piku_http_requests_total", func(l map[string]string, m *dto.Metric) {
		app(l["app"]).classes[l["class"]] = m.GetCounter().GetValue()
	})
	each("piku_http_upstream_errors_total", func(l map[string]string, m *dto.Metric) {
		app(l["app"]).upstream[l["error"]] = m.GetCounter().GetValue()
	})
	each("piku_http_request_duration_seconds", func(l map[string]string, m *dto.Metric) {
		a, h := app(l["app"]), m.GetHistogram()
		a.count = float64(h.GetSampleCount())
		for _, b := range h.Bucket {
			a.buckets = append(a.buckets, bucket{b.GetUpperBound(), float64(b.GetCumulativeCount())})
		}
	})
	each("piku_app_wakes_total", func(l map[string]string, m *dto.Metric) {
		if l["outcome"] == "ok" {
			app(l["app"]).wakes = m.GetCounter().GetValue()
		}
	})
	each("piku_app_last_cold_start_seconds", func(l map[string]string, m *dto.Metric) {
		app(l["app"]).lastCold = m.GetGauge().GetValue()
	})
	inst := func(l map[string]string) *InstanceTop {
		a := app(l["app"])
		in := a.instances[l["process"]]
		if in == nil {
			in = &InstanceTop{Process: l["process"]}
			a.instances[l["process"]] = in
		}
		return in
	}
	each("piku_instance_state", func(l map[string]string, m *dto.Metric) {
		if m.GetGauge().GetValue() == 1 {
			inst(l).State = l["state"]
		} else {
			inst(l)
		}
	})
	each("piku_instance_restarts_total", func(l map[string]string, m *dto.Metric) {
		inst(l).Restarts = int(m.GetCounter().GetValue())
	})
	each("piku_instance_restarts_last_hour", func(l map[string]string, m *dto.Metric) {
		inst(l).RestartsLastHour = int(m.GetGauge().GetValue())
	})
	each("piku_instance_last_exit_code", func(l map[string]string, m *dto.Metric) {
		c := int(m.GetGauge().GetValue())
		inst(l).LastExitCode = &c
	})
	each("piku_instance_uptime_seconds", func(l map[string]string, m *dto.Metric) {
		inst(l).UptimeSeconds = math.Round(m.GetGauge().GetValue())
	})
	each("piku_instance_resident_memory_bytes", func(l map[string]string, m *dto.Metric) {
		inst(l).MemoryBytes = int64(m.GetGauge().GetValue())
	})
	each("piku_instance_cpu_seconds_total", func(l map[string]string, m *dto.Metric) {
		inst(l).CPUSeconds = m.GetCounter().GetValue()
	})
	each("piku_instance_nice", func(l map[string]string, m *dto.Metric) {
		n := int(m.GetGauge().GetValue())
		inst(l).Nice = &n
	})
	each("piku_isolation_mode", func(l map[string]string, m *dto.Metric) {
		if m.GetGauge().GetValue() == 1 {
			s.isolation = l["mode"]
		}
	})
	lim := func(l map[string]string) *LimitsTop {
		a := app(l["app"])
		if a.limits == nil {
			a.limits = &LimitsTop{}
		}
		return a.limits
	}
	for name, set := range map[string]func(*LimitsTop, float64){
		"piku_app_memory_bytes":       func(t *LimitsTop, v float64) { t.MemoryBytes = int64(v) },
		"piku_app_memory_limit_bytes": func(t *LimitsTop, v float64) { t.MemoryMax = int64(v) },
		"piku_app_processes":          func(t *LimitsTop, v float64) { t.Pids = int64(v) },
		"piku_app_processes_limit":    func(t *LimitsTop, v float64) { t.PidsMax = int64(v) },
		"piku_app_cpu_seconds_total":  func(t *LimitsTop, v float64) { t.CPUSeconds = v },
		"piku_app_cpu_weight":         func(t *LimitsTop, v float64) { t.CPUWeight = int(v) },
		"piku_app_cpu_limit_cpus":     func(t *LimitsTop, v float64) { t.CPUMax = v },
		"piku_app_open_files_limit":   func(t *LimitsTop, v float64) { t.OpenFiles = int64(v) },
		"piku_app_oom_kills_total":    func(t *LimitsTop, v float64) { t.OOMKills = int64(v) },
		"piku_app_core_file_size_limit_bytes": func(t *LimitsTop, v float64) {
			n := int64(-1)
			if !math.IsInf(v, 1) {
				n = int64(v)
			}
			t.CoreMax = &n
		},
	} {
		each(name, func(l map[string]string, m *dto.Metric) {
			v := m.GetGauge().GetValue()
			if m.Counter != nil {
				v = m.GetCounter().GetValue()
			}
			set(lim(l), v)
		})
	}
	return s, nil
}

// AppTop is one app's line of `piku top`.
type AppTop struct {
	App string `json:"app"`
	// Requests counts the app's requests since the daemon started, in
	// total and by status class.
	Requests        int64            `json:"requests"`
	RequestsByClass map[string]int64 `json:"requests_by_class"`
	// Errors counts the 5xx answers since the daemon started;
	// UpstreamErrors the requests whose backend refused or timed out.
	Errors         int64            `json:"errors"`
	UpstreamErrors map[string]int64 `json:"upstream_errors"`
	// RequestsPerSec and ErrorRate (the share of 5xx answers) are over the
	// interval between the two samples.
	RequestsPerSec float64 `json:"requests_per_sec"`
	ErrorRate      float64 `json:"error_rate"`
	// P50Ms and P95Ms are latency quantiles estimated from the histogram:
	// over the interval when it saw requests, otherwise since the daemon
	// started (LatencySince says which: "interval" or "start"; "" for no
	// request at all).
	P50Ms        float64 `json:"p50_ms"`
	P95Ms        float64 `json:"p95_ms"`
	LatencySince string  `json:"latency_since"`
	// InstancesUp are the instances running, of InstancesTotal.
	InstancesUp      int   `json:"instances_up"`
	InstancesTotal   int   `json:"instances_total"`
	Restarts         int   `json:"restarts"`
	RestartsLastHour int   `json:"restarts_last_hour"`
	MemoryBytes      int64 `json:"memory_bytes"`
	// Wakes counts the app's wakes from PIKU_IDLE_TIMEOUT's sleep since
	// the daemon started; LastColdStartMs is how long the last one took
	// (0 before the first).
	Wakes           int64   `json:"wakes"`
	LastColdStartMs float64 `json:"last_cold_start_ms"`
	// Instances are the app's processes, by name.
	Instances []InstanceTop `json:"instances"`
	// Isolation is how the app's limits are enforced: "cgroup v2",
	// "cgroup v1" or "best effort" (not enforced); Limits are those
	// limits and the app's use against them, null when the daemon has
	// none to tell.
	Isolation string     `json:"isolation,omitempty"`
	Limits    *LimitsTop `json:"limits"`
}

// LimitsTop are an app's limits as the kernel enforces them and its use
// against them (piku_app_* metrics); a limit of 0 is none.
type LimitsTop struct {
	MemoryBytes int64   `json:"memory_bytes"`
	MemoryMax   int64   `json:"memory_max"`
	Pids        int64   `json:"processes"`
	PidsMax     int64   `json:"processes_max"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	CPUWeight   int     `json:"cpu_weight"`
	CPUMax      float64 `json:"cpu_max"`
	OpenFiles   int64   `json:"open_files"`
	// CoreMax is the core file size limit of a running process in
	// bytes, -1 for none; null while none runs.
	CoreMax  *int64 `json:"core_max_bytes"`
	OOMKills int64  `json:"oom_kills"`
}

// InstanceTop is one process of an app in `piku top`.
type InstanceTop struct {
	Process          string  `json:"process"`
	State            string  `json:"state"`
	Restarts         int     `json:"restarts"`
	RestartsLastHour int     `json:"restarts_last_hour"`
	LastExitCode     *int    `json:"last_exit_code"` // null before the first exit
	UptimeSeconds    float64 `json:"uptime_seconds"`
	MemoryBytes      int64   `json:"memory_bytes"`
	CPUSeconds       float64 `json:"cpu_seconds"`
	// Nice is the running process's nice value; null while none runs.
	Nice *int `json:"nice"`
}

// Top summarises cur, with rates over the interval since prev (which may
// be the zero Sample), sorted by app name.
func Top(prev, cur Sample) []AppTop {
	dt := cur.At.Sub(prev.At).Seconds()
	var out []AppTop
	for name, a := range cur.apps {
		t := AppTop{App: name, RequestsByClass: map[string]int64{}, UpstreamErrors: map[string]int64{}, Instances: []InstanceTop{},
			Isolation: cur.isolation, Limits: a.limits}
		for c, v := range a.classes {
			t.RequestsByClass[c] = int64(v)
			t.Requests += int64(v)
		}
		t.Errors = t.RequestsByClass["5xx"]
		t.Wakes, t.LastColdStartMs = int64(a.wakes), a.lastCold*1000
		for k, v := range a.upstream {
			t.UpstreamErrors[k] = int64(v)
		}
		var p *appSample
		if prev.apps != nil {
			p = prev.apps[name]
		}
		if p != nil && dt > 0 {
			var before float64
			for _, v := range p.classes {
				before += v
			}
			n := float64(t.Requests) - before
			t.RequestsPerSec = n / dt
			if n > 0 {
				t.ErrorRate = (a.classes["5xx"] - p.classes["5xx"]) / n
			}
		}
		window := a.buckets
		t.LatencySince = "start"
		if p != nil && a.count > p.count && len(p.buckets) == len(a.buckets) {
			window = make([]bucket, len(a.buckets))
			for i := range a.buckets {
				window[i] = bucket{a.buckets[i].le, a.buckets[i].count - p.buckets[i].count}
			}
			t.LatencySince = "interval"
		}
		if len(window) == 0 || window[len(window)-1].count == 0 {
			t.LatencySince = ""
		} else {
			t.P50Ms = quantile(0.5, window) * 1000
			t.P95Ms = quantile(0.95, window) * 1000
		}
		names := make([]string, 0, len(a.instances))
		for n := range a.instances {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			in := *a.instances[n]
			t.Instances = append(t.Instances, in)
			t.InstancesTotal++
			if in.State == "running" {
				t.InstancesUp++
			}
			t.Restarts += in.Restarts
			t.RestartsLastHour += in.RestartsLastHour
			t.MemoryBytes += in.MemoryBytes
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

// quantile estimates the q-quantile of cumulative buckets (the last one
// +Inf) by linear interpolation inside the bucket it falls in, as
// Prometheus' histogram_quantile does. Beyond the last finite bound it
// answers that bound.
func quantile(q float64, bs []bucket) float64 {
	total := bs[len(bs)-1].count
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return lower
			}
			if b.count == below {
				return b.le
			}
			return lower + (b.le-lower)*(rank-below)/(b.count-below)
		}
		lower, below = b.le, b.count
	}
	return lower
}
