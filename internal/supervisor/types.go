package supervisor

import (
	"context"
	"time"
)

// PortRange is where web instances get their ports: Bind:Min..Bind:Max.
// Zero values mean 127.0.0.1 and 5000..5999.
type PortRange struct {
	Bind     string
	Min, Max int
}

// Router is told which addresses serve an app. The daemon implements it
// over the proxy.
type Router interface {
	// Route makes addrs the web backends of app. It returns once new
	// requests go only to addrs.
	Route(app string, addrs []string)
	// Drain returns once no request is in flight to any of addrs, or ctx
	// ends. It returns how many requests were still in flight then.
	Drain(ctx context.Context, addrs []string) int
}

// State is where an instance is in its life.
type State string

// The states of an instance; see the package documentation.
const (
	StateStarting  State = "starting"
	StateRunning   State = "running"
	StateBackoff   State = "backoff"
	StateCrashLoop State = "crash-looping"
	StateUnhealthy State = "unhealthy" // failed its health check; being restarted
	StateStopping  State = "stopping"
	StateStopped   State = "stopped"
	StateExited    State = "exited"
	// StateFailed is a new web instance that was not ready within the boot
	// timeout. It is still checked, and is running once it answers.
	StateFailed State = "failed"
)

// States lists every State, in the order a process usually goes through
// them.
var States = []State{StateStarting, StateRunning, StateUnhealthy, StateBackoff, StateCrashLoop,
	StateStopping, StateStopped, StateExited, StateFailed}

// InstanceStatus is a snapshot of one instance (one ordinal of one kind).
type InstanceStatus struct {
	Kind       string
	N          int
	State      State
	PID        int // 0 while no process runs
	Port       int // 0 for non-web kinds
	Addr       string
	StartedAt  time.Time // when the current (or last) process started
	Restarts   int       // processes started after the first one
	LastExit   string    // "exit 3", "signal: killed"; "" before the first exit
	NextRetry  time.Time // in backoff or crash-looping: when the next start is due
	RSS        int64     // resident memory in bytes, from /proc/PID/statm
	Revision   string
	Generation int

	// ExitCode is the last exit's code: -1 when a signal ended it or the
	// process did not start.
	ExitCode int
	// RecentRestarts are the times of the restarts within the hour before
	// the last one (at most maxRecentRestarts); the slice is never changed
	// in place.
	RecentRestarts []time.Time
	// CPU is the CPU seconds the running process used, from /proc/PID/stat.
	CPU float64
	// LogDropped counts the bytes of output dropped because the log could
	// not be written (a full disk); LogError is the last such error while
	// writes still fail, "" once they succeed again.
	LogDropped int64
	LogError   string
	// LogRateDropped counts the bytes of output dropped because the app
	// wrote more than its rate (LogPolicy.Rate).
	LogRateDropped int64
	// HealthFailures is the number of health checks failed in a row by
	// the running process; LastHealthError is why the last process was
	// restarted by the health check ("" if it never was).
	HealthFailures  int
	LastHealthError string
}

// AppSpec is the desired formation of one app.
type AppSpec struct {
	App      string
	Revision string // the checked-out revision; a change replaces every kind
	Dir      string // working directory of every process; a change replaces every kind
	// Processes are the kinds to run; kinds not listed are stopped.
	Processes []ProcessSpec
	// Restart lists kinds to replace even if unchanged; "*" means all.
	Restart []string
	// KeepRunning keeps every kind that runs on its generation (command,
	// environment, revision, directory) unless it is in Restart: only its
	// count changes, with new ordinals like the running ones. Kinds not
	// running start from this spec.
	KeepRunning bool
	Policy      Policy
	Logs        LogPolicy
	// Progress, if set, is told how the boot of new instances goes: which
	// address is awaited and which instances are ready; and, as transient
	// lines that matter only while someone watches, what the ones still
	// awaited answered, every few seconds. It may be called from several
	// goroutines, one call at a time.
	Progress func(msg string, transient bool)
	// Report, when set, is called once per changed kind with its outcome,
	// after the rollout.
	Report func(Outcome)
}

// Outcome is what a rollout did with one kind.
type Outcome struct {
	Kind   string
	Result Result
	Err    error // why the new instances did not come up; nil when ready
	// Strategy is how the kind was replaced: StrategyRolling (new
	// instances beside the old ones) or StrategyRecreate (the old ones
	// stopped first); "" when it was only scaled.
	Strategy string
}

// The strategies of a kind's replacement (Outcome.Strategy).
const (
	StrategyRolling  = "rolling"
	StrategyRecreate = "recreate"
)

// Result is the decision a rollout made for one kind.
type Result string

