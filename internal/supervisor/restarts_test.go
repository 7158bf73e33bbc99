package supervisor

import (
	"context"
	"syscall"
	"testing"
	"time"
)

func TestRecentRestarts(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	many := make([]time.Time, maxRecentRestarts)
	for i := range many {
		many[i] = ago(time.Duration(maxRecentRestarts-i) * time.Second)
	}
	tests := []struct {
		name    string
		prev    []time.Time
		wantLen int
		first   time.Time
	}{
		{"first", nil, 1, now},
		{"kept within the hour", []time.Time{ago(59 * time.Minute), ago(time.Minute)}, 3, ago(59 * time.Minute)},
		{"older ones dropped", []time.Time{ago(2 * time.Hour), ago(61 * time.Minute), ago(time.Minute)}, 2, ago(time.Minute)},
		{"bounded", many, maxRecentRestarts, many[1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := append([]time.Time(nil), tt.prev...)
			got := recentRestarts(tt.prev, now)
			if len(got) != tt.wantLen || !got[0].Equal(tt.first) || !got[len(got)-1].Equal(now) {
				t.Errorf("got %d times from %v to %v; want %d from %v to %v", len(got), got[0], got[len(got)-1], tt.wantLen, tt.first, now)
			}
			for i := range before {
				if !tt.prev[i].Equal(before[i]) {
					t.Fatalf("the previous slice was changed at %d", i)
				}
			}
		})
	}
}

// TestStatusCountsExits checks what the metrics read of an instance: the
// exit code of its last exit (-1 for a signal), the times of its recent
// restarts and the CPU its process used.
func TestStatusCountsExits(t *testing.T) {
	ts := startSup(t, "")
	spec := ts.spec("exits",
		ProcessSpec{Kind: "crashy", Count: 1, Command: "echo crashing; exit 3"},
		ProcessSpec{Kind: "busy", Count: 1, Command: "while :; do :; done"},
	)
	spec.Policy.BootTimeout = workerUp
	spec.Policy.BackoffMax = time.Hour // no further restart once crash-looping
	// crashy fails its first start, so Apply says so; with nothing older
	// running, both kinds stay supervised (TestFailedFirstBootStaysSupervised).
	_ = ts.Apply(context.Background(), spec)
	t.Cleanup(func() { ts.Stop(context.Background(), "exits") })
	byKind := func(kind string) InstanceStatus {
		for _, st := range ts.Status("exits") {
			if st.Kind == kind {
				return st
			}
		}
		t.Fatalf("no %s instance", kind)
		return InstanceStatus{}
	}
	eventually(t, "two restarts", func() bool { return byKind("crashy").Restarts >= 2 })
	st := byKind("crashy")
	if st.ExitCode != 3 || len(st.RecentRestarts) != st.Restarts {
		t.Errorf("exit code %d, %d recent restarts of %d; want 3 and all of them", st.ExitCode, len(st.RecentRestarts), st.Restarts)
	}

	eventually(t, "busy using CPU", func() bool { return byKind("busy").CPU > 0 })
	busy := byKind("busy")
	if err := syscall.Kill(busy.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "busy restarted", func() bool { return byKind("busy").Restarts == 1 })
	if st := byKind("busy"); st.ExitCode != -1 || st.LastExit != "signal: killed" || len(st.RecentRestarts) != 1 {
		t.Errorf("after kill -9: exit code %d (%s), %d recent restarts; want -1, 1", st.ExitCode, st.LastExit, len(st.RecentRestarts))
	}
}
