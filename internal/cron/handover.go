package cron

import (
	"time"

	"github.com/piku/piku/internal/procgroup"
	"gopkg.in/natefinch/lumberjack.v2"
)

// adopt makes a an adopted run of its job: the job is the app's when the
// app sets its jobs (Set), and until then a placeholder with no schedule.
// Its output is read from its FIFO again, which holds what the run wrote
// while no daemon read it.
func (r *Runner) adopt(s *state, a Adopted) {
	j := &job{Job: Job{Name: a.Name, Log: a.Log}, app: a.App}
	j.log = &lumberjack.Logger{Filename: a.Log, MaxSize: r.opts.LogMaxSizeMB, MaxBackups: r.opts.LogBackups}
	if sv, ok := s.saved[a.App][a.Name]; ok {
		j.lastRun, j.lastExit, j.lastCode, j.lastDur = sv.LastRun, sv.LastExit, sv.LastExitCode, sv.LastDuration
	}
	out, err := procgroup.OpenOutput(a.Output)
	if err != nil {
		r.opts.Logger.Warn("cannot read the output of an adopted cron run: it is lost", "app", a.App, "job", a.Name, "err", err)
		out = nil
	}
	r.opts.Logger.Info("adopted a cron run left by an earlier daemon", "app", a.App, "job", a.Name, "pid", a.Process.Pid())
	done := a.Done
	if done == nil {
		done = func() {}
	}
	j.run = r.follow(s, j.log, a.Name, a.Process, out, a.Output, done)
	s.apps[a.App] = append(s.apps[a.App], j)
}

// Handover readies the runner for a restart in place: no run starts any
// more, and each run's output stops being copied (what the run writes
// next waits in its FIFO for the next daemon). The runs go on: the next
// daemon adopts them. Runs without a FIFO (no OutputDir) are not handed
// over: they die with this daemon's image. Handover returns once every
// copier has stopped.
func (r *Runner) Handover() {
	_ = r.do(func(s *state) {
		s.handedOver = true
		for _, jobs := range s.apps {
			for _, j := range jobs {
				if j.run == nil || j.run.out == nil {
					continue
				}
				_ = j.run.out.SetReadDeadline(time.Now())
				<-j.run.copied
			}
		}
	})
}

// StopUnclaimed stops the adopted runs whose app did not set a job of
// their name (the app is stopped, gone or broken), and forgets them. The
// daemon calls it once its start-up rollouts are done.
func (r *Runner) StopUnclaimed() {
	_ = r.do(func(s *state) {
		for app, jobs := range s.apps {
			kept := jobs[:0]
			for _, j := range jobs {
				if j.Schedule != nil {
					kept = append(kept, j)
					continue
				}
				r.opts.Logger.Info("stopping a cron run left by an earlier daemon: its app does not run that job", "app", app, "job", j.Name)
				if j.run != nil {
					j.run.cancel()
				}
			}
			if len(kept) == 0 {
				delete(s.apps, app)
			} else {
				s.apps[app] = kept
			}
		}
	})
}
