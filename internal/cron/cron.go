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
package cron

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
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
			s.finish(f)
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
			s.finish(f)
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
			if o, ok := old[spec.Name]; ok {
				nj.run = o.run
				if o.Schedule.String() == spec.Schedule.String() && o.Command == spec.Command {
					nj.next, nj.lastRun, nj.lastExit = o.next, o.lastRun, o.lastExit
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
		if len(next) == 0 {
			delete(s.apps, app)
		} else {
			s.apps[app] = next
		}
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
			out = append(out, JobStatus{Name: j.Name, Schedule: j.Schedule.String(), NextRun: j.next,
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
			if j.run != nil {
				fmt.Fprintf(j.log, "[%s] %s: skipped: previous run still going\n", at.Format(time.RFC3339), j.Name)
				continue
			}
			j.lastRun = at
			j.run = r.start(s, j, at)
		}
	}
}

// finish records the end of a run.
func (s *state) finish(f finished) {
	for _, jobs := range s.apps {
		for _, j := range jobs {
			if j.run == f.run {
				j.run = nil
				j.lastExit, j.lastCode, j.lastDur = f.exit, f.code, f.dur
			}
		}
	}
}

// start launches a run of j in its own goroutine, owned by s.runs.
func (r *Runner) start(s *state, j *job, at time.Time) *run {
	ctx, cancel := context.WithCancel(s.ctx)
	ru := &run{cancel: cancel}
	log, name, command, dir, env := j.log, j.Name, j.Command, j.Dir, slices.Clone(j.Env)
	s.runs.Add(1)
	go func() {
		defer s.runs.Done()
		defer cancel()
		res := execute(ctx, log, name, command, dir, env, at, r.opts.StopTimeout)
		// The owner may be shutting down; it reads finished until every
		// run is done.
		s.finished <- finished{run: ru, result: res}
	}()
	return ru
}

// execute runs one command and returns how it ended.
func execute(ctx context.Context, log io.Writer, name, command, dir string, env []string, at time.Time, stopTimeout time.Duration) result {
	fmt.Fprintf(log, "[%s] %s: running: %s\n", at.Format(time.RFC3339), name, command)
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdout, cmd.Stderr = log, log
	// Bound the wait for output after the shell exits, in case a
	// background child keeps the pipe open.
	cmd.WaitDelay = stopTimeout
	p, err := procgroup.Start(cmd)
	if err != nil {
		fmt.Fprintf(log, "[%s] %s: could not start: %v\n", time.Now().Format(time.RFC3339), name, err)
		return result{exit: "could not start: " + err.Error(), code: -1}
	}
	stopped := false
	select {
	case <-p.Done():
	case <-ctx.Done():
		stopped = true
		p.Stop(stopTimeout, nil)
	}
	exit := p.Exit()
	status := exit
	if stopped {
		status += " (stopped)"
	}
	dur := time.Since(p.Started)
	fmt.Fprintf(log, "[%s] %s: %s after %s\n", time.Now().Format(time.RFC3339), name, status, dur.Round(time.Millisecond))
	return result{exit: exit, code: p.Cmd.ProcessState.ExitCode(), dur: dur}
}
