package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/piku/piku/internal/procgroup"
	"github.com/piku/piku/internal/shell"
	"github.com/piku/piku/internal/testdeps"
)

func TestSpawnEnvAndLogs(t *testing.T) {
	ts := startSup(t, "")
	tests := []struct {
		name string
		ps   ProcessSpec
		want []string // in KIND.1.log
	}{
		{"web", webSpec(1, "1"), []string{"PROC_TYPE=web", "PIKU_INSTANCE=1", "cwd=" + ts.dir, "PORT="}},
		{"worker", ProcessSpec{Kind: "worker", Count: 1, Env: []string{"PATH=/usr/bin:/bin", "FOO=bar"},
			Command: `echo "port=[$PORT] type=$PROC_TYPE n=$PIKU_INSTANCE foo=$FOO cwd=$(pwd)"; exec sleep 1000`},
			[]string{"port=[] type=worker n=1 foo=bar cwd=" + ts.dir}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := "env-" + tt.name
			if err := ts.Apply(context.Background(), ts.spec(app, tt.ps)); err != nil {
				t.Fatal(err)
			}
			st := ts.Status(app)
			if len(st) != 1 || st[0].PID == 0 {
				t.Fatalf("status = %+v", st)
			}
			if tt.ps.Web && (st[0].Port == 0 || st[0].Addr != fmt.Sprintf("127.0.0.1:%d", st[0].Port)) {
				t.Errorf("web instance port %d addr %q", st[0].Port, st[0].Addr)
			}
			log := filepath.Join(ts.logs, tt.ps.Kind+".1.log")
			eventually(t, "log lines in "+log, func() bool {
				got := readLog(t, log)
				for _, w := range tt.want {
					if !strings.Contains(got, w) {
						return false
					}
				}
				return true
			})
			if tt.ps.Web && !strings.Contains(readLog(t, log), fmt.Sprintf("PORT=%d ", st[0].Port)) {
				t.Errorf("log %q does not show PORT=%d", readLog(t, log), st[0].Port)
			}
			if err := ts.Stop(context.Background(), app); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the group to be gone", func() bool { return gone(st[0].PID) })
		})
	}
}

func TestCrashRestartsWithBackoffIntoCrashLoop(t *testing.T) {
	ts := startSup(t, "")
	spec := ts.spec("crashy", ProcessSpec{Kind: "worker", Count: 1, Command: "echo crashing; exit 3"})
	// The first start fails, so Apply says so (TestFailedFirstBootStaysSupervised
	// checks how); with nothing older running, the worker stays supervised.
	_ = ts.Apply(context.Background(), spec)
	var st InstanceStatus
	eventually(t, "crash loop", func() bool {
		st = ts.Status("crashy")[0]
		return st.State == StateCrashLoop
	})
	if st.Restarts != crashLoopExits-1 {
		t.Errorf("restarts = %d, want %d", st.Restarts, crashLoopExits-1)
	}
	if st.LastExit != "exit 3" || st.PID != 0 {
		t.Errorf("last exit %q pid %d", st.LastExit, st.PID)
	}
	if until := time.Until(st.NextRetry); until < 30*time.Minute {
		t.Errorf("next retry in %s, want about BackoffMax", until)
	}
	if n := strings.Count(readLog(t, filepath.Join(ts.logs, "worker.1.log")), "crashing"); n != crashLoopExits {
		t.Errorf("log shows %d runs, want %d", n, crashLoopExits)
	}
	if err := ts.Stop(context.Background(), "crashy"); err != nil {
		t.Fatal(err)
	}
}

