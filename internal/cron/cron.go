// Package cron runs an app's cron entries (Procfile kinds starting with
// "cron") at the times their schedules name.
//
// One Runner serves every app. Its state belongs to one owner goroutine
// (Run); Set, Remove and Status send it requests. A single timer wakes the
// owner at the next due time; nothing polls. Each run is `/bin/sh -c
// COMMAND` in the job's directory with the job's environment, in a process
// group of its own, its output appended to the job's log (rotated with
// lumberjack) between a header and a footer line. A job runs at most once at
// a time: when it is due while its previous run is still going, the log
// says so and that time is skipped.
//
// A run outlives the daemon, as a supervised process does, when
// Options.OutputDir is set: it is started without Pdeathsig and writes into
// a FIFO there, which the runner copies into the job's log. A restart in
// place (Handover) leaves the runs going; the next daemon's runner adopts
// them (Options.Adopted), goes on copying their output, writes their footer
// and counts each as its job's run. Each job's last run, exit and duration
// are kept in Options.StateFile, so they outlive the daemon too.
package cron

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/piku/piku/internal/procgroup"
	"github.com/piku/piku/procfile"
)

// Job is one cron entry of an app.
type Job struct {
	// Name is the Procfile kind ("cron1", "cron-nightly").
	Name string
	// Schedule says when the job runs.
	Schedule *procfile.Schedule
	// Command is run with /bin/sh -c.
	Command string
	// Dir is the working directory (the app's checkout).
	Dir string
	// Env is the environment, "KEY=VALUE" strings.
	Env []string
	// Log is the log file (logs/APP/cronNAME.log), appended to and rotated.
	Log string
}

// JobStatus is what Status reports about a job.
type JobStatus struct {
	Name     string
	Schedule string
	// NextRun is when the job is due next.
	NextRun time.Time
	// LastRun is when the last run started; zero if it never ran.
	LastRun time.Time
	// LastExit is how the last run ended ("exit 0", "signal: killed");
	// empty before the first run ends.
	LastExit string
	// LastExitCode is the last run's exit code: -1 when a signal ended it
	// or it could not start.
	LastExitCode int
	// LastDuration is how long the last run that ended took.
	LastDuration time.Duration
	// Running reports whether a run is going now.
	Running bool
}

// Options configure a Runner.
type Options struct {
	// Clock schedules the runs; default SystemClock.
	Clock Clock
	// StopTimeout is how long a run may take to exit after SIGTERM before
	// its process group gets SIGKILL; default 10s.
	StopTimeout time.Duration
	// LogMaxSizeMB is the size in megabytes at which a job's log is
	// rotated; default 10. LogBackups old logs are kept; default 3.
	LogMaxSizeMB, LogBackups int
	// Track, when set, is told about every run's process group as it
	// starts and calls the function it returns once the run is over: the
	// daemon records runs in its process state file, so that a later
	// daemon adopts them (or, without an output FIFO, stops them).
	Track func(t Tracked) (done func())
	// OutputDir, when set, holds each run's output FIFO: the run is then
	// started without Pdeathsig and outlives the daemon, for the next one
	// to adopt. Empty (the default), a run writes to a pipe and dies with
	// the daemon.
	OutputDir string
	// StateFile, when set, keeps each job's last run, exit and duration
	// (JSON, written atomically), read when Run starts; default none.
	StateFile string
	// Adopted are the runs an earlier daemon left going, already adopted
	// (procgroup.Adopt): Run follows each as the run of its job.
	Adopted []Adopted
	// Logger is for the runner's own messages; default slog.Default().
	Logger *slog.Logger
}

// Tracked is a run as Options.Track is told about it.
type Tracked struct {
	App, Name string
	// Log is the job's log file.
	Log string
	// Output is the run's output FIFO; "" for a plain pipe.
	Output  string
	Process *procgroup.Process
}

// Adopted is a run an earlier daemon left going, as Options.Track was
// told about it, with its process adopted.
type Adopted struct {
	Tracked
	// Done is called once the run has ended.
	Done func()
}

// ErrStopped is returned by requests to a Runner that is not running.
var ErrStopped = errors.New("cron runner is stopped")

// Runner runs the cron jobs of every app. Create it with New, start it with
// Run, and end it by cancelling Run's context or with Stop.
type Runner struct {
	opts    Options
	reqs    chan func(*state)
	stop    chan struct{}
	done    chan struct{}
	started chan struct{}

	startOnce, stopOnce sync.Once
}

