package isolation

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/piku/piku/internal/procgroup"
)

// TestCgroupV2Files sets limits in a tree laid out as the kernel lays out
// a delegated cgroup v2 subtree: no delegated v2 controller is available
// on the machines the tests run on.
func TestCgroupV2Files(t *testing.T) {
	base := t.TempDir()
	c := &Cgroups{mode: ModeCgroupV2, v2: base}
	for _, tc := range []struct {
		l    Limits
		want map[string]string
	}{
		{Limits{MemoryMax: 512 << 20, MemoryHigh: 256 << 20, CPUWeight: 50, CPUMax: 0.5, PidsMax: 64}, map[string]string{
			"memory.max": "536870912", "memory.high": "268435456", "cpu.weight": "50", "cpu.max": "50000 100000", "pids.max": "64"}},
		// Limits taken away are "max" again, in place.
		{Limits{}, map[string]string{"memory.max": "max", "memory.high": "max", "cpu.weight": "100", "cpu.max": "max 100000", "pids.max": "max"}},
	} {
		procs, err := c.Apply("blog", tc.l)
		if err != nil {
			t.Fatal(err)
		}
		if len(procs) != 1 || procs[0] != filepath.Join(base, "blog", "cgroup.procs") {
			t.Errorf("procs = %q", procs)
		}
		for name, want := range tc.want {
			b, err := os.ReadFile(filepath.Join(base, "blog", name))
			if err != nil || string(b) != want {
				t.Errorf("%v: %s = %q, %v, want %q", tc.l, name, b, err, want)
			}
		}
	}
}

// TestCgroupV1 enforces a process limit with the machine's cgroup v1 pids
// controller: a shell that joins the app's cgroup cannot fork beyond it.
func TestCgroupV1(t *testing.T) {
	c := DetectCgroups("/sys/fs/cgroup", t.TempDir())
	if c.Mode() != ModeCgroupV1 || !contains(c.Controllers(), "pids") {
		t.Skipf("no writable cgroup v1 pids controller here (mode %s: %s)", c.Mode(), c.Why)
	}
	t.Cleanup(c.Close)
	procs, err := c.Apply("bomb", Limits{PidsMax: 16, MemoryMax: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Remove("bomb") })
	if b, err := os.ReadFile(filepath.Join(c.v1["pids"], "bomb", "pids.max")); err != nil || strings.TrimSpace(string(b)) != "16" {
		t.Fatalf("pids.max = %q, %v", b, err)
	}
	// The shell joins the cgroup, then python forks 40 children that wait
	// (a shell dies at its first failed fork): at most 16 processes fit,
	// the forker included. It says how many it made and waits to be
	// stopped.
	cmd := exec.Command("/bin/sh", "-c", `exec python3 -c '
import os, signal, sys
n = 0
try:
    for i in range(40):
        if os.fork() == 0:
            signal.pause()
            os._exit(0)
        n += 1
except OSError:
    pass
print(n, flush=True)
signal.pause()
'`)
	cmd.Env = append(os.Environ(), procgroup.CgroupProcsVar+"="+strings.Join(procs, ":"))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	p, err := procgroup.Start(cmd)
	_ = w.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(0, nil)
	var made int
	if _, err := fmt.Fscan(r, &made); err != nil {
		t.Fatal(err)
	}
	if made >= 16 || made < 1 {
		t.Errorf("forked %d children, want 1 to 15 under a limit of 16", made)
	}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/cgroup")
	if !strings.Contains(string(b), "/bomb\n") {
		t.Errorf("the shell is not in the app's cgroups:\n%s", b)
	}
	b, _ = os.ReadFile(filepath.Join(c.v1["pids"], "bomb", "pids.current"))
	if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || n > 16 || n < 2 {
		t.Errorf("pids.current = %q, want 2 to 16", b)
	}
	b, _ = os.ReadFile(filepath.Join(c.v1["pids"], "bomb", "pids.events"))
	if !strings.HasPrefix(string(b), "max ") || strings.HasPrefix(string(b), "max 0") {
		t.Errorf("pids.events = %q: no fork was refused", b)
	}
}

