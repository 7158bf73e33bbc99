package daemon

import (
	"context"
	"time"

	"github.com/piku/piku/internal/isolation"
)

// memoryCheckEvery is how often the memory watchdog sums each app's
// memory in best-effort mode.
const memoryCheckEvery = 5 * time.Second

// isolationMode is the isolation mode as the daemon's start line says it.
func (d *Daemon) isolationMode() string {
	if d.cgroups.Mode() == isolation.ModeBestEffort {
		return "best effort: CPU and process limits not enforced, memory watched every " + memoryCheckEvery.String()
	}
	return string(d.cgroups.Mode())
}

// watchMemory runs the memory watchdog until ctx ends, where no memory
// cgroup holds apps' limits: every memoryCheckEvery, an app whose
// instances use more than its PIKU_MEMORY_MAX in all has its biggest
// instance killed, which the supervisor restarts with backoff.
func (d *Daemon) watchMemory(ctx context.Context) error {
	if d.cgroups.Mode() != isolation.ModeBestEffort {
		return nil
	}
	t := time.NewTicker(memoryCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			d.checkMemory()
		}
	}
}

// checkMemory runs one pass of the watchdog over every app with a memory
// limit.
func (d *Daemon) checkMemory() {
	d.asked.Range(func(k, v any) bool {
		app, limit := k.(string), v.(asked).limits.MemoryMax
		if limit <= 0 {
			return true
		}
		var groups []int
		for _, in := range d.sup.Status(app) {
			if in.PID > 1 {
				groups = append(groups, in.PID) // each instance leads its process group
			}
		}
		total, killed, err := d.watchdog.Check(app, limit, groups)
		if killed != 0 {
			d.log.Warn("memory watchdog (best effort): the app's processes use more than PIKU_MEMORY_MAX: killed the biggest instance, which is restarted with backoff",
				"app", app, "memory_bytes", total, "limit", isolation.FormatSize(limit), "pgid", killed, "err", err)
		}
		return true
	})
}
