package cron

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/piku/piku/internal/procgroup"
)

// leaveRun starts command as an earlier daemon would have (its own group,
// no Pdeathsig, writing into a FIFO under dir that no one reads yet) and
// adopts it as the next daemon does. The caller's wait (Adopt's) is the
// only one, so the run's exit status is known, as after an exec in place.
func leaveRun(t *testing.T, dir, command string) Adopted {
	t.Helper()
	fifo := filepath.Join(dir, "blog.cron1.fifo")
	r, w, err := procgroup.OutputFIFO(fifo)
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Close() // the earlier daemon is gone
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	_, start, err := procgroup.Stat(pid)
	if err != nil {
		t.Fatal(err)
	}
	p, err := procgroup.Adopt(pid, pid, start, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return Adopted{Tracked: Tracked{App: "blog", Name: "cron1", Log: filepath.Join(dir, "logs", "cron1.log"), Output: fifo, Process: p}}
}

// TestAdoptedRunIsTheJobsRun: a run left by an earlier daemon is its
// job's run once the app sets its jobs: ps says it runs, the next due
// time is skipped, what it wrote while no one read and what it writes
// next reach the job's log, and its end is the job's last exit.
func TestAdoptedRunIsTheJobsRun(t *testing.T) {
	dir := t.TempDir()
	a := leaveRun(t, dir, "echo before; while [ ! -e go ]; do sleep 0.05; done; echo after; exit 4")
	var once sync.Once
	ended := make(chan struct{})
	a.Done = func() { once.Do(func() { close(ended) }) }
	f := newFixtureWith(t, dir, Options{StopTimeout: time.Second, Adopted: []Adopted{a}})
	if err := f.r.Set("blog", []Job{f.job("cron1", "* * * * *", "echo a second run")}); err != nil {
		t.Fatal(err)
	}
	st := f.waitFor("blog", "cron1", func(JobStatus) bool { return true })
	if !st.Running || st.Schedule != "* * * * *" {
		t.Fatalf("adopted run not the job's: %+v", st)
	}
	f.waitLog("cron1", "before\n")
	f.waitArmed(time.Date(2024, 1, 1, 0, 1, 0, 0, time.UTC))
	f.clock.Advance(30 * time.Second)
	f.waitLog("cron1", "00:01:00Z] cron1: skipped: previous run still going")
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st = f.waitFor("blog", "cron1", func(s JobStatus) bool { return !s.Running })
	if st.LastExit != "exit 4" || st.LastExitCode != 4 || st.LastDuration <= 0 {
		t.Errorf("after: %+v", st)
	}
	<-ended
	log := f.log("cron1")
	for _, want := range []string{"before\n", "after\n", "cron1: exit 4 after"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "a second run") {
		t.Errorf("a second run started while the adopted one went on:\n%s", log)
	}
	if _, err := os.Stat(a.Output); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the FIFO is left: %v", err)
	}
}

// TestUnclaimedAdoptedRunIsStopped: an adopted run whose app does not set
// its job (stopped, gone) is stopped.
func TestUnclaimedAdoptedRunIsStopped(t *testing.T) {
	dir := t.TempDir()
	a := leaveRun(t, dir, "echo before; exec sleep 60")
	f := newFixtureWith(t, dir, Options{StopTimeout: 5 * time.Second, Adopted: []Adopted{a}})
	f.waitLog("cron1", "before\n")
	if st, _ := f.r.Status("blog"); len(st) != 1 || !st[0].Running || st[0].Schedule != "-" {
		t.Fatalf("before the app is claimed: %+v", st)
	}
	f.r.StopUnclaimed()
	f.waitLog("cron1", "cron1: signal: terminated (stopped) after")
	if st, _ := f.r.Status("blog"); len(st) != 0 {
		t.Errorf("after: %+v", st)
	}
}

// trackedRuns records the runs the runner tracks (Options.Track).
type trackedRuns struct {
	mu   sync.Mutex
	runs []Tracked
}

func (r *trackedRuns) track(t Tracked) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, t)
	return func() {}
}

func (r *trackedRuns) all() []Tracked {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.runs)
}