// TestProbe checks what Probe says against what DetectCgroups does on
// this machine, and the Landlock answer against the kernel's own list.
func TestProbe(t *testing.T) {
	r := Probe("/sys/fs/cgroup")
	c := DetectCgroups("/sys/fs/cgroup", t.TempDir())
	t.Cleanup(c.Close)
	if r.Mode != c.Mode() || strings.Join(r.Controllers, ",") != strings.Join(c.Controllers(), ",") {
		t.Errorf("Probe says %s %v, DetectCgroups %s %v", r.Mode, r.Controllers, c.Mode(), c.Controllers())
	}
	hasLSM := contains(r.LSMs, "landlock")
	if r.LSMs != nil && hasLSM != (r.LandlockABI > 0) {
		t.Errorf("landlock in the LSM list: %v, ABI %d (%s)", hasLSM, r.LandlockABI, r.LandlockWhy)
	}
	if r.LandlockABI == 0 && r.LandlockWhy == "" {
		t.Error("no Landlock ABI and no reason")
	}
	t.Logf("%+v", r)
}

// TestCgroupKillV2File: in cgroup v2, Kill writes the app's cgroup.kill
// (a tree laid out as the kernel lays one out: no delegated v2 controller
// exists where the tests run).
func TestCgroupKillV2File(t *testing.T) {
	base := t.TempDir()
	c := &Cgroups{mode: ModeCgroupV2, v2: base}
	if _, err := c.Apply("blog", Limits{}); err != nil {
		t.Fatal(err)
	}
	kill := filepath.Join(base, "blog", "cgroup.kill")
	if err := os.WriteFile(kill, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.Kill("blog")
	if b, err := os.ReadFile(kill); err != nil || string(b) != "1" {
		t.Errorf("cgroup.kill = %q, %v, want 1", b, err)
	}
}

// TestCgroupKillV1 stops an app whose process escaped its group (a new
// session, an empty environment): stopping the group misses it, Kill
// ends it through the app's cgroup v1 cgroup.procs.
func TestCgroupKillV1(t *testing.T) {
	c := DetectCgroups("/sys/fs/cgroup", t.TempDir())
	if c.Mode() != ModeCgroupV1 || !contains(c.Controllers(), "pids") {
		t.Skipf("no writable cgroup v1 pids controller here (mode %s: %s)", c.Mode(), c.Why)
	}
	t.Cleanup(c.Close)
	procs, err := c.Apply("esc", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Remove("esc") })
	// The escapee says so once it has left the group and its
	// environment (the shell's word alone would race with its setsid).
	cmd := exec.Command("/bin/sh", "-c", `(setsid env -i /bin/sh -c 'echo escaped; exec sleep 1000' &); exec sleep 1000`)
	cmd.Env = append(os.Environ(), procgroup.CgroupProcsVar+"="+strings.Join(procs, ":"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := procgroup.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "escaped\n" {
		t.Fatalf("the shell said %q", line)
	}
	pidsProcs := filepath.Join(c.v1["pids"], "esc", "cgroup.procs")
	p.Stop(time.Second, nil)
	left := cgroupPids(t, pidsProcs)
	if len(left) == 0 {
		t.Fatal("nothing escaped the group: the test shows nothing")
	}
	c.Kill("esc")
	// SIGKILL cannot be ignored: the escaped processes leave the cgroup
	// as they exit, which the test waits for.
	deadline := time.Now().Add(10 * time.Second)
	for len(cgroupPids(t, pidsProcs)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still in the app's cgroup after Kill: %v (before: %v)", cgroupPids(t, pidsProcs), left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func cgroupPids(t *testing.T, procs string) []string {
	t.Helper()
	b, err := os.ReadFile(procs)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}
