package daemon

import (
	"log/slog"
	"syscall"
)

// fdReserve is how many of the daemon's file descriptors the proxy leaves
// to everything else: the supervisor's pipes and logs, the state files,
// the control socket, certificates, cron runs. A quarter of the limit, and
// at least 64.
func fdReserve(limit int) int { return max(64, limit/4) }

// proxyConnLimit is how many client connections the proxy may hold at
// once with limit file descriptors: each takes one, and one more to its
// backend, out of what fdReserve leaves.
func proxyConnLimit(limit int) int { return max(1, (limit-fdReserve(limit))/2) }

// raiseFDLimit raises the daemon's soft limit on open files to the hard
// limit (Go also does it at start; this makes it explicit and logged) and
// returns the limit now in force, 0 if unknown.
func raiseFDLimit(log *slog.Logger) int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Warn("reading the open file limit", "err", err)
		return 0
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			log.Warn("raising the open file limit", "to", rl.Max, "err", err)
			_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
		}
	}
	return int(min(rl.Cur, 1<<30))
}
