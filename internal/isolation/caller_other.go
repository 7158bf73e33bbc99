//go:build !linux

package isolation

// AppProcess says which app a process belongs to.
type AppProcess struct {
	App    string
	PID    int
	Reason string
}

// Owner reports whether pid is an app's process; without /proc it cannot
// tell and says no.
func Owner(pid, daemonPID int) (AppProcess, bool) { return AppProcess{}, false }