// New returns a Runner; it does nothing until Run.
func New(opts Options) *Runner {
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 10 * time.Second
	}
	if opts.LogMaxSizeMB <= 0 {
		opts.LogMaxSizeMB = 10
	}
	if opts.LogBackups <= 0 {
		opts.LogBackups = 3
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Runner{
		opts:    opts,
		reqs:    make(chan func(*state)),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		started: make(chan struct{}),
	}
}

// job is the owner's record of one job.
type job struct {
	Job
	app      string
	next     time.Time
	lastRun  time.Time
	lastExit string
	lastCode int
	lastDur  time.Duration
	run      *run // the run going now, or nil
	log      *lumberjack.Logger
}

// run is one execution of a job.
type run struct {
	cancel context.CancelFunc
	// out is the output FIFO the run's copier reads, nil for a pipe;
	// copied is closed when the copier has returned.
	out    *os.File
	copied chan struct{}
}

type finished struct {
	run *run
	result
}

// result is how a run ended.
type result struct {
	exit string        // "exit 0", "signal: killed"
	code int           // the exit code; -1 for a signal or a failed start
	dur  time.Duration // from start to end
}

type state struct {
	apps     map[string][]*job
	finished chan finished
	runs     sync.WaitGroup
	ctx      context.Context
	// saved is what the state file holds, by app and job.
	saved map[string]map[string]savedJob
	// handedOver is set by Handover: no run starts any more.
	handedOver bool
}

// Run runs the jobs until ctx ends or Stop is called; then it stops every
// running job (SIGTERM to its process group, SIGKILL after StopTimeout),
// waits for them and returns. Run may be called once.
func (r *Runner) Run(ctx context.Context) error {
	first := false
	r.startOnce.Do(func() { first = true })
	if !first {
		return errors.New("cron runner: Run called twice")
	}
	defer close(r.done)
	close(r.started)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &state{apps: map[string][]*job{}, finished: make(chan finished), ctx: ctx}
	s.saved = r.loadState()
	for _, a := range r.opts.Adopted {
		r.adopt(s, a)
	}
	var timer Timer
	var fire <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if timer != nil {
			timer.Stop()
		}
		timer, fire = nil, nil
		if next, ok := s.earliest(); ok {
			timer = r.opts.Clock.NewTimer(next.Sub(r.opts.Clock.Now()))
			fire = timer.C()
		}
		select {
		case req := <-r.reqs:
			req(s)
		case <-fire:
			r.due(s)
		case f := <-s.finished:
			r.finish(s, f)
		case <-r.stop:
			cancel()
			return r.shutdown(s)
		case <-ctx.Done():
			return r.shutdown(s)
		}
	}
}

// shutdown stops every run and waits for them.
func (r *Runner) shutdown(s *state) error {
	for _, jobs := range s.apps {
		for _, j := range jobs {
			if j.run != nil {
				j.run.cancel()
			}
		}
	}
	waited := make(chan struct{})
	go func() { s.runs.Wait(); close(waited) }()
	for {
		select {
		case f := <-s.finished:
			r.finish(s, f)
		case <-waited:
			for _, jobs := range s.apps {
				for _, j := range jobs {
					_ = j.log.Close()
				}
			}
			return nil
		}
	}
}

// Stop ends Run and waits until it has returned. It returns at once if Run
// was never called.
func (r *Runner) Stop() {
	r.stopOnce.Do(func() { close(r.stop) })
	select {
	case <-r.started:
		<-r.done
	default:
	}
}

// do runs fn in the owner goroutine and waits for it.
func (r *Runner) do(fn func(*state)) error {
	ran := make(chan struct{})
	select {
	case r.reqs <- func(s *state) { fn(s); close(ran) }:
		<-ran
		return nil
	case <-r.done:
		return ErrStopped
	}
}

