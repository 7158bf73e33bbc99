package cron

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piku/piku/internal/testdeps"
	"github.com/piku/piku/procfile"
)

// fakeClock is a Clock that moves only when Advance is called.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    chan time.Time
	at   time.Time
	done bool
	clk  *fakeClock
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{c: make(chan time.Time, 1), at: f.now.Add(d), clk: f}
	if d <= 0 {
		t.done = true
		t.c <- f.now
	} else {
		f.timers = append(f.timers, t)
	}
	return t
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	for _, t := range f.timers {
		if !t.done && !t.at.After(f.now) {
			t.done = true
			t.c <- f.now
		}
	}
}

// armed reports whether a timer that fires at at is waiting.
func (f *fakeClock) armed(at time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.timers {
		if !t.done && t.at.Equal(at) {
			return true
		}
	}
	return false
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

type fixture struct {
	t     *testing.T
	clock *fakeClock
	r     *Runner
	dir   string
	errc  chan error
}

func newFixture(t *testing.T, stopTimeout time.Duration) *fixture {
	return newFixtureWith(t, t.TempDir(), Options{StopTimeout: stopTimeout})
}

// newFixtureWith runs a Runner with opts (and the fixture's clock), its
// jobs in dir.
func newFixtureWith(t *testing.T, dir string, opts Options) *fixture {
	testdeps.Require(t, "sh", "apt-get install dash")
	base := goroutines()
	f := &fixture{t: t, clock: &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 30, 0, time.UTC)}, dir: dir, errc: make(chan error, 1)}
	opts.Clock = f.clock
	f.r = New(opts)
	go func() { f.errc <- f.r.Run(context.Background()) }()
	t.Cleanup(func() {
		f.r.Stop()
		if err := <-f.errc; err != nil {
			t.Errorf("Run: %v", err)
		}
		// No goroutine outlives the runner.
		wait := testdeps.Waiting(t)
		for goroutines() > base {
			select {
			case <-wait.Done():
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines leaked: %d > %d\n%s", goroutines(), base, buf[:runtime.Stack(buf, true)])
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	return f
}

// goroutines counts the running goroutines, leaving out lumberjack's log
// compression goroutine: lumberjack v2.2.1 starts one per Logger and never
// ends it, even on Close.
func goroutines() int {
	buf := make([]byte, 1<<20)
	n := 0
	for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "lumberjack") {
			n++
		}
	}
	return n
}

func (f *fixture) job(name, spec, command string) Job {
	s, err := procfile.ParseSchedule(spec)
	if err != nil {
		f.t.Fatal(err)
	}
	return Job{Name: name, Schedule: s, Command: command, Dir: f.dir, Env: []string{"GREETING=hi"},
		Log: filepath.Join(f.dir, "logs", name+".log")}
}

// waitFor waits until cond holds for app's status of job name.
func (f *fixture) waitFor(app, name string, cond func(JobStatus) bool) JobStatus {
	f.t.Helper()
	wait := testdeps.Waiting(f.t)
	for {
		st, err := f.r.Status(app)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, s := range st {
			if s.Name == name && cond(s) {
				return s
			}
		}
		select {
		case <-wait.Done():
			f.t.Fatalf("status of %s never matched: %+v", name, st)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitLog waits until the log of job name holds want.
func (f *fixture) waitLog(name, want string) {
	f.t.Helper()
	wait := testdeps.Waiting(f.t)
	for !strings.Contains(f.log(name), want) {
		select {
		case <-wait.Done():
			f.t.Fatalf("the log of %s never showed %q:\n%s", name, want, f.log(name))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitArmed waits until the runner waits on a timer for at. A test must
// not move the clock before: the runner reads the time, then arms a timer
// for the rest of the wait, and the fake clock counts that rest from the
// time it is armed, so a move in between would put the timer past the
// time the test moves the clock to.
func (f *fixture) waitArmed(at time.Time) {
	f.t.Helper()
	wait := testdeps.Waiting(f.t)
	for !f.clock.armed(at) {
		select {
		case <-wait.Done():
			f.t.Fatalf("no timer for %s", at)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (f *fixture) log(name string) string {
	b, _ := os.ReadFile(filepath.Join(f.dir, "logs", name+".log"))
	return string(b)
}

func TestRunsAtScheduledTime(t *testing.T) {
	f := newFixture(t, time.Second)
	if err := f.r.Set("blog", []Job{f.job("cron1", "* * * * *", `echo "$GREETING from $(pwd)"; exit 3`)}); err != nil {
		t.Fatal(err)
	}
	st := f.waitFor("blog", "cron1", func(s JobStatus) bool { return true })
	if want := time.Date(2024, 1, 1, 0, 1, 0, 0, time.UTC); !st.NextRun.Equal(want) || !st.LastRun.IsZero() || st.Running {
		t.Fatalf("before: %+v", st)
	}
	// The runner waits on a timer for the minute; a second before it, the
	// timer has not fired, so nothing can have run.
	at := time.Date(2024, 1, 1, 0, 1, 0, 0, time.UTC)
	f.waitArmed(at)
	f.clock.Advance(29 * time.Second)
	if !f.clock.armed(at) {
		t.Fatal("the timer for 00:01 fired at 00:00:59")
	}
	if st, _ := f.r.Status("blog"); !st[0].LastRun.IsZero() {
		t.Fatalf("ran early: %+v", st)
	}
	f.clock.Advance(time.Second)
	st = f.waitFor("blog", "cron1", func(s JobStatus) bool { return !s.LastRun.IsZero() && !s.Running })
	if st.LastExit != "exit 3" || st.LastExitCode != 3 || st.LastDuration <= 0 || !st.NextRun.Equal(time.Date(2024, 1, 1, 0, 2, 0, 0, time.UTC)) {
		t.Errorf("after: %+v", st)
	}
	log := f.log("cron1")
	for _, want := range []string{"2024-01-01T00:01:00Z] cron1: running: echo", "hi from " + f.dir, "cron1: exit 3 after"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestSkipsWhileRunningAndStopKills(t *testing.T) {
	// A stop timeout that cannot pass: the run must end on SIGTERM.
	f := newFixture(t, time.Hour)
	if err := f.r.Set("blog", []Job{f.job("cron1", "* * * * *", "echo started; exec sleep 60")}); err != nil {
		t.Fatal(err)
	}
	f.waitArmed(time.Date(2024, 1, 1, 0, 1, 0, 0, time.UTC))
	f.clock.Advance(30 * time.Second)
	f.waitFor("blog", "cron1", func(s JobStatus) bool { return s.Running })
	f.waitArmed(time.Date(2024, 1, 1, 0, 2, 0, 0, time.UTC))
	f.clock.Advance(time.Minute)
	f.waitFor("blog", "cron1", func(s JobStatus) bool {
		return s.NextRun.Equal(time.Date(2024, 1, 1, 0, 3, 0, 0, time.UTC))
	})
	if log := f.log("cron1"); !strings.Contains(log, "00:02:00Z] cron1: skipped: previous run still going") {
		t.Errorf("no skip noted:\n%s", log)
	}
	f.r.Stop()
	if log := f.log("cron1"); !strings.Contains(log, "signal: terminated (stopped)") {
		t.Errorf("no stop by SIGTERM noted:\n%s", log)
	}
	if _, err := f.r.Status("blog"); err != ErrStopped {
		t.Errorf("Status after Stop = %v", err)
	}
}

func TestStopKillsAfterTimeout(t *testing.T) {
	f := newFixture(t, 200*time.Millisecond)
	// The shell and its child ignore SIGTERM: only SIGKILL ends them.
	if err := f.r.Set("blog", []Job{f.job("cron1", "* * * * *", "trap '' TERM; echo trapped; sleep 60; echo never")}); err != nil {
		t.Fatal(err)
	}
	f.waitArmed(time.Date(2024, 1, 1, 0, 1, 0, 0, time.UTC))
	f.clock.Advance(30 * time.Second)
	f.waitLog("cron1", "trapped\n")
	start := time.Now()
	f.r.Stop()
	// Timers never fire early, so this holds on any machine; how much
	// longer Stop took depends on the machine.
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("Stop took %v, less than the 200ms stop timeout", d)
	}
	if log := f.log("cron1"); !strings.Contains(log, "signal: killed (stopped)") {
		t.Errorf("log:\n%s", log)
	}
}

func TestSetReplaceAndRemove(t *testing.T) {
	f := newFixture(t, time.Second)
	if err := f.r.Set("blog", []Job{f.job("cron2", "0 * * * *", "true"), f.job("cron1", "*/5 * * * *", "true")}); err != nil {
		t.Fatal(err)
	}
	st, _ := f.r.Status("blog")
	if len(st) != 2 || st[0].Name != "cron1" || st[1].Schedule != "0 * * * *" {
		t.Fatalf("status = %+v", st)
	}
	if err := f.r.Set("blog", []Job{f.job("cron1", "30 2 * * *", "true")}); err != nil {
		t.Fatal(err)
	}
	st, _ = f.r.Status("blog")
	if len(st) != 1 || !st[0].NextRun.Equal(time.Date(2024, 1, 1, 2, 30, 0, 0, time.UTC)) {
		t.Fatalf("after replace: %+v", st)
	}
	if err := f.r.Remove("blog"); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.r.Status("blog"); len(st) != 0 {
		t.Fatalf("after remove: %+v", st)
	}
	if err := f.r.Set("blog", []Job{{Name: "cron1"}}); err == nil {
		t.Error("incomplete job accepted")
	}
}

func TestRemoveStopsRunningJob(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	if err := f.r.Set("blog", []Job{f.job("cron1", "* * * * *", "exec sleep 60")}); err != nil {
		t.Fatal(err)
	}
	f.waitArmed(time.Date(2024, 1, 1, 0, 1, 0, 0, time.UTC))
	f.clock.Advance(30 * time.Second)
	f.waitFor("blog", "cron1", func(s JobStatus) bool { return s.Running })
	if err := f.r.Remove("blog"); err != nil {
		t.Fatal(err)
	}
	f.waitLog("cron1", "(stopped)")
}

func TestRunTwiceAndStopBeforeRun(t *testing.T) {
	r := New(Options{})
	r.Stop() // never started: returns at once
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx); err == nil {
		t.Error("second Run accepted")
	}
}
