package procgroup

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDescribe(t *testing.T) {
	for _, tt := range []struct {
		script string
		want   string
	}{
		{"exit 0", "exit 0"},
		{"exit 3", "exit 3"},
		{"kill -TERM $$", "signal: terminated"},
		{"kill -KILL $$", "signal: killed"},
	} {
		p, err := Start(exec.Command("/bin/sh", "-c", tt.script))
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Exit(); got != tt.want {
			t.Errorf("%q: Exit() = %q, want %q", tt.script, got, tt.want)
		}
	}
	if got := Describe(nil, errors.New("no such file")); got != "no such file" {
		t.Errorf("Describe(nil, err) = %q", got)
	}
	if got := Describe(nil, nil); got != "unknown" {
		t.Errorf("Describe(nil, nil) = %q", got)
	}
}

// TestStopEndsTheWholeGroup starts a shell with a background child and
// checks that Stop leaves no member of the group behind.
func TestStopEndsTheWholeGroup(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "sleep 300 & echo started; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("started\n"))
	if _, err := out.Read(buf); err != nil || string(buf) != "started\n" {
		t.Fatalf("reading the child's output: %q, %v", buf, err)
	}
	if n := len(Members(p.PGID)); n != 2 {
		t.Fatalf("group %d has %d members, want 2 (sh and sleep)", p.PGID, n)
	}
	if killed := p.Stop(time.Hour, nil); killed {
		t.Error("Stop needed SIGKILL for a shell that ends on SIGTERM")
	}
	if got := p.Exit(); got != "signal: terminated" {
		t.Errorf("Exit() = %q, want signal: terminated", got)
	}
	waitGone(t, p.PGID)
}

// TestStopForce kills a group that ignores SIGTERM when force is closed,
// without waiting for the grace period.
func TestStopForce(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("ready\n"))
	if _, err := out.Read(buf); err != nil {
		t.Fatal(err)
	}
	force := make(chan struct{})
	close(force)
	if killed := p.Stop(time.Hour, force); !killed {
		t.Error("Stop did not report SIGKILL for a shell that ignores SIGTERM")
	}
	if got := p.Exit(); !strings.Contains(got, "killed") {
		t.Errorf("Exit() = %q, want signal: killed", got)
	}
	waitGone(t, p.PGID)
}

func TestSignalGroupRefusesOwnAndAll(t *testing.T) {
	for _, pgid := range []int{-1, 0, 1} {
		if err := SignalGroup(pgid, syscall.Signal(0)); err == nil {
			t.Errorf("SignalGroup(%d) = nil, want a refusal", pgid)
		}
	}
}

func TestStatAndRSS(t *testing.T) {
	p, err := Start(exec.Command("sleep", "300"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Hour, nil)
	pg, start, err := Stat(p.Pid())
	if err != nil || pg != p.PGID || start == 0 {
		t.Errorf("Stat = %d, %d, %v; want pgid %d and a start time", pg, start, err, p.PGID)
	}
	if RSS(p.Pid()) <= 0 {
		t.Error("RSS of a live process is 0")
	}
}

// waitGone waits until group pgid has no live member. A killed process that
// is not our child ends when the kernel gets to it; /proc is the only place
// that shows it, so this polls (until the test's own deadline).
func waitGone(t *testing.T, pgid int) {
	t.Helper()
	for len(Members(pgid)) > 0 {
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCPU(t *testing.T) {
	p, err := Start(exec.Command("sh", "-c", "while :; do :; done"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Hour, nil)
	// The loop needs the scheduler to give it a tick; wait for it (the
	// test's timeout is the bound).
	for CPU(p.Pid()) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if CPU(1<<30) != 0 {
		t.Error("CPU of a pid that does not exist is not 0")
	}
}
