package isolation

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Usage is what an app's cgroups say about it: what it uses against the
// limits the kernel enforces, read back from the cgroup files (never from
// the app's settings), and how often the kernel acted at them. A field
// the mode cannot tell is 0; a limit of 0 is none.
type Usage struct {
	// Mode is how the limits are enforced; in ModeBestEffort no cgroup
	// limit holds and only the fields below that come from elsewhere
	// are set.
	Mode Mode `json:"mode"`
	// MemoryBytes is the memory the app's processes use now (page cache
	// included, as the kernel counts it against the limit); MemoryMax
	// the hard limit, MemoryHigh the soft one.
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	MemoryMax   int64 `json:"memory_max,omitempty"`
	MemoryHigh  int64 `json:"memory_high,omitempty"`
	// Pids is the number of processes and threads; PidsMax their limit.
	Pids    int64 `json:"pids,omitempty"`
	PidsMax int64 `json:"pids_max,omitempty"`
	// CPUSeconds is the CPU time the app's processes used since its
	// cgroup was made; CPUWeight its share against other apps (100 is
	// the default) and CPUMax the CPUs it may use at most.
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	CPUWeight  int     `json:"cpu_weight,omitempty"`
	CPUMax     float64 `json:"cpu_max,omitempty"`
	// OOMKills counts the app's processes the kernel's OOM killer ended
	// at the memory limit since the app's cgroup was made.
	OOMKills int64 `json:"oom_kills,omitempty"`
}

// Usage reads app's use and limits from its cgroups; in best-effort
// mode, or before the app has a cgroup, only Mode is set.
func (c *Cgroups) Usage(app string) Usage {
	u := Usage{Mode: c.Mode()}
	switch u.Mode {
	case ModeCgroupV2:
		dir := filepath.Join(c.v2, app)
		u.MemoryBytes = readInt(dir, "memory.current")
		u.MemoryMax = readInt(dir, "memory.max")
		u.MemoryHigh = readInt(dir, "memory.high")
		u.OOMKills = readKey(dir, "memory.events", "oom_kill")
		u.Pids = readInt(dir, "pids.current")
		u.PidsMax = readInt(dir, "pids.max")
		u.CPUSeconds = float64(readKey(dir, "cpu.stat", "usage_usec")) / 1e6
		u.CPUWeight = int(readInt(dir, "cpu.weight"))
		if f := strings.Fields(readFile(dir, "cpu.max")); len(f) == 2 {
			quota, _ := strconv.ParseFloat(f[0], 64)
			period, _ := strconv.ParseFloat(f[1], 64)
			if period > 0 {
				u.CPUMax = quota / period
			}
		}
	case ModeCgroupV1:
		if base, ok := c.v1["memory"]; ok {
			dir := filepath.Join(base, app)
			u.MemoryBytes = readInt(dir, "memory.usage_in_bytes")
			u.MemoryMax = v1Limit(readInt(dir, "memory.limit_in_bytes"))
			u.MemoryHigh = v1Limit(readInt(dir, "memory.soft_limit_in_bytes"))
			u.OOMKills = readKey(dir, "memory.oom_control", "oom_kill")
		}
		if base, ok := c.v1["pids"]; ok {
			dir := filepath.Join(base, app)
			u.Pids = readInt(dir, "pids.current")
			u.PidsMax = readInt(dir, "pids.max")
		}
		if base, ok := c.v1["cpu"]; ok {
			dir := filepath.Join(base, app)
			u.CPUWeight = int(readInt(dir, "cpu.shares") * 100 / 1024)
			quota, period := readInt(dir, "cpu.cfs_quota_us"), readInt(dir, "cpu.cfs_period_us")
			if quota > 0 && period > 0 {
				u.CPUMax = float64(quota) / float64(period)
			}
		}
		if base, ok := c.v1["cpuacct"]; ok {
			u.CPUSeconds = float64(readInt(filepath.Join(base, app), "cpuacct.usage")) / 1e9
		}
	}
	return u
}

// OOMKills returns how many of app's processes the kernel's OOM killer
// ended at its memory limit, and that limit in bytes (0: none, or no
// cgroup to tell).
func (c *Cgroups) OOMKills(app string) (kills, limit int64) {
	switch c.Mode() {
	case ModeCgroupV2:
		dir := filepath.Join(c.v2, app)
		return readKey(dir, "memory.events", "oom_kill"), readInt(dir, "memory.max")
	case ModeCgroupV1:
		if base, ok := c.v1["memory"]; ok {
			dir := filepath.Join(base, app)
			return readKey(dir, "memory.oom_control", "oom_kill"), v1Limit(readInt(dir, "memory.limit_in_bytes"))
		}
	}
	return 0, 0
}

// v1Limit is a cgroup v1 limit in bytes, 0 for the kernel's "none" (the
// largest page-aligned value).
func v1Limit(n int64) int64 {
	if n >= 1<<62 {
		return 0
	}
	return n
}

func readFile(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// readInt reads a file holding one number; "max", and what cannot be
// read, is 0.
func readInt(dir, name string) int64 {
	n, err := strconv.ParseInt(readFile(dir, name), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// readKey reads the number after key in a flat keyed file ("oom_kill 3").
func readKey(dir, name, key string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
