// Package control is the daemon's API on a Unix socket: HTTP+JSON served by
// the daemon (Server, over a Backend) and a typed Client used by the CLI.
//
// The socket lives in PIKU_ROOT/run/ with mode 0600, so only the piku user
// (and root) can drive the daemon. Long operations (deploy, restart, scale)
// stream progress lines as NDJSON and end with a result event, so the CLI
// can show a rollout as it happens and still get a clear error at the end.
package control

import (
	"context"
	"io"
	"time"
)

// Instance is the live state of one supervised process (one line of
// `piku ps`).
type Instance struct {
	Kind       string    `json:"kind"`
	N          int       `json:"n"`
	State      string    `json:"state"`
	PID        int       `json:"pid,omitempty"`
	Port       int       `json:"port,omitempty"`
	Addr       string    `json:"addr,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	Restarts   int       `json:"restarts"`
	LastExit   string    `json:"last_exit,omitempty"`
	NextRetry  time.Time `json:"next_retry,omitzero"`
	RSS        int64     `json:"rss_bytes,omitempty"`
	Revision   string    `json:"revision,omitempty"`
	Generation int       `json:"generation,omitempty"`
	// LogDropped is the bytes of output dropped because the log could not
	// be written; LogError the error while that lasts.
	LogDropped int64  `json:"log_dropped_bytes,omitempty"`
	LogError   string `json:"log_error,omitempty"`
	// LogRateDropped is the bytes of output dropped because the app
	// wrote more than its rate (PIKU_LOG_RATE).
	LogRateDropped int64 `json:"log_rate_dropped_bytes,omitempty"`
	// HealthFailures is the number of health checks the running process
	// failed in a row; LastHealthError why the health check last
	// restarted the instance.
	HealthFailures  int    `json:"health_failures,omitempty"`
	LastHealthError string `json:"last_health_error,omitempty"`
}

// CronJob is the state of one cronNAME entry.
type CronJob struct {
	Name     string    `json:"name"`
	Schedule string    `json:"schedule"`
	NextRun  time.Time `json:"next_run,omitzero"`
	LastRun  time.Time `json:"last_run,omitzero"`
	LastExit string    `json:"last_exit,omitempty"`
	Running  bool      `json:"running"`
}

// AppStatus is an app's live state.
type AppStatus struct {
	App     string `json:"app"`
	Running bool   `json:"running"`
	Stopped bool   `json:"stopped"` // switched off with `piku stop`
	// Maintenance is set while `piku maintenance:on` has the app in
	// maintenance.
	Maintenance *MaintenanceStatus `json:"maintenance,omitempty"`
	// Rollouts says how each kind was last replaced since the daemon
	// started: "rolling" (new instances beside the old) or "recreate"
	// (stop-then-start, PIKU_ROLLOUT=recreate or a pinned PORT).
	Rollouts  map[string]string `json:"rollouts,omitempty"`
	Revision  string            `json:"revision,omitempty"`
	Hosts     []string          `json:"hosts,omitempty"`
	Instances []Instance        `json:"instances"`
	Cron      []CronJob         `json:"cron,omitempty"`
	Error     string            `json:"error,omitempty"` // why the app could not be started, if it could not
	// Held is the number of the app's requests the proxy holds now, while
	// the app starts, wakes or runs its release (proxy/hold.go).
	Held int `json:"held,omitempty"`
	// Limits is what the app may use and uses, as this server enforces
	// it; nil when the daemon has not planned the app yet.
	Limits *Limits `json:"limits,omitempty"`
}

// Limits are an app's limits and its use against them. The enforced
// figures are read back from the kernel (the app's cgroup files, the
// rlimits of its running process), never from the app's settings; a
// limit of 0 is none.
type Limits struct {
	// Mode is how the limits are enforced: "cgroup v2", "cgroup v1" or
	// "best effort" (then no memory, CPU or process limit holds).
	Mode string `json:"mode"`
	// Asked are the limits the app's ENV sets ("memory 512M, pids
	// 1024"), which in best-effort mode are not enforced.
	Asked       string  `json:"asked"`
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	MemoryMax   int64   `json:"memory_max,omitempty"`
	MemoryHigh  int64   `json:"memory_high,omitempty"`
	Pids        int64   `json:"pids,omitempty"`
	PidsMax     int64   `json:"pids_max,omitempty"`
	CPUSeconds  float64 `json:"cpu_seconds,omitempty"`
	CPUWeight   int     `json:"cpu_weight,omitempty"`
	CPUMax      float64 `json:"cpu_max,omitempty"`
	// OpenFiles is the open files limit of each of the app's processes
	// (RLIMIT_NOFILE, enforced in every mode), read from a running one.
	OpenFiles int64 `json:"open_files,omitempty"`
	// CoreMax is the core file size limit of each of the app's processes
	// in bytes (RLIMIT_CORE, PIKU_CORE_MAX, enforced in every mode), -1
	// for none, read from a running one; absent while none runs.
	CoreMax *int64 `json:"core_max_bytes,omitempty"`
	// Nice is the nice value (PIKU_NICE) of each kind's processes, read
	// from a running one of the kind.
	Nice map[string]int `json:"nice,omitempty"`
	// OOMKills counts the app's processes the kernel's OOM killer ended
	// at its memory limit.
	OOMKills int64 `json:"oom_kills,omitempty"`
	// OutputDropped counts the bytes of the app's output dropped since
	// the daemon started because it wrote more than OutputRate bytes per
	// second (PIKU_LOG_RATE; 0 for no limit).
	OutputDropped int64 `json:"output_dropped_bytes,omitempty"`
	OutputRate    int64 `json:"output_rate,omitempty"`
}

// MaintenanceStatus is an app's maintenance as `piku ps` shows it.
type MaintenanceStatus struct {
	Message string `json:"message,omitempty"`
	Stop    bool   `json:"stop,omitempty"` // the processes are stopped
}

// DeployRequest asks the daemon to (re)read an app's files and roll them out.
type DeployRequest struct {
	// Restart lists the process kinds to replace even when unchanged; "*"
	// means every kind. Empty means only what changed is touched.
	Restart []string `json:"restart,omitempty"`
	// KeepRunning leaves the kinds that run on their current code and
	// settings (unless listed in Restart): only counts change and kinds
	// not running start. A push with PIKU_AUTO_RESTART=false asks for it;
	// the new release goes live at the next `piku restart`.
	KeepRunning bool `json:"keep_running,omitempty"`
	// First marks the app's first release. If it does not come up, the
	// deploy drops the app (Forget, then its files): the daemon reports
	// the kinds as failing, not as retried, and its error (CodeKept)
	// does not promise retries. The daemon does not forget the app
	// itself; one side owns that policy.
	First bool `json:"first,omitempty"`
}

// Event is one line of a streamed operation: a progress message, or the
// final result (Done) with the error, if any. The answer of an operation
// that does not stream is a final Event too.
type Event struct {
	Msg string `json:"msg,omitempty"`
	// Progress marks a transient line (what a rollout still waits for),
	// which clients show only on a terminal.
	Progress bool   `json:"progress,omitempty"`
	Done     bool   `json:"done,omitempty"`
	Error    string `json:"error,omitempty"`
	// Code tells kinds of Error apart (CodeUnknownApp, CodeKept); the
	// client rebuilds an *Error from it. "" = none.
	Code string `json:"code,omitempty"`
}

// ProgressWriter is an operation's output that can also take transient
// progress lines: the server's event stream, and on the client side a
// terminal.
type ProgressWriter interface {
	io.Writer
	Progress(msg string)
}

// WriteProgress sends a transient progress line to w when w takes them,
// and drops it otherwise.
func WriteProgress(w io.Writer, msg string) {
	if pw, ok := w.(ProgressWriter); ok {
		pw.Progress(msg)
	}
}

// Backend is what the daemon provides to the control server.
type Backend interface {
	// Apps returns the status of every known app, sorted by name.
	Apps(ctx context.Context) ([]AppStatus, error)
	// Status returns one app's status.
	Status(ctx context.Context, app string) (AppStatus, error)
	// Deploy reads the app's files and rolls them out, writing progress to
	// out. It clears the app's stopped mark.
	Deploy(ctx context.Context, app string, req DeployRequest, out io.Writer) error
	// Stop stops all of the app's processes gracefully and marks it stopped.
	Stop(ctx context.Context, app string, out io.Writer) error
	// Forget stops the app and drops every trace of it from the daemon
	// (routes, cron jobs); the CLI removes its files afterwards.
	Forget(ctx context.Context, app string) error
	// Pause makes the proxy hold the app's requests (within its hold
	// bounds) until resume is called: a deploy's release command with
	// PIKU_RELEASE_HOLD.
	Pause(ctx context.Context, app string) (resume func(), err error)
}