func TestBackoff(t *testing.T) {
	b := newBackoff(100*time.Millisecond, time.Second, 10*time.Second)
	b.jitter = func(d time.Duration) time.Duration { return d }
	steps := []struct {
		ran     time.Duration
		want    time.Duration
		looping bool
	}{
		{0, 100 * time.Millisecond, false},
		{time.Second, 200 * time.Millisecond, false},
		{0, 400 * time.Millisecond, false},
		{20 * time.Second, 100 * time.Millisecond, false}, // healthy run: reset
		{0, 200 * time.Millisecond, false},
		{0, 400 * time.Millisecond, false},
		{0, 800 * time.Millisecond, false},
		{0, 1 * time.Second, true}, // fifth short run in a row
		{0, 1 * time.Second, true},
		{10 * time.Second, 100 * time.Millisecond, false},
	}
	for i, s := range steps {
		got, looping := b.exited(s.ran)
		if got != s.want || looping != s.looping {
			t.Errorf("step %d: exited(%s) = %s, %v; want %s, %v", i, s.ran, got, looping, s.want, s.looping)
		}
	}
	for range 1000 {
		if d := jitter(time.Second); d < 800*time.Millisecond || d >= 1200*time.Millisecond {
			t.Fatalf("jitter(1s) = %s", d)
		}
	}
}

func TestGracefulStop(t *testing.T) {
	tests := []struct {
		name     string
		command  string
		timeout  time.Duration
		lastExit string
	}{
		// The group ends on SIGTERM: no stop timeout is needed, so none can
		// pass on a busy machine.
		{"whole group with a grandchild", "sleep 1000 & sleep 1000", time.Hour, "signal: terminated"},
		{"SIGKILL after the timeout", "trap '' TERM; sleep 1000 & sleep 1000", 300 * time.Millisecond, "signal: killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startSup(t, "")
			spec := ts.spec("stopper", ProcessSpec{Kind: "worker", Count: 1, Command: tt.command})
			spec.Policy.StopTimeout = tt.timeout
			spec.Policy.BootTimeout = workerUp
			if err := ts.Apply(context.Background(), spec); err != nil {
				t.Fatal(err)
			}
			pgid := ts.groupOf(t, "stopper")
			// Both sleeps are forked after the trap is set.
			eventually(t, "sh and two sleeps", func() bool { return len(procgroup.Members(pgid)) == 3 })
			// Replacing the kind with nothing stops it and keeps the app
			// around, so its last exit can be read.
			var in *instance
			ts.mu.Lock()
			for _, i := range ts.apps["stopper"].kinds["worker"].insts {
				in = i
			}
			ts.mu.Unlock()
			spec.Processes = nil
			if err := ts.Apply(context.Background(), spec); err != nil {
				t.Fatal(err)
			}
			if got := in.snapshot(); got.State != StateStopped || got.LastExit != tt.lastExit {
				t.Errorf("after stop: state %s, last exit %q; want stopped, %q", got.State, got.LastExit, tt.lastExit)
			}
			eventually(t, "no process left in the group", func() bool { return gone(pgid) })
		})
	}
}

func TestScaleKeepsUntouchedInstances(t *testing.T) {
	ts := startSup(t, "")
	ctx := context.Background()
	if err := ts.Apply(ctx, ts.spec("scaly", webSpec(2, "1"))); err != nil {
		t.Fatal(err)
	}
	before := pids(ts.Status("scaly"))
	steps := []struct {
		count int
		kept  []string
	}{
		{3, []string{"web.1", "web.2"}},
		{1, []string{"web.1"}},
		{1, []string{"web.1"}}, // no change at all
	}
	for _, s := range steps {
		if err := ts.Apply(ctx, ts.spec("scaly", webSpec(s.count, "1"))); err != nil {
			t.Fatal(err)
		}
		st := ts.Status("scaly")
		if len(st) != s.count {
			t.Fatalf("scale to %d: %d instances", s.count, len(st))
		}
		now := pids(st)
		for _, k := range s.kept {
			if now[k] != before[k] {
				t.Errorf("scale to %d: %s pid %d, was %d", s.count, k, now[k], before[k])
			}
		}
		var addrs []string
		ports := map[int]bool{}
		for _, in := range st {
			addrs = append(addrs, in.Addr)
			if ports[in.Port] {
				t.Errorf("port %d given twice", in.Port)
			}
			ports[in.Port] = true
			if in.Generation != 1 {
				t.Errorf("%s.%d generation %d, want 1", in.Kind, in.N, in.Generation)
			}
		}
		slices.Sort(addrs)
		if got := ts.router.lastRoute(); !slices.Equal(got, addrs) {
			t.Errorf("scale to %d: routed %v, want %v", s.count, got, addrs)
		}
		before = now
	}
}

