package metrics

import (
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// recentWindow is what "restarts in the last hour" means.
const recentWindow = time.Hour

var (
	instLabels = []string{"app", "kind", "process"}

	descState = prometheus.NewDesc("piku_instance_state",
		"1 for the state the process is in, 0 for the others.", append(instLabels, "state"), nil)
	descRestarts = prometheus.NewDesc("piku_instance_restarts_total",
		"Times the process was started again after it exited.", instLabels, nil)
	descRecent = prometheus.NewDesc("piku_instance_restarts_last_hour",
		"Restarts of the process within the last hour.", instLabels, nil)
	descExit = prometheus.NewDesc("piku_instance_last_exit_code",
		"Exit code of the process's last exit; -1 when a signal ended it. Absent before the first exit.", instLabels, nil)
	descUptime = prometheus.NewDesc("piku_instance_uptime_seconds",
		"How long the running process has been up. Absent while none runs.", instLabels, nil)
	descRSS = prometheus.NewDesc("piku_instance_resident_memory_bytes",
		"Resident memory of the running process.", instLabels, nil)
	descCPU = prometheus.NewDesc("piku_instance_cpu_seconds_total",
		"CPU time the running process (and the children it waited for) used.", instLabels, nil)
	descNice = prometheus.NewDesc("piku_instance_nice",
		"Nice value of the running process (PIKU_NICE; higher is a lower CPU priority). Absent while none runs.", instLabels, nil)
	descHealth = prometheus.NewDesc("piku_instance_health_check_failures",
		"Health checks in a row the running process failed; 0 once one passes. Absent while none runs.", instLabels, nil)

	cronLabels = []string{"app", "entry"}

	descCronLast = prometheus.NewDesc("piku_cron_last_run_timestamp_seconds",
		"When the entry's last run started (Unix time).", cronLabels, nil)
	descCronDur = prometheus.NewDesc("piku_cron_last_run_duration_seconds",
		"How long the entry's last finished run took.", cronLabels, nil)
	descCronExit = prometheus.NewDesc("piku_cron_last_exit_code",
		"Exit code of the entry's last finished run; -1 when a signal ended it.", cronLabels, nil)

	descMode = prometheus.NewDesc("piku_isolation_mode",
		"1 for how apps' limits are enforced: cgroup v2, cgroup v1, or best effort (memory, CPU and process limits not enforced).", []string{"mode"}, nil)
	descAppMem = prometheus.NewDesc("piku_app_memory_bytes",
		"Memory the app's processes use, as its cgroup counts it against the limit.", []string{"app"}, nil)
	descAppMemMax = prometheus.NewDesc("piku_app_memory_limit_bytes",
		"The app's hard memory limit (PIKU_MEMORY_MAX) as its cgroup enforces it. Absent when none is enforced.", []string{"app"}, nil)
	descAppMemHigh = prometheus.NewDesc("piku_app_memory_high_bytes",
		"The app's soft memory limit (PIKU_MEMORY_HIGH) as its cgroup holds it. Absent when none is.", []string{"app"}, nil)
	descAppPids = prometheus.NewDesc("piku_app_processes",
		"Processes and threads of the app, as its cgroup counts them.", []string{"app"}, nil)
	descAppPidsMax = prometheus.NewDesc("piku_app_processes_limit",
		"The app's process limit (PIKU_PIDS_MAX) as its cgroup enforces it. Absent when none is enforced.", []string{"app"}, nil)
	descAppCPU = prometheus.NewDesc("piku_app_cpu_seconds_total",
		"CPU time the app's processes used, as its cgroup counts it.", []string{"app"}, nil)
	descAppCPUWeight = prometheus.NewDesc("piku_app_cpu_weight",
		"The app's CPU weight against other apps (PIKU_CPU_WEIGHT; 100 is the default).", []string{"app"}, nil)
	descAppCPUMax = prometheus.NewDesc("piku_app_cpu_limit_cpus",
		"CPUs the app may use at most (PIKU_CPU_MAX). Absent when unlimited.", []string{"app"}, nil)
	descAppNoFile = prometheus.NewDesc("piku_app_open_files_limit",
		"Open files each of the app's processes may have (RLIMIT_NOFILE of a running one).", []string{"app"}, nil)
	descAppCore = prometheus.NewDesc("piku_app_core_file_size_limit_bytes",
		"Core file size each of the app's processes may write (PIKU_CORE_MAX; RLIMIT_CORE of a running one); +Inf for no limit. Absent while none runs.", []string{"app"}, nil)
	descAppOOM = prometheus.NewDesc("piku_app_oom_kills_total",
		"The app's processes the kernel's OOM killer ended at its memory limit.", []string{"app"}, nil)

	descAppOutputDropped = prometheus.NewDesc("piku_app_output_dropped_bytes_total",
		"Bytes of the app's output not written to its logs because it wrote more than its rate (PIKU_LOG_RATE).", []string{"app"}, nil)

	descCertExpiry = prometheus.NewDesc("piku_certificate_expiry_timestamp_seconds",
		"When the certificate the proxy serves for the host expires (Unix time).", []string{"host"}, nil)
)

// stateCollector reads Registry.src at every scrape.
type stateCollector struct{ r *Registry }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descRestarts, descRecent, descExit, descUptime, descRSS,
		descCPU, descNice, descHealth, descCronLast, descCronDur, descCronExit, descCertExpiry,
		descMode, descAppMem, descAppMemMax, descAppMemHigh, descAppPids, descAppPidsMax, descAppCPU, descAppCPUWeight,
		descAppCPUMax, descAppNoFile, descAppCore, descAppOOM, descAppOutputDropped} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	src, now := c.r.src, time.Now()
	if src.Instances != nil {
		seen := map[[3]string]bool{}
		for _, in := range src.Instances() {
			l := []string{in.App, in.Kind, in.Kind + "." + strconv.Itoa(in.N)}
			key := [3]string(l)
			if seen[key] {
				continue // a rollout's new generation beside the live one: the live one counts
			}
			seen[key] = true
			for _, s := range States {
				v := 0.0
				if s == in.State {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, append(l, s)...)
			}
			ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(in.Restarts), l...)
			ch <- prometheus.MustNewConstMetric(descRecent, prometheus.GaugeValue, float64(recentCount(in.RecentRestarts, now)), l...)
			if in.Exited {
				ch <- prometheus.MustNewConstMetric(descExit, prometheus.GaugeValue, float64(in.ExitCode), l...)
			}
			if in.Running {
				ch <- prometheus.MustNewConstMetric(descUptime, prometheus.GaugeValue, now.Sub(in.StartedAt).Seconds(), l...)
				ch <- prometheus.MustNewConstMetric(descRSS, prometheus.GaugeValue, float64(in.RSS), l...)
				ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, in.CPU, l...)
				ch <- prometheus.MustNewConstMetric(descHealth, prometheus.GaugeValue, float64(in.HealthFailures), l...)
				if in.HasNice {
					ch <- prometheus.MustNewConstMetric(descNice, prometheus.GaugeValue, float64(in.Nice), l...)
				}
			}
		}
	}
	if src.Cron != nil {
		for _, j := range src.Cron() {
			if j.Started.IsZero() {
				continue
			}
			ch <- prometheus.MustNewConstMetric(descCronLast, prometheus.GaugeValue, float64(j.Started.UnixNano())/1e9, j.App, j.Entry)
			if j.Ended {
				ch <- prometheus.MustNewConstMetric(descCronDur, prometheus.GaugeValue, j.Duration.Seconds(), j.App, j.Entry)
				ch <- prometheus.MustNewConstMetric(descCronExit, prometheus.GaugeValue, float64(j.ExitCode), j.App, j.Entry)
			}
		}
	}
	if src.Isolation != nil {
		mode := src.Isolation()
		for _, m := range []string{"cgroup v2", "cgroup v1", "best effort"} {
			v := 0.0
			if m == mode {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descMode, prometheus.GaugeValue, v, m)
		}
	}
	if src.Limits != nil {
		for _, l := range src.Limits() {
			for _, m := range []struct {
				d *prometheus.Desc
				t prometheus.ValueType
				v float64
			}{
				{descAppMem, prometheus.GaugeValue, float64(l.MemoryBytes)},
				{descAppMemMax, prometheus.GaugeValue, float64(l.MemoryMax)},
				{descAppMemHigh, prometheus.GaugeValue, float64(l.MemoryHigh)},
				{descAppPids, prometheus.GaugeValue, float64(l.Pids)},
				{descAppPidsMax, prometheus.GaugeValue, float64(l.PidsMax)},
				{descAppCPU, prometheus.CounterValue, l.CPUSeconds},
				{descAppCPUWeight, prometheus.GaugeValue, float64(l.CPUWeight)},
				{descAppCPUMax, prometheus.GaugeValue, l.CPUMax},
				{descAppNoFile, prometheus.GaugeValue, float64(l.OpenFiles)},
			} {
				if m.v > 0 {
					ch <- prometheus.MustNewConstMetric(m.d, m.t, m.v, l.App)
				}
			}
			if l.CoreMax != nil {
				v := float64(*l.CoreMax)
				if *l.CoreMax < 0 {
					v = math.Inf(1)
				}
				ch <- prometheus.MustNewConstMetric(descAppCore, prometheus.GaugeValue, v, l.App)
			}
			// The counters are there from the start, at 0, so that
			// their first increase shows.
			ch <- prometheus.MustNewConstMetric(descAppOOM, prometheus.CounterValue, float64(l.OOMKills), l.App)
			ch <- prometheus.MustNewConstMetric(descAppOutputDropped, prometheus.CounterValue, float64(l.OutputDropped), l.App)
		}
	}
	if src.Certificates != nil {
		for host, exp := range src.Certificates() {
			ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(exp.Unix()), host)
		}
	}
}

// recentCount is how many of times fall within the hour before now.
func recentCount(times []time.Time, now time.Time) int {
	n := 0
	for _, t := range times {
		if now.Sub(t) <= recentWindow {
			n++
		}
	}
	return n
}
