package isolation

import (
	"sync"
	"syscall"

	"github.com/piku/piku/internal/procgroup"
)

// Procs is what the memory watchdog reads of the system's processes.
type Procs interface {
	// Members returns the live processes of process group pgid.
	Members(pgid int) []int
	// RSS returns the resident memory of pid in bytes, 0 if unknown.
	RSS(pid int) int64
}

// SystemProcs reads the processes from /proc.
type SystemProcs struct{}

// Members implements Procs.
func (SystemProcs) Members(pgid int) []int { return procgroup.Members(pgid) }

// RSS implements Procs.
func (SystemProcs) RSS(pid int) int64 { return procgroup.RSS(pid) }

// MemoryWatchdog stands in for a memory cgroup where none can be used
// (ModeBestEffort), as supervisord's memmon and uWSGI's reload-on-rss did:
// the daemon calls Check every few seconds with each app's instances'
// process groups, and the instance with the most memory is killed when
// their resident memory adds up to more than the app's limit; the
// supervisor then restarts it with backoff. Between two checks an app
// can use any amount, and memory that is not resident (swapped out) or
// shared pages counted once per process make the sum approximate: it is
// best effort, and says so.
type MemoryWatchdog struct {
	Procs Procs
	// Kill ends process group pgid; nil sends it SIGKILL.
	Kill func(pgid int) error

	mu    sync.Mutex
	kills map[string]int64 // by app
	use   map[string]int64 // by app: the sum at the last check
}

// Check sums the resident memory of the processes of groups, app's
// instances' process groups, and when it is above limit (> 0) kills the
// group with the most of it. It returns the sum and the group it killed
// (0 for none).
func (w *MemoryWatchdog) Check(app string, limit int64, groups []int) (total int64, killed int, err error) {
	biggest, most := 0, int64(-1)
	for _, pgid := range groups {
		var sum int64
		for _, pid := range w.Procs.Members(pgid) {
			sum += w.Procs.RSS(pid)
		}
		total += sum
		if sum > most {
			biggest, most = pgid, sum
		}
	}
	w.mu.Lock()
	if w.use == nil {
		w.use, w.kills = map[string]int64{}, map[string]int64{}
	}
	w.use[app] = total
	w.mu.Unlock()
	if limit <= 0 || total <= limit || biggest <= 1 {
		return total, 0, nil
	}
	// Counted before the kill: the supervisor reads the count when it
	// sees the exit.
	w.mu.Lock()
	w.kills[app]++
	w.mu.Unlock()
	kill := w.Kill
	if kill == nil {
		kill = func(pgid int) error { return syscall.Kill(-pgid, syscall.SIGKILL) }
	}
	return total, biggest, kill(biggest)
}

// Kills returns how many of app's instances the watchdog killed, and
// the memory they used in all at the last check.
func (w *MemoryWatchdog) Kills(app string) (kills, use int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.kills[app], w.use[app]
}

// Forget drops what the watchdog knows of app.
func (w *MemoryWatchdog) Forget(app string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.kills, app)
	delete(w.use, app)
}