func TestReplaceWithoutDowntime(t *testing.T) {
	ts := startSup(t, "")
	ctx := context.Background()
	web := webSpec(2, "1")
	web.HealthPath, web.HealthHost = "/health", "app.example"
	spec := ts.spec("replacy", web, ProcessSpec{Kind: "worker", Count: 1, Command: "sleep 1000"})
	if err := ts.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	old := ts.Status("replacy")

	// Hammer the app through the router while it is replaced.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	seen := map[string]int{}
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				body, err := ts.router.do("/")
				mu.Lock()
				if err != nil {
					failures = append(failures, err)
				} else {
					seen[body]++
				}
				mu.Unlock()
			}
		})
	}
	eventually(t, "requests to the old generation", func() bool { mu.Lock(); defer mu.Unlock(); return seen["gen=1"] > 20 })
	web.Env = helperEnvFor("2")
	spec.Processes[0] = web
	spec.Restart = []string{"worker"}
	if err := ts.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	eventually(t, "requests to the new generation", func() bool { mu.Lock(); defer mu.Unlock(); return seen["gen=2"] > 20 })
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d requests failed during the rollout, first: %v", len(failures), failures[0])
	}

	now := ts.Status("replacy")
	if len(now) != 3 {
		t.Fatalf("status = %+v", now)
	}
	for i, in := range now {
		if in.PID == old[i].PID || in.Generation != 2 || in.State != StateRunning {
			t.Errorf("%s.%d: pid %d (was %d), generation %d, state %s", in.Kind, in.N, in.PID, old[i].PID, in.Generation, in.State)
		}
		if in.Port != 0 && in.Port == old[i].Port {
			t.Errorf("%s.%d kept port %d", in.Kind, in.N, in.Port)
		}
		eventually(t, "old group gone", func() bool { return gone(old[i].PID) })
	}
	ts.router.mu.Lock()
	defer ts.router.mu.Unlock()
	wantDrain := []string{old[0].Addr, old[1].Addr}
	slices.Sort(wantDrain)
	if len(ts.router.drains) != 1 || !slices.Equal(ts.router.drains[0], wantDrain) {
		t.Errorf("drains = %v, want [%v]", ts.router.drains, wantDrain)
	}
}

