package supervisor

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHealthCheckRestartsAStoppedServer stops a web instance with SIGSTOP:
// its port still accepts connections (the kernel queues them), but nothing
// answers. The active health check must find it and restart it, while a
// healthy instance beside it is left alone.
func TestHealthCheckRestartsAStoppedServer(t *testing.T) {
	ts := startSup(t, "")
	spec := ts.spec("hc", webSpec(2, "1"))
	spec.Policy.HealthInterval = 100 * time.Millisecond
	spec.Policy.HealthTimeout = 2 * time.Second
	spec.Policy.HealthFailures = 2
	if err := ts.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	before := pids(ts.Status("hc"))
	if err := syscall.Kill(-before["web.1"], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var st []InstanceStatus
	eventually(t, "web.1 to be restarted and running again", func() bool {
		st = ts.Status("hc")
		return st[0].PID != 0 && st[0].PID != before["web.1"] && st[0].State == StateRunning
	})
	if st[0].Restarts != 1 || !strings.Contains(st[0].LastHealthError, "health check failed 2 times") {
		t.Errorf("web.1: %d restarts, last health error %q", st[0].Restarts, st[0].LastHealthError)
	}
	if st[1].PID != before["web.2"] || st[1].Restarts != 0 {
		t.Errorf("web.2 was touched: pid %d (was %d), %d restarts", st[1].PID, before["web.2"], st[1].Restarts)
	}
	if !gone(before["web.1"]) {
		t.Errorf("the stopped process group %d is still there", before["web.1"])
	}
}

// TestHealthCheckDefaults checks the documented defaults and that a zero
// interval turns the check off.
func TestHealthCheckDefaults(t *testing.T) {
	p := Policy{}.withDefaults()
	if p.HealthInterval != 10*time.Second || p.HealthTimeout != 5*time.Second || p.HealthFailures != 3 {
		t.Errorf("defaults: %v %v %d", p.HealthInterval, p.HealthTimeout, p.HealthFailures)
	}
	if p := (Policy{HealthInterval: -1}).withDefaults(); p.HealthInterval != 0 {
		t.Errorf("a negative interval (off) became %v", p.HealthInterval)
	}
}
