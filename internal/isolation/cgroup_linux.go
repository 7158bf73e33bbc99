package isolation

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Mode is how an app's limits are enforced on this machine.
type Mode string

// The modes, from the strongest.
const (
	// ModeCgroupV2: a cgroup per app in the daemon's delegated cgroup v2
	// subtree.
	ModeCgroupV2 Mode = "cgroup v2"
	// ModeCgroupV1: a cgroup per app in each cgroup v1 controller the
	// daemon may write (memory, cpu, pids).
	ModeCgroupV1 Mode = "cgroup v1"
	// ModeBestEffort: no cgroup; only the limits per process (open files,
	// core file size, nice) and a memory watchdog.
	ModeBestEffort Mode = "best effort"
)

// v1Controllers are the cgroup v1 controllers piku uses.
var v1Controllers = []string{"memory", "cpu", "pids"}

// v1Accounting are the cgroup v1 controllers piku only reads from (the
// CPU time an app used), where the daemon may write them; without them
// the limits hold all the same.
var v1Accounting = []string{"cpuacct"}

// Cgroups places apps' processes in cgroups of their own and sets their
// limits there. The zero value, and a machine without a cgroup the
// daemon may write, is ModeBestEffort.
type Cgroups struct {
	mode Mode
	// v1 maps each usable v1 controller to the directory holding the
	// apps' cgroups.
	v1 map[string]string
	// v2 is the directory holding the apps' cgroups in v2 mode.
	v2 string
	// Why says why a stronger mode was not used.
	Why string
}

// Mode returns how limits are enforced.
func (c *Cgroups) Mode() Mode {
	if c == nil || c.mode == "" {
		return ModeBestEffort
	}
	return c.mode
}

// Controllers lists the controllers limits are set with.
func (c *Cgroups) Controllers() []string {
	switch c.Mode() {
	case ModeCgroupV1:
		var out []string
		for _, name := range v1Controllers {
			if _, ok := c.v1[name]; ok {
				out = append(out, name)
			}
		}
		return out
	case ModeCgroupV2:
		return []string{"memory", "cpu", "pids"}
	}
	return nil
}

// DetectCgroups finds the cgroups the daemon may use for the apps of the
// PIKU_ROOT root, below its own cgroups (so whatever limits the daemon
// itself is under still apply to its apps), under fsRoot (the cgroup
// file systems' mount point, /sys/fs/cgroup). The directory is named after
// root, so two daemons of different roots never share one, and a daemon
// that restarts finds its apps' cgroups again.
func DetectCgroups(fsRoot, root string) *Cgroups {
	name := cgroupName(root)
	own, err := ownCgroups()
	if err != nil {
		return &Cgroups{Why: err.Error()}
	}
	// cgroup v2 with the controllers delegated to the daemon's cgroup.
	if p, ok := own[""]; ok {
		if c, err := detectV2(filepath.Join(fsRoot, p), name); err == nil {
			return c
		}
	}
	c := &Cgroups{v1: map[string]string{}}
	var why []string
	for _, ctrl := range v1Controllers {
		p, ok := own[ctrl]
		if !ok {
			why = append(why, ctrl+": no cgroup v1 hierarchy")
			continue
		}
		dir := filepath.Join(fsRoot, ctrl, p, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			why = append(why, ctrl+": "+err.Error())
			continue
		}
		c.v1[ctrl] = dir
	}
	if len(c.v1) > 0 {
		for _, ctrl := range v1Accounting {
			if p, ok := own[ctrl]; ok {
				dir := filepath.Join(fsRoot, ctrl, p, name)
				if os.MkdirAll(dir, 0o755) == nil {
					c.v1[ctrl] = dir
				}
			}
		}
		c.mode = ModeCgroupV1
		c.Why = strings.Join(why, "; ")
		return c
	}
	return &Cgroups{Why: strings.Join(why, "; ")}
}

// cgroupName is the directory of the apps' cgroups of the PIKU_ROOT root.
func cgroupName(root string) string {
	sum := sha256.Sum256([]byte(root))
	return "piku-" + hex.EncodeToString(sum[:4])
}

