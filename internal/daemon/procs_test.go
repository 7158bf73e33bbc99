package daemon

import "testing"

func TestProcs(t *testing.T) {
	for _, c := range []struct {
		name string
		set  int
		env  string
		want int
	}{
		{"default: the governor", 0, "", 0},
		{"the setting", 3, "", 3},
		{"the setting wins over GOMAXPROCS", 2, "1", 2},
		{"GOMAXPROCS kept", 0, "4", -1},
	} {
		if got := Procs(c.set, c.env); got != c.want {
			t.Errorf("%s: Procs(%d, %q) = %d, want %d", c.name, c.set, c.env, got, c.want)
		}
	}
}

// TestGovernor: a thread is added after a busy second while the machine
// had a CPU to spare, one at a time up to the CPUs; one is taken away only
// after procsDownAfter looks in a row that find the daemon idle enough or
// the machine full, and a look that does neither starts that count again.
func TestGovernor(t *testing.T) {
	if procsDownAfter != 5 {
		t.Fatalf("the table below is for procsDownAfter = 5, not %d", procsDownAfter)
	}
	g := &governor{max: 4, cur: 1}
	for i, s := range []struct {
		load, spare float64
		want        int
	}{
		{0.3, 1, 1},    // idle on one thread: one
		{0.85, 1, 1},   // below 90 % of one
		{0.95, 0.2, 1}, // busy, but the machine is too: still one
		{0.95, 1, 2},   // busy with a CPU to spare: one more
		{1.5, 1, 2},    // below 90 % of two
		{1.9, 1, 3},
		{2.8, 1, 4},
		{3.9, 1, 4},    // no more than the CPUs
		{2.0, 1, 4},    // neither busy nor idle
		{1.4, 1, 4},    // under half of three: idle, 1
		{1.4, 1, 4},    // 2
		{1.4, 1, 4},    // 3
		{1.4, 1, 4},    // 4
		{1.4, 1, 3},    // 5: one fewer
		{0.9, 1, 3},    // under half of two: idle, 1
		{1.2, 1, 3},    // not idle: the count starts again
		{2.5, 0, 3},    // the machine full: 1
		{2.5, 0, 3},    // 2
		{2.5, 0, 3},    // 3
		{2.5, 0, 3},    // 4
		{2.5, 0.05, 2}, // 5: one fewer
	} {
		if got := g.next(s.load, s.spare); got != s.want {
			t.Fatalf("look %d (daemon %.2f CPUs, %.2f spare): %d threads, want %d", i, s.load, s.spare, got, s.want)
		}
	}
	for range procsDownAfter * 2 {
		g.next(0.1, 1)
	}
	if g.cur != 1 {
		t.Errorf("after a long idle spell: %d threads, want 1", g.cur)
	}
}

// TestMachineIdle: the machine's CPU times are read, idle no more than
// total, and they do not go back.
func TestMachineIdle(t *testing.T) {
	idle, total := machineIdle()
	if total == 0 || idle > total {
		t.Fatalf("machineIdle() = %d, %d", idle, total)
	}
	idle2, total2 := machineIdle()
	if idle2 < idle || total2 < total {
		t.Errorf("went back: %d, %d then %d, %d", idle, total, idle2, total2)
	}
}
