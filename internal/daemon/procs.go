package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// How many threads run the daemon's Go code at once (GOMAXPROCS).
//
// The daemon's work is mostly small requests, each a few system calls and
// a few microseconds of Go. With a thread per CPU the Go scheduler hands
// the goroutines its poller wakes between threads (futex wake-ups, idle
// threads spinning before they sleep), which on two CPUs costs a small
// request 15-25 % more CPU than one thread does (docs/PERFORMANCE.md), CPU
// the apps beside the daemon could use. One thread, though, caps what the
// daemon can do at one CPU: compression, TLS and large answers need more
// when the daemon is busy. So by default the daemon runs on one thread and
// the governor adds one, up to the CPUs it may use, whenever the daemon
// kept its threads busy for a second while the machine had a CPU's worth
// idle to give it (on a machine the daemon and the apps keep busy, another
// thread would only cost more per request). It takes one away when the
// work would fit in one thread fewer, or when the machine has had no CPU
// to spare, for procsDownAfter looks in a row.

const (
	// procsEvery is how often the governor looks at the daemon's CPU use.
	procsEvery = time.Second
	// procsBusy is the share of its threads' time the daemon must use in
	// procsEvery for the governor to add a thread.
	procsBusy = 0.9
	// procsIdle is the share of one thread fewer's time under which the
	// daemon's use must stay, procsDownAfter long, for the governor to take
	// a thread away: well below procsBusy, so that it does not go back
	// and forth.
	procsIdle = 0.5
	// procsSpare is the idle CPU (in CPUs) the machine must have had in
	// procsEvery for the governor to add a thread; under procsFull, it
	// counts as busy, and a thread is taken away.
	procsSpare = 0.5
	procsFull  = 0.1
	// procsDownAfter is how many looks in a row must find the daemon idle
	// enough, or the machine full, before a thread is taken away.
	procsDownAfter = 5
)

// Procs decides how the daemon's thread count is set: a fixed count, or 0
// for the governor. set is the daemon's procs setting (0 = not set) and
// env the GOMAXPROCS variable it was started with; an operator's choice
// (either) is kept as it is, and returns -1 for GOMAXPROCS's.
func Procs(set int, env string) int {
	switch {
	case set > 0:
		return set
	case env != "":
		return -1
	default:
		return 0
	}
}

// governor adjusts the daemon's thread count between 1 and max by its CPU
// use.
type governor struct {
	max  int
	cur  int
	idle int // looks in a row that found the daemon idle enough
}

// next takes one look: load is the CPUs' worth of time the daemon took in
// the last interval, and spare the idle CPUs' worth of the machine in it.
// It returns the thread count to have from now on.
func (g *governor) next(load, spare float64) int {
	switch {
	case g.cur < g.max && load >= procsBusy*float64(g.cur) && spare >= procsSpare:
		g.cur++
		g.idle = 0
	case g.cur > 1 && (load < procsIdle*float64(g.cur-1) || spare < procsFull):
		if g.idle++; g.idle >= procsDownAfter {
			g.cur--
			g.idle = 0
		}
	default:
		g.idle = 0
	}
	return g.cur
}

// setProcs applies the procs setting and logs it. It returns the
// governor to run, or nil for a fixed count.
func setProcs(set int, log *slog.Logger) *governor {
	avail := runtime.GOMAXPROCS(0) // the CPUs the daemon may use (affinity, cgroup CPU limit)
	switch n := Procs(set, os.Getenv("GOMAXPROCS")); {
	case n < 0:
		log.Info("threads running Go code: GOMAXPROCS", "procs", avail)
		return nil
	case n > 0:
		runtime.GOMAXPROCS(n)
		log.Info("threads running Go code: the procs setting", "procs", n)
		return nil
	case avail == 1:
		return nil
	}
	runtime.GOMAXPROCS(1)
	log.Info("threads running Go code: 1, more while the daemon is busy", "max", avail)
	return &governor{max: avail, cur: 1}
}

// run adjusts the thread count every procsEvery until ctx ends.
func (g *governor) run(ctx context.Context, log *slog.Logger) error {
	t := time.NewTicker(procsEvery)
	defer t.Stop()
	last, lastCPU := time.Now(), cpuTime()
	lastIdle, lastTotal := machineIdle()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			cpu := cpuTime()
			idle, total := machineIdle()
			load := float64(cpu-lastCPU) / float64(now.Sub(last))
			spare := math.Inf(1) // unknown: the daemon's own use decides
			if total > lastTotal {
				spare = float64(idle-lastIdle) / float64(total-lastTotal) * float64(runtime.NumCPU())
			} else if total != 0 {
				spare = 0 // no tick passed
			}
			before := g.cur
			if n := g.next(load, spare); n != before {
				runtime.GOMAXPROCS(n)
				log.Debug("threads running Go code", "procs", n, "was", before, "daemon_cpus", load, "spare_cpus", spare)
			}
			last, lastCPU, lastIdle, lastTotal = now, cpu, idle, total
		}
	}
}

// machineIdle reads the machine's idle and total CPU time from /proc/stat,
// in its ticks; 0, 0 when it cannot.
func machineIdle() (idle, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 6 || string(f[0]) != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return 0, 0
		}
		if i < 8 { // user nice system idle iowait irq softirq steal; guest is in user
			total += n
		}
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return idle, total
}

// cpuTime is the CPU time the daemon's process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