func TestFailedBootKeepsOldGeneration(t *testing.T) {
	tests := []struct {
		name    string
		ps      func() ProcessSpec
		timeout time.Duration
		want    []string
	}{
		{"exits", func() ProcessSpec {
			ps := webSpec(2, "2")
			ps.Command = "echo boom; echo 'cannot bind' >&2; exit 3"
			return ps
		}, time.Hour, []string{"rolling out failing", "web.", "exit 3", "boom", "cannot bind"}},
		// The log's last lines are in this error too when the shell got to
		// write them within the timeout, which a busy machine does not
		// promise; "exits" checks them.
		{"never ready", func() ProcessSpec {
			ps := webSpec(1, "2")
			ps.Command = "echo waiting; exec sleep 1000"
			return ps
		}, 300 * time.Millisecond, []string{"rolling out failing", "web.1 was not ready within 300ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startSup(t, "")
			ctx := context.Background()
			if err := ts.Apply(ctx, ts.spec("failing", webSpec(2, "1"))); err != nil {
				t.Fatal(err)
			}
			old := ts.Status("failing")
			routed := ts.router.lastRoute()
			spec := ts.spec("failing", tt.ps())
			spec.Policy.BootTimeout = tt.timeout
			err := ts.Apply(ctx, spec)
			if err == nil {
				t.Fatal("Apply succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if now := ts.Status("failing"); !slices.Equal(pidList(now), pidList(old)) {
				t.Errorf("pids %v, were %v", pidList(now), pidList(old))
			}
			if got := ts.router.lastRoute(); !slices.Equal(got, routed) {
				t.Errorf("routed %v, want %v still", got, routed)
			}
			for range 5 {
				if body, err := ts.router.do("/"); err != nil || body != "gen=1" {
					t.Errorf("after failed rollout: %q, %v", body, err)
				}
			}
		})
	}
}

// TestFailedFirstBootStaysSupervised: with nothing older to fall back to,
// a process that fails at boot is kept and retried with backoff, and Apply
// still reports the failure.
func TestFailedFirstBootStaysSupervised(t *testing.T) {
	ts := startSup(t, "")
	spec := ts.spec("fresh", ProcessSpec{Kind: "worker", Count: 1, Command: "echo failing; exit 3"})
	err := ts.Apply(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "exit 3") || !strings.Contains(err.Error(), "retried with backoff") {
		t.Fatalf("Apply: %v", err)
	}
	eventually(t, "restarts", func() bool {
		st := ts.Status("fresh")
		return len(st) == 1 && st[0].Restarts >= 2
	})
	if err := ts.Stop(context.Background(), "fresh"); err != nil {
		t.Fatal(err)
	}
	if st := ts.Status("fresh"); len(st) != 0 {
		t.Errorf("after Stop: %v", st)
	}
}

func pidList(st []InstanceStatus) []int {
	var out []int
	for _, in := range st {
		out = append(out, in.PID)
	}
	return out
}

func TestPorts(t *testing.T) {
	busy := map[string]bool{"127.0.0.1:7001": true}
	p, err := newPorts(PortRange{Bind: "127.0.0.1", Min: 7000, Max: 7003})
	if err != nil {
		t.Fatal(err)
	}
	p.probe = func(addr string) bool { return !busy[addr] }
	p.random = func(int) int { return 0 } // from the start of the range
	var got []int
	for range 3 {
		port, err := p.take(0)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, port)
	}
	if want := []int{7000, 7002, 7003}; !slices.Equal(got, want) {
		t.Errorf("took %v, want %v (7001 is busy)", got, want)
	}
	if _, err := p.take(0); err == nil {
		t.Error("took a port from a full range")
	}
	if _, err := p.take(7002); err == nil {
		t.Error("fixed port 7002 given twice")
	}
	p.release(7002)
	if port, err := p.take(0); err != nil || port != 7002 {
		t.Errorf("after release: %d, %v", port, err)
	}
	// A port just freed is kept back while another is free.
	p.release(7000)
	p.release(7003)
	busy["127.0.0.1:7001"] = false
	if port, err := p.take(0); err != nil || port != 7001 {
		t.Errorf("with 7000 and 7003 just freed: %d, %v, want 7001", port, err)
	}
	for _, r := range []PortRange{{Min: 10, Max: 5}, {Min: 1, Max: 70000}} {
		if _, err := newPorts(r); err == nil {
			t.Errorf("range %+v accepted", r)
		}
	}
}

// TestPortsUnpredictable: the ports of new instances are drawn at random
// from the range, so that another app cannot tell the next one and bind
// it first; before, they were handed out in order (5 ports of 1000 in a
// row by chance: about one in 10^12).
func TestPortsUnpredictable(t *testing.T) {
	p, err := newPorts(PortRange{Bind: "127.0.0.1", Min: 40000, Max: 40999})
	if err != nil {
		t.Fatal(err)
	}
	p.probe = func(string) bool { return true }
	var got []int
	for range 5 {
		port, err := p.take(0)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, port)
	}
	inOrder := true
	for i := 1; i < len(got); i++ {
		inOrder = inOrder && got[i] == got[i-1]+1
	}
	if inOrder {
		t.Errorf("ports %v: handed out in order", got)
	}
}