// JoinAppCgroups moves the calling process into the cgroups the daemon
// (pid daemonPID) keeps for app, below its own cgroups under fsRoot
// (/sys/fs/cgroup), so that it and all it starts count against the
// app's limits, as `piku run` does. Cgroups the daemon has not made
// (best-effort mode, an app not started yet) are left out; it returns
// the cgroups joined.
func JoinAppCgroups(fsRoot, root, app string, daemonPID int) ([]string, error) {
	own, err := procCgroups("/proc/" + strconv.Itoa(daemonPID) + "/cgroup")
	if err != nil {
		return nil, err
	}
	name := cgroupName(root)
	var dirs []string
	if p, ok := own[""]; ok {
		// The daemon moved itself to the leaf "daemon" of its
		// delegated cgroup; the apps' cgroups are beside it.
		dirs = append(dirs, filepath.Join(fsRoot, filepath.Dir(p), name, app))
	}
	for _, ctrl := range slices.Concat(v1Controllers, v1Accounting) {
		if p, ok := own[ctrl]; ok {
			dirs = append(dirs, filepath.Join(fsRoot, ctrl, p, name, app))
		}
	}
	var joined []string
	for _, dir := range dirs {
		procs := filepath.Join(dir, "cgroup.procs")
		if _, err := os.Stat(procs); err != nil {
			continue
		}
		if err := os.WriteFile(procs, []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			return joined, fmt.Errorf("app %q: joining its cgroup %s: %w", app, dir, err)
		}
		joined = append(joined, dir)
	}
	return joined, nil
}

// detectV2 uses the delegated cgroup v2 directory base when it offers the
// memory, cpu and pids controllers and the daemon may write it: the
// daemon moves itself to a leaf of its own (base/daemon), since a cgroup
// with processes cannot give controllers to its children, and enables the
// controllers for the apps' cgroups (base/NAME/APP).
func detectV2(base, name string) (*Cgroups, error) {
	b, err := os.ReadFile(filepath.Join(base, "cgroup.controllers"))
	if err != nil {
		return nil, err
	}
	have := strings.Fields(string(b))
	for _, want := range []string{"memory", "cpu", "pids"} {
		if !contains(have, want) {
			return nil, fmt.Errorf("cgroup v2: controller %s not delegated to %s", want, base)
		}
	}
	leaf := filepath.Join(base, "daemon")
	if err := os.MkdirAll(leaf, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return nil, err
	}
	apps := filepath.Join(base, name)
	if err := os.MkdirAll(apps, 0o755); err != nil {
		return nil, err
	}
	for _, dir := range []string{base, apps} {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory +cpu +pids"), 0); err != nil {
			return nil, fmt.Errorf("cgroup v2: enabling controllers in %s: %w", dir, err)
		}
	}
	return &Cgroups{mode: ModeCgroupV2, v2: apps}, nil
}

// ownCgroups returns the calling process's cgroup path in each v1
// controller, and in cgroup v2 under the key "".
func ownCgroups() (map[string]string, error) { return procCgroups("/proc/self/cgroup") }

// procCgroups reads a /proc/PID/cgroup file as ownCgroups does.
func procCgroups(file string) (map[string]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			out[ctrl] = parts[2]
		}
	}
	return out, sc.Err()
}

// Apply creates app's cgroups, if they are not there yet, and sets l in
// them; limits of a running app change at once. It returns the
// cgroup.procs files the app's processes join, nil in best-effort mode.
func (c *Cgroups) Apply(app string, l Limits) ([]string, error) {
	switch c.Mode() {
	case ModeCgroupV2:
		dir := filepath.Join(c.v2, app)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("app %q: cgroup: %w", app, err)
		}
		if err := writeV2(dir, l); err != nil {
			return nil, fmt.Errorf("app %q: cgroup: %w", app, err)
		}
		return []string{filepath.Join(dir, "cgroup.procs")}, nil
	case ModeCgroupV1:
		var procs []string
		for _, ctrl := range slices.Concat(v1Controllers, v1Accounting) {
			base, ok := c.v1[ctrl]
			if !ok {
				continue
			}
			dir := filepath.Join(base, app)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("app %q: cgroup: %w", app, err)
			}
			if err := writeV1(ctrl, dir, l); err != nil {
				return nil, fmt.Errorf("app %q: cgroup: %w", app, err)
			}
			procs = append(procs, filepath.Join(dir, "cgroup.procs"))
		}
		return procs, nil
	}
	return nil, nil
}

// Remove deletes app's cgroups once no process is left in them; a cgroup
// still in use is left alone.
func (c *Cgroups) Remove(app string) {
	switch c.Mode() {
	case ModeCgroupV2:
		_ = os.Remove(filepath.Join(c.v2, app))
	case ModeCgroupV1:
		for _, base := range c.v1 {
			_ = os.Remove(filepath.Join(base, app))
		}
	}
}

