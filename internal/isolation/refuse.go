package isolation

import (
	"fmt"
	"os"
)

// RefusedError says that an app's process asked for what only the
// operator may do.
type RefusedError struct {
	Process AppProcess
	// What was refused: "the piku control socket", "the piku command".
	What string
}

func (e *RefusedError) Error() string {
	app := "an app"
	if e.Process.App != "" {
		app = fmt.Sprintf("app %q", e.Process.App)
	}
	return fmt.Sprintf("refused: process %d belongs to %s (%s); apps may not use %s, which can stop, change or destroy any app: run it as the operator, outside the app",
		e.Process.PID, app, e.Process.Reason, e.What)
}

// CallerCheck returns the check the daemon (pid daemonPID) runs on every
// caller of its control socket: the caller must be the daemon's own Unix
// user or root, and must not be an app's process (see Owner).
func CallerCheck(daemonPID int) func(pid, uid int) error {
	self := os.Getuid()
	return func(pid, uid int) error {
		if uid != self && uid != 0 {
			return fmt.Errorf("refused: uid %d is not the piku daemon's user", uid)
		}
		if a, ok := Owner(pid, daemonPID); ok {
			return &RefusedError{Process: a, What: "the piku control socket"}
		}
		return nil
	}
}

// CheckSelf returns an error when the calling process is an app's: the
// piku command refuses to act for apps, as the control socket does. It
// cannot keep an app from the files it could reach anyway; that is the
// confinement's part (docs/SUPERVISOR.md).
func CheckSelf() error {
	if a, ok := Owner(os.Getpid(), 0); ok {
		return &RefusedError{Process: a, What: "the piku command"}
	}
	return nil
}