// TestShellCommand runs each command through /bin/sh as written and as
// shellCommand rewrites it: the exit code must be the same, and where the
// first word is a program the rewrite must have replaced the shell with it
// (its parent is then this test, not a shell).
func TestShellCommand(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prog"), []byte("#!/bin/sh\necho $PPID; exit 6\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "with space"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "with space", "prog"), []byte("#!/bin/sh\necho $PPID; exit 7\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := "/usr/bin:/bin"
	tests := []struct {
		command  string
		replaced bool // the shell execs the program
	}{
		{"exit 3", false},
		{"exit\t4", false},
		{":", false},
		{"wait", false},
		{"unset FOO", false},
		{"command true", false},
		{"true", true},
		{"false", true},
		{"sh -c 'echo $PPID'", true},
		{"sh\t-c 'echo $PPID'", true},
		{"./prog", true},
		{"'" + dir + "/with space/prog' --flag", true},
		{"no-such-program-here", false},
		{"echo $(date)", false},
		{"sleep 0 & wait", false},
		{"FOO=bar sh -c 'exit 2'", false},
		{"exec sh -c 'exit 8'", false},
		{"cd . && ./prog", false},
	}
	run := func(script string) (int, string) {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Dir, cmd.Env = dir, []string{"PATH=" + path}
		out, err := cmd.Output()
		var xe *exec.ExitError
		if err != nil && !errors.As(err, &xe) {
			t.Fatalf("running %q: %v", script, err)
		}
		return cmd.ProcessState.ExitCode(), strings.TrimSpace(string(out))
	}
	me := strconv.Itoa(os.Getpid())
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			rewritten := shellCommand(tt.command, path, dir)
			want, _ := run(tt.command)
			got, out := run(rewritten)
			if got != want {
				t.Errorf("%q exits %d through sh, but %d rewritten as %q", tt.command, want, got, rewritten)
			}
			if _, err := strconv.Atoi(out); err != nil {
				return // the program does not print its parent
			}
			if replaced := out == me; replaced != tt.replaced {
				t.Errorf("%q rewritten as %q: the program's parent is %s, this test is %s; want replaced=%v", tt.command, rewritten, out, me, tt.replaced)
			}
		})
	}
}

func TestStateFileRecovery(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	eventually(t, "the group to start", func() bool { return len(procgroup.Members(pid)) == 3 })
	_, start, err := procgroup.Stat(pid)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "run", "processes.json")
	list := []liveProc{
		{App: "left", Kind: "worker", N: 1, PID: pid, PGID: pid, Start: start},
		{App: "reused", Kind: "web", N: 1, PID: os.Getpid(), PGID: os.Getpid(), Start: start + 1}, // another process now
	}
	b, _ := json.Marshal(list)
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startSup(t, state)
	werr := cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(werr, &exitErr) {
		t.Fatalf("left process: %v", werr)
	}
	eventually(t, "the left group to be gone", func() bool { return gone(pid) })

	// The file now lists what this supervisor runs.
	spec := ts.spec("fresh", ProcessSpec{Kind: "worker", Count: 2, Command: "sleep 1000"})
	spec.Policy.BootTimeout = workerUp
	if err := ts.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	recorded, err := readState(state)
	if err != nil {
		t.Fatal(err)
	}
	if len(recorded) != 2 || recorded[0].App != "fresh" || recorded[0].PGID != recorded[0].PID {
		t.Errorf("state file = %+v", recorded)
	}
	if err := ts.Stop(context.Background(), "fresh"); err != nil {
		t.Fatal(err)
	}
	if recorded, _ := readState(state); len(recorded) != 0 {
		t.Errorf("after stop, state file = %+v", recorded)
	}
}

