package supervisor

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/piku/piku/internal/testdeps"
)

// TestRunDrainsBeforeStopping: when the supervisor stops (the daemon
// stops), each app's web instances are drained first: a request still in
// flight keeps its instance running until it has finished, and only then
// does the instance get SIGTERM.
func TestRunDrainsBeforeStopping(t *testing.T) {
	r := newFakeRouter()
	s, err := New(Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Router: r,
		Ports:  PortRange{Bind: "127.0.0.1", Min: testdeps.PortBase() + testdeps.PortsSupervisor + 900, Max: testdeps.PortBase() + testdeps.PortsSupervisor + 949},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	ts := &testSup{Supervisor: s, router: r, dir: t.TempDir()}
	ts.logs = ts.dir + "/logs"
	if err := s.Apply(context.Background(), ts.spec("drainy", webSpec(1, "1"))); err != nil {
		t.Fatal(err)
	}
	st := s.Status("drainy")
	if len(st) != 1 {
		t.Fatalf("status = %+v", st)
	}
	addr, pgid := st[0].Addr, st[0].PID

	// A request in flight to the instance, as the proxy counts it.
	r.mu.Lock()
	r.inflight[addr]++
	r.mu.Unlock()
	cancel()
	eventually(t, "the instance drained", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return slices.ContainsFunc(r.drains, func(d []string) bool { return slices.Contains(d, addr) })
	})
	// Drain has not returned: nothing has stopped the instance.
	if gone(pgid) {
		t.Fatal("the instance was stopped while a request to it was in flight")
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned while a request was in flight: %v", err)
	default:
	}

	r.mu.Lock()
	r.inflight[addr]--
	r.cond.Broadcast()
	r.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !gone(pgid) {
		t.Error("the instance survived the supervisor's stop")
	}
}
