package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/procgroup"
)

// liveProc is one process recorded in the state file.
type liveProc struct {
	App   string `json:"app"`
	Kind  string `json:"kind"`
	N     int    `json:"n"`
	PID   int    `json:"pid"`
	PGID  int    `json:"pgid"`
	Start uint64 `json:"start"` // /proc/PID/stat starttime, to tell a reused pid apart
	// Token is the group's procgroup token: processes that left the group
	// (setsid, double fork) still carry it in their environment.
	Token string `json:"token,omitempty"`

	// The rest is what a later daemon needs to adopt a supervised
	// instance (adopt.go); a cron run has none of it.

	// Supervised marks an instance of the supervisor (not a cron run).
	Supervised bool `json:"supervised,omitempty"`
	// Gen is the instance's generation.
	Gen int `json:"gen,omitempty"`
	// Port and Addr are a web instance's; Fixed says the port is pinned.
	Port  int    `json:"port,omitempty"`
	Addr  string `json:"addr,omitempty"`
	Fixed bool   `json:"fixed,omitempty"`
	// Spec is a digest of what the instance runs (specDigest): an adopted
	// instance whose app now asks for something else is replaced.
	Spec     string `json:"spec,omitempty"`
	Revision string `json:"revision,omitempty"`
	Dir      string `json:"dir,omitempty"`
	// Started is when the process started; Restarts how many processes
	// the instance started after its first.
	Started  time.Time `json:"started,omitzero"`
	Restarts int       `json:"restarts,omitempty"`
	// Output is the FIFO the process writes its output to.
	Output string `json:"output,omitempty"`
	// Log is a cron run's log file, where its adopter copies its output.
	Log string `json:"log,omitempty"`
}

// stateFile keeps the list of live processes on disk, so that a daemon
// killed with SIGKILL leaves enough behind for the next one to clean up.
type stateFile struct {
	path string
	log  *slog.Logger

	mu    sync.Mutex
	procs map[int]liveProc // by pid
}

func (f *stateFile) add(p liveProc) {
	if f.path == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.procs[p.PID] = p
	f.writeLocked()
}

func (f *stateFile) remove(pid int) {
	if f.path == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.procs, pid)
	f.writeLocked()
}

func (f *stateFile) writeLocked() {
	list := make([]liveProc, 0, len(f.procs))
	for _, p := range f.procs {
		list = append(list, p)
	}
	slices.SortFunc(list, func(a, b liveProc) int { return a.PID - b.PID })
	b, err := json.MarshalIndent(list, "", "  ")
	if err == nil {
		err = layout.WriteFile(f.path, append(b, '\n'), 0o600)
	}
	if err != nil {
		f.log.Error("writing the process state file", "err", err)
	}
}

// readState reads a state file; a missing file is an empty list.
func readState(path string) ([]liveProc, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []liveProc
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return list, nil
}

func signalPids(pids []int, sig syscall.Signal) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig)
	}
}

// reapLeftovers stops the process groups recorded by a previous daemon,
// with the processes that left them but carry their token:
// SIGTERM to each group that is still ours, then SIGKILL to what is left
// after grace. A group is ours if its leader is the recorded process (same
// start time), or if the leader is gone and the group still has members.
// These processes are not our children, so their end can only be seen in
// /proc; this is the one place that polls, for at most grace.
func reapLeftovers(log *slog.Logger, list []liveProc, grace time.Duration) {
	var groups []liveProc
	for _, p := range list {
		if p.PGID <= 1 {
			continue
		}
		reused := false
		if _, start, err := procgroup.Stat(p.PID); err == nil && start != p.Start {
			reused = true // the pid was reused by another process
		}
		escaped := procgroup.Tagged(p.Token)
		if (reused || len(procgroup.Members(p.PGID)) == 0) && len(escaped) == 0 {
			continue
		}
		log.Info("stopping a process left by a previous daemon", "app", p.App, "kind", p.Kind, "n", p.N, "pid", p.PID,
			"escaped", len(escaped))
		if !reused {
			_ = procgroup.SignalGroup(p.PGID, syscall.SIGTERM)
		} else {
			p.PGID = 0 // not ours any more: only the tagged processes are
		}
		signalPids(escaped, syscall.SIGTERM)
		groups = append(groups, p)
	}
	left := func(p liveProc) bool {
		return (p.PGID > 1 && len(procgroup.Members(p.PGID)) > 0) || len(procgroup.Tagged(p.Token)) > 0
	}
	deadline := time.Now().Add(grace)
	for len(groups) > 0 {
		groups = slices.DeleteFunc(groups, func(p liveProc) bool { return !left(p) })
		if len(groups) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range groups {
				log.Warn("killing a process group left by a previous daemon", "app", p.App, "kind", p.Kind, "pgid", p.PGID)
				if p.PGID > 1 {
					_ = procgroup.SignalGroup(p.PGID, syscall.SIGKILL)
				}
				signalPids(procgroup.Tagged(p.Token), syscall.SIGKILL)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CronRun is a cron run of app, as the daemon records it in the state
// file.
type CronRun struct {
	App, Name string
	// Log is the job's log file; Output the run's output FIFO, "" for a
	// pipe (a run that dies with the daemon).
	Log, Output string
	Process     *procgroup.Process
}

// LeftRun is a cron run an earlier daemon left going, adopted.
type LeftRun struct {
	CronRun
	// Done removes the run's record once it has ended.
	Done func()
}

// Track records r, a process group the daemon started outside the
// supervisor (a cron run), in the state file: a later daemon adopts it
// when it writes into a FIFO (LeftRuns), and otherwise stops it like the
// supervisor's own when this one was killed. The function returned
// removes it once the group has ended.
func (s *Supervisor) Track(r CronRun) (done func()) {
	p := r.Process
	_, start, _ := procgroup.Stat(p.Pid())
	s.state.add(liveProc{App: r.App, Kind: r.Name, PID: p.Pid(), PGID: p.PGID, Start: start, Token: p.Token,
		Started: p.Started, Output: r.Output, Log: r.Log})
	return func() { s.state.remove(p.Pid()) }
}

// LeftRuns returns the cron runs an earlier daemon left going, adopted
// when the supervisor was made: the cron runner follows them. A second
// call returns none.
func (s *Supervisor) LeftRuns() []LeftRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.leftRuns
	s.leftRuns = nil
	return out
}
