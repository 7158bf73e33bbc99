package isolation

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/piku/piku/internal/procgroup"
)

// TestUsageV2Files reads use, limits and OOM kills from a tree laid out as
// the kernel lays out a delegated cgroup v2 subtree (no delegated v2
// controller is available on the machines the tests run on).
func TestUsageV2Files(t *testing.T) {
	base := t.TempDir()
	c := &Cgroups{mode: ModeCgroupV2, v2: base}
	if _, err := c.Apply("blog", Limits{MemoryMax: 512 << 20, CPUWeight: 50, CPUMax: 1.5, PidsMax: 64}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "blog")
	for name, text := range map[string]string{
		"memory.current": "104857600\n",
		"memory.events":  "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n",
		"pids.current":   "7\n",
		"cpu.stat":       "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := Usage{Mode: ModeCgroupV2, MemoryBytes: 100 << 20, MemoryMax: 512 << 20, Pids: 7, PidsMax: 64,
		CPUSeconds: 2.5, CPUWeight: 50, CPUMax: 1.5, OOMKills: 2}
	if got := c.Usage("blog"); got != want {
		t.Errorf("Usage = %+v, want %+v", got, want)
	}
	if kills, limit := c.OOMKills("blog"); kills != 2 || limit != 512<<20 {
		t.Errorf("OOMKills = %d, %d, want 2, 512M", kills, limit)
	}
	// An app without a cgroup, and best-effort mode, tell nothing.
	if got := c.Usage("none"); got != (Usage{Mode: ModeCgroupV2}) {
		t.Errorf("Usage of an app without a cgroup = %+v", got)
	}
	if got := (&Cgroups{}).Usage("blog"); got != (Usage{Mode: ModeBestEffort}) {
		t.Errorf("best-effort Usage = %+v", got)
	}
}

// TestOOMKillV1 lets the kernel's OOM killer end a process that allocates
// 200M in an app's cgroup v1 memory cgroup limited to 64M: the process
// dies by SIGKILL and the app's OOM kill counter says so.
func TestOOMKillV1(t *testing.T) {
	c := DetectCgroups("/sys/fs/cgroup", t.TempDir())
	if c.Mode() != ModeCgroupV1 || c.v1["memory"] == "" {
		t.Skipf("no writable cgroup v1 memory controller here (mode %s: %s)", c.Mode(), c.Why)
	}
	t.Cleanup(c.Close)
	procs, err := c.Apply("hog", Limits{MemoryMax: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Kill("hog"); c.Remove("hog") })
	if kills, limit := c.OOMKills("hog"); kills != 0 || limit != 64<<20 {
		t.Fatalf("before: OOMKills = %d, %d, want 0, 64M", kills, limit)
	}
	cmd := exec.Command("/bin/sh", "-c", `exec python3 -c 'b = b"x" * (200 << 20); print("survived")'`)
	cmd.Env = append(os.Environ(), procgroup.CgroupProcsVar+"="+strings.Join(procs, ":"))
	p, err := procgroup.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if ws := p.Cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the hog ended with %s: want SIGKILL", p.Exit())
	}
	u := c.Usage("hog")
	if u.OOMKills != 1 || u.MemoryMax != 64<<20 {
		t.Errorf("after: Usage = %+v, want 1 OOM kill at 64M", u)
	}
}