// The results of a kind's rollout.
const (
	// ResultReady: the new instances are ready and live.
	ResultReady Result = "ready"
	// ResultKept: the new instances failed and were stopped; the healthy
	// old generation keeps running.
	ResultKept Result = "kept the running version"
	// ResultReplacedFailing: the new instances failed, but the old
	// generation was not healthy either: the new one is live, retried with
	// backoff.
	ResultReplacedFailing Result = "failing, replaced a failing version; retried with backoff"
	// ResultFirstFailing: the new instances failed and nothing older ran:
	// they stay supervised, retried with backoff.
	ResultFirstFailing Result = "failing, nothing older was running; retried with backoff"
)

// Policy holds the timings of an app's processes. A zero field takes its
// default.
type Policy struct {
	StopTimeout time.Duration // SIGTERM to SIGKILL; default 10s
	// DrainTimeout bounds the wait for requests in flight to instances
	// being retired; the ones still open then (WebSocket, SSE, long polls)
	// are cut when the instances stop. Default 30s.
	DrainTimeout   time.Duration
	BootTimeout    time.Duration // how long a new web instance may take to be ready; default 60s
	BackoffInitial time.Duration // first restart delay; default 100ms
	BackoffMax     time.Duration // restart delay cap, and the crash-loop retry period; default 30s
	// HealthInterval is how often a running web instance is checked;
	// default 10s, negative turns the check off. HealthTimeout bounds one
	// check; default 5s. HealthFailures checks failed in a row restart
	// the instance; default 3.
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	HealthFailures int
}

// LogPolicy says where instance logs go and how they rotate.
type LogPolicy struct {
	Dir        string // KIND.N.log files are written here
	MaxSizeMB  int    // rotate beyond this size; default 10
	MaxBackups int    // rotated files kept; default 5
	MaxAgeDays int    // rotated files older than this are removed; default 0, no limit
	// Rate is the output of all the app's processes copied to its logs
	// per second, in bytes; beyond it (after a burst of a few seconds'
	// worth) output is dropped and counted. 0 is DefaultLogRate, below
	// 0 no limit.
	Rate int64
}

// ProcessSpec is one process kind of an app.
type ProcessSpec struct {
	Kind    string
	Command string // run with /bin/sh -c
	Count   int    // instances, ordinals 1..Count
	Env     []string
	// Web instances get PORT and are routed; they are ready when they
	// accept TCP connections on it, or answer HealthPath below 500.
	Web        bool
	FixedPort  int // pins the first instance's port (0: allocate)
	HealthPath string
	HealthHost string // Host header of the health check
	// Recreate replaces the kind stop-then-start (PIKU_ROLLOUT=recreate):
	// its old instances are routed away, drained and stopped before the
	// new ones start, for apps that cannot run two generations at once. A
	// web kind with a FixedPort is always replaced so.
	Recreate bool
}

// Defaults of Policy and LogPolicy.
const (
	DefaultStopTimeout    = 10 * time.Second
	DefaultDrainTimeout   = 30 * time.Second
	DefaultBootTimeout    = 60 * time.Second
	DefaultBackoffInitial = 100 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	DefaultLogMaxSizeMB   = 10
	DefaultLogMaxBackups  = 5
)

func (p Policy) withDefaults() Policy {
	if p.StopTimeout <= 0 {
		p.StopTimeout = DefaultStopTimeout
	}
	if p.DrainTimeout <= 0 {
		p.DrainTimeout = DefaultDrainTimeout
	}
	if p.BootTimeout <= 0 {
		p.BootTimeout = DefaultBootTimeout
	}
	if p.BackoffInitial <= 0 {
		p.BackoffInitial = DefaultBackoffInitial
	}
	if p.BackoffMax <= 0 {
		p.BackoffMax = DefaultBackoffMax
	}
	if p.BackoffMax < p.BackoffInitial {
		p.BackoffMax = p.BackoffInitial
	}
	switch {
	case p.HealthInterval < 0:
		p.HealthInterval = 0 // off
	case p.HealthInterval == 0:
		p.HealthInterval = DefaultHealthInterval
	}
	if p.HealthTimeout <= 0 {
		p.HealthTimeout = DefaultHealthTimeout
	}
	if p.HealthFailures <= 0 {
		p.HealthFailures = DefaultHealthFailures
	}
	return p
}

func (l LogPolicy) withDefaults() LogPolicy {
	if l.MaxSizeMB <= 0 {
		l.MaxSizeMB = DefaultLogMaxSizeMB
	}
	if l.MaxBackups <= 0 {
		l.MaxBackups = DefaultLogMaxBackups
	}
	if l.MaxAgeDays < 0 {
		l.MaxAgeDays = 0
	}
	if l.Rate == 0 {
		l.Rate = DefaultLogRate
	}
	return l
}