// Kill ends every process left in app's cgroups, those that left their
// process group and cleared their environment included, so that nothing
// of a stopped or destroyed app escapes: cgroup v2 writes cgroup.kill
// (Linux 5.14), which kills them all at once; otherwise each pid in
// cgroup.procs gets SIGKILL, again until none is left (a process forking
// while it is being killed adds one), at most maxKillRounds times.
func (c *Cgroups) Kill(app string) {
	var dirs []string
	switch c.Mode() {
	case ModeCgroupV2:
		dir := filepath.Join(c.v2, app)
		if f, err := os.OpenFile(filepath.Join(dir, "cgroup.kill"), os.O_WRONLY, 0); err == nil {
			_, err = f.WriteString("1")
			if cerr := f.Close(); err == nil && cerr == nil {
				return
			}
		}
		dirs = []string{dir}
	case ModeCgroupV1:
		for _, ctrl := range v1Controllers {
			if base, ok := c.v1[ctrl]; ok {
				dirs = append(dirs, filepath.Join(base, app))
			}
		}
	}
	for range maxKillRounds {
		n := 0
		for _, dir := range dirs {
			b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
					if syscall.Kill(pid, syscall.SIGKILL) == nil {
						n++
					}
				}
			}
		}
		if n == 0 {
			return
		}
	}
}

// maxKillRounds bounds Kill's passes over cgroup.procs.
const maxKillRounds = 16

// Close removes every app's cgroup that no process is left in, and the
// daemon's directory of them if it is then empty: the daemon calls it once
// it has stopped its apps.
func (c *Cgroups) Close() {
	var bases []string
	switch c.Mode() {
	case ModeCgroupV2:
		bases = []string{c.v2}
	case ModeCgroupV1:
		for _, base := range c.v1 {
			bases = append(bases, base)
		}
	}
	for _, base := range bases {
		ents, _ := os.ReadDir(base)
		for _, e := range ents {
			if e.IsDir() {
				_ = os.Remove(filepath.Join(base, e.Name()))
			}
		}
		_ = os.Remove(base)
	}
}

// writeV2 sets l in the cgroup v2 directory dir; a zero limit is "max".
func writeV2(dir string, l Limits) error {
	files := []struct{ name, value string }{
		{"memory.max", maxOr(l.MemoryMax)},
		{"memory.high", maxOr(l.MemoryHigh)},
		{"cpu.weight", strconv.Itoa(orDefault(l.CPUWeight, 100))},
		{"cpu.max", cpuMax(l.CPUMax, "max") + " 100000"},
		{"pids.max", maxOr(int64(l.PidsMax))},
	}
	return writeFiles(dir, files)
}

// writeV1 sets l in dir, a cgroup of the v1 controller ctrl.
func writeV1(ctrl, dir string, l Limits) error {
	var files []struct{ name, value string }
	switch ctrl {
	case "memory":
		files = append(files,
			struct{ name, value string }{"memory.limit_in_bytes", minusOneOr(l.MemoryMax)},
			struct{ name, value string }{"memory.soft_limit_in_bytes", minusOneOr(l.MemoryHigh)})
	case "cpu":
		// cpu.shares is 1024 for the default weight of 100.
		files = append(files,
			struct{ name, value string }{"cpu.shares", strconv.Itoa(max(2, orDefault(l.CPUWeight, 100)*1024/100))},
			struct{ name, value string }{"cpu.cfs_period_us", "100000"},
			struct{ name, value string }{"cpu.cfs_quota_us", cpuMax(l.CPUMax, "-1")})
	case "pids":
		files = append(files, struct{ name, value string }{"pids.max", maxOr(int64(l.PidsMax))})
	}
	return writeFiles(dir, files)
}

func writeFiles(dir string, files []struct{ name, value string }) error {
	var errs []error
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.value), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("setting %s to %s: %w", f.name, f.value, err))
		}
	}
	return errors.Join(errs...)
}

func maxOr(n int64) string {
	if n <= 0 {
		return "max"
	}
	return strconv.FormatInt(n, 10)
}

func minusOneOr(n int64) string {
	if n <= 0 {
		return "-1"
	}
	return strconv.FormatInt(n, 10)
}

func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// cpuMax is the quota in microseconds per 100ms period for cpus CPUs, or
// none when cpus is 0.
func cpuMax(cpus float64, none string) string {
	if cpus <= 0 {
		return none
	}
	return strconv.FormatInt(int64(cpus*100000), 10)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