func TestRunStopsEverything(t *testing.T) {
	baseline := runtime.NumGoroutine()
	r := newFakeRouter()
	s, err := New(Options{Router: r, Ports: PortRange{Min: testdeps.PortBase() + testdeps.PortsSupervisor + 500, Max: testdeps.PortBase() + testdeps.PortsSupervisor + 999}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	dir := t.TempDir()
	var groups []int
	for _, app := range []string{"a", "b"} {
		spec := AppSpec{App: app, Dir: dir, Logs: LogPolicy{Dir: dir},
			Policy:    Policy{BootTimeout: workerUp},
			Processes: []ProcessSpec{{Kind: "worker", Count: 2, Command: "sleep 1000 & sleep 1000"}}}
		if err := s.Apply(ctx, spec); err != nil {
			t.Fatal(err)
		}
		for _, in := range s.Status(app) {
			if in.PID <= 1 {
				t.Fatalf("after Apply: %+v has no process", in)
			}
			groups = append(groups, in.PID)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		eventually(t, "every group gone", func() bool { return gone(g) })
	}
	// Every goroutine the supervisor started has ended.
	eventually(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= baseline })
	if err := s.Apply(context.Background(), AppSpec{App: "late"}); err == nil {
		t.Error("Apply after Run returned succeeded")
	}
}

func BenchmarkSpawn(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("web=%d", n), func(b *testing.B) {
			ts := startSup(b, "")
			for b.Loop() {
				if err := ts.Apply(context.Background(), ts.spec("bench", webSpec(n, "1"))); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := ts.Stop(context.Background(), "bench"); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// TestStatusShowsRolloutInProgress: while new instances boot, Status shows
// them (starting, next generation) beside the live ones.
func TestStatusShowsRolloutInProgress(t *testing.T) {
	ts := startSup(t, "")
	ctx := context.Background()
	spec := ts.spec("roll", webSpec(1, "1"))
	if err := ts.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// The new generation does not listen until the test lets it, so the
	// rollout stays in progress for as long as the test looks.
	gate := fifo(t)
	web := webSpec(1, "2")
	web.Command = "read x < " + shell.Quote(gate) + "; exec " + helperCommand()
	spec.Processes = []ProcessSpec{web}
	done := make(chan error, 1)
	go func() { done <- ts.Apply(ctx, spec) }()
	eventually(t, "Status to show both generations", func() bool {
		st := ts.Status("roll")
		return len(st) == 2 && st[0].Generation == 1 && st[0].State == StateRunning &&
			st[1].Generation == 2 && st[1].State == StateStarting
	})
	release(t, gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := ts.Status("roll"); len(st) != 1 || st[0].Generation != 2 || st[0].State != StateRunning {
		t.Errorf("after the rollout: %+v", st)
	}
	if err := ts.Stop(ctx, "roll"); err != nil {
		t.Fatal(err)
	}
}

// TestRestartMovesOffATakenPort: when something else took a web
// instance's port while it was down, the restart moves it to a free port
// and routes the app there, instead of failing on the taken one for ever.
func TestRestartMovesOffATakenPort(t *testing.T) {
	ts := startSup(t, "")
	ctx := context.Background()
	// The server quits on /exit, which frees the port; the shell, which
	// the supervisor watches, stays until the test lets it go, so the
	// test takes the port before any restart can.
	gate := fifo(t)
	web := webSpec(1, "1")
	web.Command = helperCommand() + "; read x < " + shell.Quote(gate)
	spec := ts.spec("mover", web)
	if err := ts.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	before := ts.Status("mover")[0]
	if _, err := ts.router.do("/exit"); err == nil {
		t.Fatal("/exit answered")
	}
	var squatter net.Listener
	eventually(t, "the port to be free to take", func() bool {
		l, err := net.Listen("tcp", before.Addr)
		squatter = l
		return err == nil
	})
	defer squatter.Close()
	release(t, gate)
	var after InstanceStatus
	eventually(t, "the instance to run on another port", func() bool {
		after = ts.Status("mover")[0]
		return after.State == StateRunning && after.PID != before.PID && after.Port != before.Port
	})
	if got := ts.router.lastRoute(); !slices.Equal(got, []string{after.Addr}) {
		t.Errorf("routed %v, want %v", got, after.Addr)
	}
	if body, err := ts.router.do("/"); err != nil || body != "gen=1" {
		t.Errorf("through the router: %q, %v", body, err)
	}
	if err := ts.Stop(ctx, "mover"); err != nil {
		t.Fatal(err)
	}
}

// TestCronRunAdoptedFromStateFile: a cron run recorded with its log and
// output FIFO, still the recorded process, is adopted and handed to the
// cron runner (LeftRuns), its record kept until it ends; one recorded
// without a FIFO (a run that was to die with its daemon) is stopped.
func TestCronRunAdoptedFromStateFile(t *testing.T) {
	var pids []int
	for range 2 {
		cmd := exec.Command("sleep", "1000")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		pids = append(pids, pid)
		t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL); _, _ = cmd.Process.Wait() })
	}
	dir := t.TempDir()
	_, start0, err := procgroup.Stat(pids[0])
	if err != nil {
		t.Fatal(err)
	}
	_, start1, err := procgroup.Stat(pids[1])
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "run", "processes.json")
	list := []liveProc{
		{App: "blog", Kind: "cron1", PID: pids[0], PGID: pids[0], Start: start0,
			Output: filepath.Join(dir, "blog.cron1.1.fifo"), Log: filepath.Join(dir, "cron1.log")},
		{App: "blog", Kind: "cron2", PID: pids[1], PGID: pids[1], Start: start1},
	}
	b, _ := json.Marshal(list)
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startSup(t, state)
	left := ts.LeftRuns()
	if len(left) != 1 || left[0].App != "blog" || left[0].Name != "cron1" || left[0].Log != list[0].Log ||
		left[0].Output != list[0].Output || left[0].Process.Pid() != pids[0] {
		t.Fatalf("LeftRuns() = %+v", left)
	}
	if again := ts.LeftRuns(); len(again) != 0 {
		t.Errorf("second LeftRuns() = %+v", again)
	}
	eventually(t, "the run without a FIFO to be stopped", func() bool { return gone(pids[1]) })
	if recorded, _ := readState(state); len(recorded) != 1 || recorded[0].PID != pids[0] {
		t.Errorf("state file = %+v", recorded)
	}
	_ = left[0].Process.Signal(syscall.SIGKILL)
	<-left[0].Process.Done()
	left[0].Done()
	if recorded, _ := readState(state); len(recorded) != 0 {
		t.Errorf("after the run ended, state file = %+v", recorded)
	}
}

// TestStopAfterFreezeAndThaw: a restart in place that a stop signal
// cancels after the freeze thaws the supervisor, and the stop then ends
// an instance whose restart had waited on the freeze.
func TestStopAfterFreezeAndThaw(t *testing.T) {
	ts := startSup(t, "")
	spec := ts.spec("frozen", ProcessSpec{Kind: "worker", Count: 1, Command: "exit 3"})
	spec.Policy.BackoffMax = 20 * time.Millisecond
	_ = ts.Apply(context.Background(), spec)
	eventually(t, "a restart", func() bool { return ts.Status("frozen")[0].Restarts > 0 })
	ts.Freeze()
	// The next restart is due (its retry time is cleared), then waits on
	// the freeze to start its process.
	eventually(t, "a restart waiting on the freeze", func() bool {
		st := ts.Status("frozen")[0]
		return (st.State == StateBackoff || st.State == StateCrashLoop) && st.NextRetry.IsZero()
	})
	ts.Thaw()
	stopped := make(chan error, 1)
	go func() { stopped <- ts.Stop(context.Background(), "frozen") }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-testdeps.Waiting(t).Done():
		t.Fatal("the stop after a freeze and a thaw did not end")
	}
	if st := ts.Status("frozen"); len(st) != 0 {
		t.Errorf("after the stop: %+v", st)
	}
}