// TestRunWritesThroughFIFO: with an output folder, a run writes into a
// FIFO there, tracked with the run, which the runner copies into the log
// and removes once the run is over.
func TestRunWritesThroughFIFO(t *testing.T) {
	dir := t.TempDir()
	var tr trackedRuns
	f := newFixtureWith(t, dir, Options{StopTimeout: time.Second, OutputDir: filepath.Join(dir, "output"), Track: tr.track})
	if err := f.r.Set("blog", []Job{f.job("cron1", "* * * * *", "echo through the fifo; exit 2")}); err != nil {
		t.Fatal(err)
	}
	f.waitArmed(time.Date(2024, 1, 1, 0, 1, 0, 0, time.UTC))
	f.clock.Advance(30 * time.Second)
	st := f.waitFor("blog", "cron1", func(s JobStatus) bool { return s.LastExit != "" })
	if st.LastExit != "exit 2" || st.LastExitCode != 2 {
		t.Errorf("status: %+v", st)
	}
	f.waitLog("cron1", "cron1: exit 2 after")
	if log := f.log("cron1"); !strings.Contains(log, "through the fifo\n") {
		t.Errorf("log:\n%s", log)
	}
	tracked := tr.all()
	if len(tracked) != 1 || tracked[0].Output == "" || filepath.Dir(tracked[0].Output) != filepath.Join(dir, "output") ||
		tracked[0].Log != filepath.Join(dir, "logs", "cron1.log") || tracked[0].App != "blog" {
		t.Fatalf("tracked: %+v", tracked)
	}
	if _, err := os.Stat(tracked[0].Output); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the FIFO is left: %v", err)
	}
}

// TestStateFileKeepsLastRun: a job's last run, exit and duration outlive
// the runner; a job whose command changed starts afresh.
func TestStateFileKeepsLastRun(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "run", "cron.json")
	f := newFixtureWith(t, dir, Options{StopTimeout: time.Second, StateFile: file})
	job := f.job("cron1", "* * * * *", "exit 3")
	if err := f.r.Set("blog", []Job{job}); err != nil {
		t.Fatal(err)
	}
	f.waitArmed(time.Date(2024, 1, 1, 0, 1, 0, 0, time.UTC))
	f.clock.Advance(30 * time.Second)
	before := f.waitFor("blog", "cron1", func(s JobStatus) bool { return s.LastExit != "" })
	f.r.Stop()
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi, err)
	}

	g := newFixtureWith(t, dir, Options{StopTimeout: time.Second, StateFile: file})
	if err := g.r.Set("blog", []Job{job}); err != nil {
		t.Fatal(err)
	}
	after := g.waitFor("blog", "cron1", func(JobStatus) bool { return true })
	if !after.LastRun.Equal(before.LastRun) || after.LastExit != "exit 3" || after.LastExitCode != 3 ||
		after.LastDuration != before.LastDuration || after.LastRun.IsZero() {
		t.Errorf("after a restart: %+v, before: %+v", after, before)
	}
	changed := job
	changed.Command = "exit 0"
	if err := g.r.Set("blog", []Job{changed}); err != nil {
		t.Fatal(err)
	}
	if st, _ := g.r.Status("blog"); len(st) != 1 || !st[0].LastRun.IsZero() || st[0].LastExit != "" {
		t.Errorf("a changed job kept its status: %+v", st)
	}
}

// TestStopAfterHandoverStopsRuns: a restart in place that a stop signal
// cancels after the handover stops the runner as any stop does: the run
// going on is stopped (not left for a next daemon), and its FIFO goes.
func TestStopAfterHandoverStopsRuns(t *testing.T) {
	dir := t.TempDir()
	var tr trackedRuns
	f := newFixtureWith(t, dir, Options{StopTimeout: 5 * time.Second, OutputDir: filepath.Join(dir, "output"), Track: tr.track})
	if err := f.r.Set("blog", []Job{f.job("cron1", "* * * * *", "echo started; exec sleep 1000")}); err != nil {
		t.Fatal(err)
	}
	f.waitArmed(time.Date(2024, 1, 1, 0, 1, 0, 0, time.UTC))
	f.clock.Advance(30 * time.Second)
	f.waitLog("cron1", "started\n")
	f.r.Handover()
	f.r.Stop()
	tracked := tr.all()
	if len(tracked) != 1 {
		t.Fatalf("tracked: %+v", tracked)
	}
	if pid := tracked[0].Process.Pid(); syscall.Kill(pid, 0) == nil {
		t.Errorf("the run (pid %d) outlived the stop after the handover", pid)
	}
	if _, err := os.Stat(tracked[0].Output); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the FIFO is left: %v", err)
	}
	f.waitLog("cron1", "cron1: signal: terminated (stopped) after")
}
