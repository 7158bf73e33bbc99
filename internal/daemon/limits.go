package daemon

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/isolation"
	"github.com/piku/piku/internal/metrics"
	"github.com/piku/piku/internal/procgroup"
	"github.com/piku/piku/internal/supervisor"
)

// noteLimits remembers the limits app's ENV asked for, as its cgroups now
// hold them.
func (d *Daemon) noteLimits(app string, l isolation.Limits, logRate int64) {
	switch {
	case logRate == 0:
		logRate = supervisor.DefaultLogRate
	case logRate < 0:
		logRate = 0
	}
	d.asked.Store(app, asked{limits: l, logRate: logRate})
}

// asked is what an app's ENV set at its last plan: its limits, and the
// rate of its output copied to its logs (0: none).
type asked struct {
	limits  isolation.Limits
	logRate int64
}

// appLimits is what `piku ps` shows of app's limits: those asked for and
// what the kernel enforces and counts; nil before the app was planned.
func (d *Daemon) appLimits(app string, insts []supervisor.InstanceStatus) *control.Limits {
	v, ok := d.asked.Load(app)
	if !ok {
		return nil
	}
	a := v.(asked)
	u := d.cgroups.Usage(app)
	if u.Mode == isolation.ModeBestEffort && a.limits.MemoryMax > 0 {
		// The watchdog's limit, and what it saw at its last check.
		u.MemoryMax = a.limits.MemoryMax
		u.OOMKills, u.MemoryBytes = d.watchdog.Kills(app)
	}
	return &control.Limits{
		Mode: string(u.Mode), Asked: a.limits.String(),
		MemoryBytes: u.MemoryBytes, MemoryMax: u.MemoryMax, MemoryHigh: u.MemoryHigh,
		Pids: u.Pids, PidsMax: u.PidsMax,
		CPUSeconds: u.CPUSeconds, CPUWeight: u.CPUWeight, CPUMax: u.CPUMax,
		OpenFiles: openFilesOf(insts), CoreMax: coreOf(insts), Nice: niceOf(insts), OOMKills: u.OOMKills,
		OutputDropped: d.sup.OutputDropped(app), OutputRate: a.logRate,
	}
}

// coreOf is the core file size limit of the first running process of
// insts (-1: unlimited), nil when none runs.
func coreOf(insts []supervisor.InstanceStatus) *int64 {
	for _, in := range insts {
		if in.PID > 0 {
			if n, ok := procgroup.CoreLimit(in.PID); ok {
				return &n
			}
		}
	}
	return nil
}

// niceOf is the nice value of each kind's first running process in
// insts, nil when none runs.
func niceOf(insts []supervisor.InstanceStatus) map[string]int {
	var out map[string]int
	for _, in := range insts {
		if _, seen := out[in.Kind]; seen || in.PID == 0 {
			continue
		}
		if n, ok := procgroup.Nice(in.PID); ok {
			if out == nil {
				out = map[string]int{}
			}
			out[in.Kind] = n
		}
	}
	return out
}

// metricLimits lists the limits and use of every deployed app.
func (d *Daemon) metricLimits() []metrics.AppLimits {
	apps, err := d.root.Apps()
	if err != nil {
		return nil
	}
	out := make([]metrics.AppLimits, 0, len(apps))
	for _, app := range apps {
		l := d.appLimits(app, d.sup.Status(app))
		if l == nil {
			continue
		}
		out = append(out, metrics.AppLimits{
			App: app, MemoryBytes: l.MemoryBytes, MemoryMax: l.MemoryMax, MemoryHigh: l.MemoryHigh,
			Pids: l.Pids, PidsMax: l.PidsMax, CPUSeconds: l.CPUSeconds, CPUWeight: l.CPUWeight, CPUMax: l.CPUMax,
			OpenFiles: l.OpenFiles, CoreMax: l.CoreMax, OOMKills: l.OOMKills, OutputDropped: l.OutputDropped,
		})
	}
	return out
}

// openFilesOf is the open files limit (the soft RLIMIT_NOFILE) of the
// first running process of insts, 0 when none runs.
func openFilesOf(insts []supervisor.InstanceStatus) int64 {
	for _, in := range insts {
		if in.PID > 0 {
			if n := openFilesLimit(in.PID); n > 0 {
				return n
			}
		}
	}
	return 0
}

// openFilesLimit reads the soft open files limit of pid from
// /proc/PID/limits; 0 when it cannot be read or is unlimited.
func openFilesLimit(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Max open files"); ok {
			if fs := strings.Fields(rest); len(fs) > 0 {
				n, _ := strconv.ParseInt(fs[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// oomCounter tells the supervisor of the kills at an app's memory limit:
// the kernel's in its memory cgroup, or the watchdog's in best-effort
// mode.
type oomCounter struct{ d *Daemon }

func (o oomCounter) OOMKills(app string) (kills, limit int64) {
	if o.d.cgroups.Mode() != isolation.ModeBestEffort {
		return o.d.cgroups.OOMKills(app)
	}
	if v, ok := o.d.asked.Load(app); ok {
		limit = v.(asked).limits.MemoryMax
	}
	kills, _ = o.d.watchdog.Kills(app)
	return kills, limit
}

var _ supervisor.OOMCounter = oomCounter{}
