package cron

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/piku/piku/internal/layout"
)

// savedJob is a job's status in the state file. A job's status is taken
// back only while its schedule and command are the same.
type savedJob struct {
	Schedule     string        `json:"schedule,omitempty"`
	Command      string        `json:"command,omitempty"`
	LastRun      time.Time     `json:"last_run,omitzero"`
	LastExit     string        `json:"last_exit,omitempty"`
	LastExitCode int           `json:"last_exit_code"`
	LastDuration time.Duration `json:"last_duration_ns,omitempty"`
}

// loadState reads the state file: by app, by job. A missing or unreadable
// file is an empty state (the latter logged).
func (r *Runner) loadState() map[string]map[string]savedJob {
	out := map[string]map[string]savedJob{}
	if r.opts.StateFile == "" {
		return out
	}
	b, err := os.ReadFile(r.opts.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return out
	}
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		r.opts.Logger.Error("reading the cron state file: the jobs' last runs are forgotten", "file", r.opts.StateFile, "err", err)
		return map[string]map[string]savedJob{}
	}
	return out
}

// record copies j's status into s.saved. A job adopted before its app set
// it has no schedule: the schedule and command saved are kept.
func (s *state) record(j *job) {
	if j.lastRun.IsZero() && j.lastExit == "" {
		return
	}
	m := s.saved[j.app]
	if m == nil {
		m = map[string]savedJob{}
		s.saved[j.app] = m
	}
	sv := m[j.Name]
	if j.Schedule != nil {
		sv.Schedule, sv.Command = j.Schedule.String(), j.Command
	}
	sv.LastRun, sv.LastExit, sv.LastExitCode, sv.LastDuration = j.lastRun, j.lastExit, j.lastCode, j.lastDur
	m[j.Name] = sv
}

// saveState writes s.saved to the state file, atomically.
func (r *Runner) saveState(s *state) {
	if r.opts.StateFile == "" {
		return
	}
	b, err := json.MarshalIndent(s.saved, "", "  ")
	if err == nil {
		err = layout.WriteFile(r.opts.StateFile, append(b, '\n'), 0o600)
	}
	if err != nil {
		r.opts.Logger.Error("writing the cron state file", "file", r.opts.StateFile, "err", err)
	}
}