// Set makes jobs the cron jobs of app, replacing the ones it had. A job
// whose name, schedule and command are unchanged keeps its status; a run
// still going keeps going and still counts as the job's run.
func (r *Runner) Set(app string, jobs []Job) error {
	for _, j := range jobs {
		if j.Name == "" || j.Schedule == nil || j.Command == "" || j.Log == "" {
			return fmt.Errorf("cron job %q of app %q: name, schedule, command and log are required", j.Name, app)
		}
	}
	return r.do(func(s *state) {
		old := map[string]*job{}
		for _, j := range s.apps[app] {
			old[j.Name] = j
		}
		now := r.opts.Clock.Now()
		var next []*job
		for _, spec := range jobs {
			nj := &job{Job: spec, app: app, next: spec.Schedule.Next(now)}
			if sv, ok := s.saved[app][spec.Name]; ok && sv.Schedule == spec.Schedule.String() && sv.Command == spec.Command {
				nj.lastRun, nj.lastExit, nj.lastCode, nj.lastDur = sv.LastRun, sv.LastExit, sv.LastExitCode, sv.LastDuration
			}
			if o, ok := old[spec.Name]; ok {
				nj.run = o.run
				switch {
				case o.Schedule == nil:
					// A run adopted before the app set its jobs: its
					// status is this job's.
					nj.lastRun, nj.lastExit, nj.lastCode, nj.lastDur = o.lastRun, o.lastExit, o.lastCode, o.lastDur
				case o.Schedule.String() == spec.Schedule.String() && o.Command == spec.Command:
					nj.next, nj.lastRun, nj.lastExit, nj.lastCode, nj.lastDur = o.next, o.lastRun, o.lastExit, o.lastCode, o.lastDur
				}
				if o.Log == spec.Log {
					nj.log = o.log
				} else {
					_ = o.log.Close()
				}
				delete(old, spec.Name)
			}
			if nj.log == nil {
				nj.log = &lumberjack.Logger{Filename: spec.Log, MaxSize: r.opts.LogMaxSizeMB, MaxBackups: r.opts.LogBackups}
			}
			next = append(next, nj)
		}
		for _, o := range old {
			if o.run != nil {
				o.run.cancel()
			}
			_ = o.log.Close()
		}
		slices.SortFunc(next, func(a, b *job) int { return cmpString(a.Name, b.Name) })
		delete(s.saved, app)
		if len(next) == 0 {
			delete(s.apps, app)
		} else {
			s.apps[app] = next
		}
		for _, j := range next {
			s.record(j)
		}
		r.saveState(s)
	})
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Remove drops every job of app and stops their running runs.
func (r *Runner) Remove(app string) error { return r.Set(app, nil) }

// Status reports app's jobs, sorted by name.
func (r *Runner) Status(app string) ([]JobStatus, error) {
	var out []JobStatus
	err := r.do(func(s *state) {
		for _, j := range s.apps[app] {
			sched := "-" // a run adopted before its app set its jobs
			if j.Schedule != nil {
				sched = j.Schedule.String()
			}
			out = append(out, JobStatus{Name: j.Name, Schedule: sched, NextRun: j.next,
				LastRun: j.lastRun, LastExit: j.lastExit, LastExitCode: j.lastCode, LastDuration: j.lastDur,
				Running: j.run != nil})
		}
	})
	return out, err
}

// earliest is the next due time over all jobs.
func (s *state) earliest() (time.Time, bool) {
	var t time.Time
	for _, jobs := range s.apps {
		for _, j := range jobs {
			if !j.next.IsZero() && (t.IsZero() || j.next.Before(t)) {
				t = j.next
			}
		}
	}
	return t, !t.IsZero()
}

// due starts every job whose time has come.
func (r *Runner) due(s *state) {
	now := r.opts.Clock.Now()
	for _, jobs := range s.apps {
		for _, j := range jobs {
			if j.next.IsZero() || j.next.After(now) {
				continue
			}
			at := j.next
			j.next = j.Schedule.Next(now)
			if s.handedOver {
				continue // the next daemon runs it
			}
			if j.run != nil {
				fmt.Fprintf(j.log, "[%s] %s: skipped: previous run still going\n", at.Format(time.RFC3339), j.Name)
				continue
			}
			j.lastRun = at
			j.run = r.start(s, j, at)
			s.record(j)
			r.saveState(s)
		}
	}
}

// finish records the end of a run.
func (r *Runner) finish(s *state, f finished) {
	for _, jobs := range s.apps {
		for _, j := range jobs {
			if j.run == f.run {
				j.run = nil
				j.lastExit, j.lastCode, j.lastDur = f.exit, f.code, f.dur
				s.record(j)
				r.saveState(s)
			}
		}
	}
}

// start launches a run of j, followed in its own goroutine owned by
// s.runs. The process starts here, in the owner, and is tracked before
// start returns: a Handover then finds every run recorded. It returns nil
// when the run could not start, with the job's status saying why.
func (r *Runner) start(s *state, j *job, at time.Time) *run {
	fmt.Fprintf(j.log, "[%s] %s: running: %s\n", at.Format(time.RFC3339), j.Name, j.Command)
	p, out, fifo, err := r.spawn(j)
	if err != nil {
		fmt.Fprintf(j.log, "[%s] %s: could not start: %v\n", time.Now().Format(time.RFC3339), j.Name, err)
		j.lastExit, j.lastCode, j.lastDur = "could not start: "+err.Error(), -1, 0
		return nil
	}
	done := func() {}
	if r.opts.Track != nil {
		done = r.opts.Track(Tracked{App: j.app, Name: j.Name, Log: j.Log, Output: fifo, Process: p})
	}
	return r.follow(s, j.log, j.Name, p, out, fifo, done)
}

// spawn starts j's command: without Pdeathsig and writing into a new FIFO
// under OutputDir when there is one (out reads it), else with Pdeathsig
// and writing into the job's log through a pipe.
func (r *Runner) spawn(j *job) (p *procgroup.Process, out *os.File, fifo string, err error) {
	cmd := exec.Command("/bin/sh", "-c", j.Command)
	cmd.Dir, cmd.Env = j.Dir, slices.Clone(j.Env)
	if r.opts.OutputDir != "" {
		fifo = filepath.Join(r.opts.OutputDir, fmt.Sprintf("%s.%s.%d.fifo", j.app, j.Name, time.Now().UnixNano()))
		var w *os.File
		err = os.MkdirAll(r.opts.OutputDir, 0o700)
		if err == nil {
			out, w, err = procgroup.OutputFIFO(fifo)
		}
		if err == nil {
			cmd.Stdout, cmd.Stderr = w, w
			p, err = procgroup.StartOutliving(cmd)
			_ = w.Close()
			if err != nil {
				_ = out.Close()
				_ = os.Remove(fifo)
				return nil, nil, "", err
			}
			return p, out, fifo, nil
		}
		r.opts.Logger.Warn("cannot make a cron run's output FIFO: using a pipe, so the run will not survive the daemon",
			"app", j.app, "job", j.Name, "err", err)
		cmd = exec.Command("/bin/sh", "-c", j.Command)
		cmd.Dir, cmd.Env = j.Dir, slices.Clone(j.Env)
	}
	cmd.Stdout, cmd.Stderr = j.log, j.log
	// Bound the wait for output after the shell exits, in case a
	// background child keeps the pipe open.
	cmd.WaitDelay = r.opts.StopTimeout
	p, err = procgroup.Start(cmd)
	return p, nil, "", err
}

// follow copies the output of a run's process p from out (when not nil)
// into log, waits for p to end, or stops it when the run is cancelled,
// writes the footer and reports the run as finished. done is called once
// p has ended; fifo, if any, is removed then.
func (r *Runner) follow(s *state, log io.Writer, name string, p *procgroup.Process, out *os.File, fifo string, done func()) *run {
	ctx, cancel := context.WithCancel(s.ctx)
	ru := &run{cancel: cancel, out: out}
	if out != nil {
		ru.copied = make(chan struct{})
		go copyOutput(out, log, ru.copied)
	}
	stopTimeout := r.opts.StopTimeout
	s.runs.Add(1)
	go func() {
		defer s.runs.Done()
		defer cancel()
		stopped := false
		select {
		case <-p.Done():
		case <-ctx.Done():
			stopped = true
			p.Stop(stopTimeout, nil)
		}
		if ru.copied != nil {
			// Bound the wait for output after the leader exits, in
			// case a background child keeps the FIFO open.
			t := time.NewTimer(stopTimeout)
			select {
			case <-ru.copied:
			case <-t.C:
				_ = out.SetReadDeadline(time.Now())
				<-ru.copied
			}
			t.Stop()
		}
		if fifo != "" {
			_ = os.Remove(fifo)
		}
		done()
		exit := p.Exit()
		status := exit
		if stopped {
			status += " (stopped)"
		}
		dur := time.Since(p.Started)
		fmt.Fprintf(log, "[%s] %s: %s after %s\n", time.Now().Format(time.RFC3339), name, status, dur.Round(time.Millisecond))
		// The owner may be shutting down; it reads finished until every
		// run is done.
		s.finished <- finished{run: ru, result: result{exit: exit, code: p.ExitCode(), dur: dur}}
	}()
	return ru
}

// copyOutput copies a run's output from the FIFO out into log until every
// writer has closed it, or until a read deadline ends it (a handover, or
// a background child that keeps it open), and closes out.
func copyOutput(out *os.File, log io.Writer, copied chan<- struct{}) {
	defer close(copied)
	defer out.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := out.Read(buf)
		if n > 0 {
			_, _ = log.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}
