package supervisor

import (
	"syscall"

	"github.com/piku/piku/internal/isolation"
)

// OOMCounter tells how many of an app's processes the kernel's OOM killer
// has ended at the app's memory limit, and that limit in bytes (0: none
// known). The daemon implements it over the app's cgroup; the count only
// grows.
type OOMCounter interface {
	OOMKills(app string) (kills, limit int64)
}

// noteOOM remembers the app's OOM kill count as the instance's process
// starts, so that its exit can tell whether the OOM killer ended it.
func (in *instance) noteOOM() {
	if in.s.oom != nil {
		in.oomSeen, _ = in.s.oom.OOMKills(in.app)
	}
}

// exitCause says how p ended, as `piku ps` shows it: a SIGKILL while the
// app's OOM kill count grew is the kernel's OOM killer at the app's
// memory limit ("killed: out of memory (limit 512M)"), logged as such.
// Exit status 137 counts as a SIGKILL too: it is how a shell that ran
// the app's program as its child (a Procfile line with shell syntax)
// reports the child's SIGKILL.
func (in *instance) exitCause(p *proc) string {
	last := p.Exit()
	if in.s.oom == nil {
		return last
	}
	ws, ok := p.WaitStatus()
	killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL || ws.Exited() && ws.ExitStatus() == 128+int(syscall.SIGKILL)
	if !ok || !killed {
		return last
	}
	kills, limit := in.s.oom.OOMKills(in.app)
	if kills <= in.oomSeen {
		return last
	}
	in.oomSeen = kills
	msg := "killed: out of memory"
	if limit > 0 {
		msg += " (limit " + isolation.FormatSize(limit) + ")"
	}
	in.log.Warn("the kernel's OOM killer ended the process at the app's memory limit; restarting with backoff",
		"pid", p.Pid(), "memory_limit_bytes", limit, "oom_kills", kills)
	return msg
}
