// Package procgroup starts a command as the leader of a process group of its
// own, signals the whole group, stops it with a grace period and describes
// how it ended. The supervisor's instances, cron runs and the deploy's
// build, preflight and release commands all go through it, so that a process
// and everything it started are stopped together.
package procgroup

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// Process is a command running as the leader of its own process group.
type Process struct {
	// Cmd is the started command; its ProcessState is set once Done is
	// closed.
	Cmd *exec.Cmd
	// PGID is the process group, the leader's pid.
	PGID int
	// Started is when the leader was started.
	Started time.Time
	// Token marks the group's processes in their environment (TagVar),
	// so that those which left the group are found too.
	Token string

	pid  int
	done chan struct{}
	err  error
	// ws is how the leader ended, once done is closed; known is false
	// when that cannot be learnt (an adopted process that is not the
	// caller's child).
	ws    syscall.WaitStatus
	known bool
}

// Start starts cmd as the leader of a new process group, with TagVar set to
// the group's token in its environment (cmd.Env, or the caller's own
// environment when that is nil). On Linux the leader
// is also killed when the thread that started it exits (Pdeathsig), so a
// daemon that dies without stopping it does not leave it behind. Any
// SysProcAttr already set on cmd is kept, with Setpgid added. A shell line
// (/bin/sh -c LINE) first raises its oom_score_adj to AppOOMScoreAdj,
// joins the cgroups its environment names and sets its open files limit
// (see prelude).
func Start(cmd *exec.Cmd) (*Process, error) { return start(cmd, true) }

// StartOutliving starts cmd as Start does, but without Pdeathsig: the
// group outlives the caller, so that a daemon that dies (a crash, SIGKILL)
// leaves it running for the next daemon to adopt (Adopt).
func StartOutliving(cmd *exec.Cmd) (*Process, error) { return start(cmd, false) }

// Prelude gives cmd, a shell line (/bin/sh -c LINE), the prelude Start
// gives one (the cgroups, limits, nice value and confinement its
// environment names, set before it runs anything), for a command started
// otherwise: `piku run`, which stays in its terminal's process group.
// Other commands only get their confinement.
func Prelude(cmd *exec.Cmd) { prelude(cmd) }

func start(cmd *exec.Cmd, deathsig bool) (*Process, error) {
	setGroup(cmd, deathsig)
	token := newToken()
	// Environ is what the command would get (with PWD set to Dir when
	// Env is nil), as a copy.
	cmd.Env = append(cmd.Environ(), TagVar+"="+token)
	prelude(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{Cmd: cmd, PGID: cmd.Process.Pid, Started: time.Now(), Token: token, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if cmd.ProcessState != nil {
			p.ws, p.known = cmd.ProcessState.Sys().(syscall.WaitStatus)
		}
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the leader has exited and cmd.Wait has returned.
func (p *Process) Done() <-chan struct{} { return p.done }

// Pid is the leader's pid.
func (p *Process) Pid() int { return p.pid }

// Signal sends sig to every process of the group, and to the processes
// that carry its token but left the group (a daemonised grandchild in a
// session of its own).
func (p *Process) Signal(sig syscall.Signal) error {
	err := SignalGroup(p.PGID, sig)
	signalTagged(p.Token, p.PGID, sig)
	return err
}

// newToken returns a random token for a new group.
func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Stop asks the group to end with SIGTERM and waits for the leader to exit.
// When grace has passed, or force is closed first (it may be nil), the group
// gets SIGKILL. Whatever is left of the group once the leader is gone is
// killed too, so nothing of it survives. Stop reports whether SIGKILL was
// needed.
func (p *Process) Stop(grace time.Duration, force <-chan struct{}) (killed bool) {
	_ = p.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		killed = true
	case <-force:
		killed = true
	}
	if killed {
		_ = p.Signal(syscall.SIGKILL)
		<-p.done
	}
	_ = p.Signal(syscall.SIGKILL) // the rest of the group, if any
	return killed
}

// Exit describes how the leader ended ("exit 3", "signal: killed"); it
// waits for the leader to exit. For an adopted process that is not the
// caller's child it is ExitUnknown.
func (p *Process) Exit() string {
	<-p.done
	if p.Cmd == nil {
		if !p.known {
			return ExitUnknown
		}
		return describeStatus(p.ws)
	}
	return Describe(p.Cmd.ProcessState, p.err)
}

// ExitUnknown is how an adopted process ended when it was not the
// caller's child: only its parent could learn its exit status.
const ExitUnknown = "exit status unknown (adopted from an earlier daemon)"

// WaitStatus is how the leader ended, once Done is closed; ok is false
// when that is unknown (see ExitUnknown).
func (p *Process) WaitStatus() (ws syscall.WaitStatus, ok bool) {
	<-p.done
	return p.ws, p.known
}

// ExitCode is the leader's exit code once Done is closed: -1 when a
// signal ended it, or when its end is unknown.
func (p *Process) ExitCode() int {
	ws, ok := p.WaitStatus()
	if !ok || !ws.Exited() {
		return -1
	}
	return ws.ExitStatus()
}

// Success reports whether the leader exited with status 0.
func (p *Process) Success() bool { return p.ExitCode() == 0 }

// describeStatus renders ws as Describe does.
func describeStatus(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "signal: " + ws.Signal().String()
	}
	return "exit " + strconv.Itoa(ws.ExitStatus())
}

// Describe renders how a process ended: "exit 0", "exit 3", "signal:
// terminated". Without a process state it is the error's text, or
// "unknown".
func Describe(ps *os.ProcessState, err error) string {
	if ps == nil {
		if err != nil {
			return err.Error()
		}
		return "unknown"
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "signal: " + ws.Signal().String()
	}
	return "exit " + strconv.Itoa(ps.ExitCode())
}

// SignalGroup sends sig to every process of the group pgid. A pgid below 2
// is refused: it would signal the caller's own group or every process.
func SignalGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return errors.New("procgroup: refusing to signal process group " + strconv.Itoa(pgid))
	}
	return syscall.Kill(-pgid, sig)
}
