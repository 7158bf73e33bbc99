// Package testdeps lets tests ask for the system programs they drive (sshd,
// uwsgi, nginx, pebble...). A missing program fails the test with the
// package that provides it, because `make test` installs them all; set
// PIKU_TEST_SKIP_MISSING=1 to skip such tests instead on a machine where
// installing is not an option (the skip names what is missing).
package testdeps

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Require returns the path of program, looked up on PATH and then in the
// extra directories given. When it is missing the test fails (or skips,
// see the package doc) with a message naming install, the command that
// provides it.
func Require(t testing.TB, program, install string, extraDirs ...string) string {
	t.Helper()
	if p, err := exec.LookPath(program); err == nil {
		return p
	}
	for _, d := range extraDirs {
		p := d + "/" + program
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := program + " is not installed (" + install + "; `make test` installs it)"
	if os.Getenv("PIKU_TEST_SKIP_MISSING") == "1" {
		t.Skip(msg)
	}
	t.Fatal(msg)
	return ""
}

// Fixed ports. Tests that need ports known in advance (a daemon's app
// port range, the end-to-end scripts' listeners) take them from one window
// of PortWindow ports starting at PortBase, each test its own part, so
// that the packages `go test ./...` runs at once never share a port.
// PIKU_TEST_PORT_BASE moves the window, so that two checkouts can run their
// tests side by side. Every part stays below the kernel's ephemeral range
// (32768 and up) with the default base, so no outgoing connection of the
// tests can hold one.
const (
	PortWindow = 6200

	PortsScripts    = 0    // ScriptBlocks blocks of ScriptBlock ports, one per end-to-end script
	PortsSSH        = 4000 // 500 app ports for the SSH end-to-end test
	PortsACME       = 4500 // 500 app ports for the ACME end-to-end test
	PortsSupervisor = 5000 // 1000 ports for the supervisor's tests
	PortsMigrate    = 6000 // 100 ports for the migration end-to-end test
	PortsSpare      = 6100 // 100 ports for whatever comes next

	ScriptBlock  = 50 // ports per end-to-end script: listeners first, apps from the 10th
	ScriptBlocks = (PortsSSH - PortsScripts) / ScriptBlock
)

// PortBase is the first port of the window: 10000, or PIKU_TEST_PORT_BASE.
func PortBase() int {
	if v := os.Getenv("PIKU_TEST_PORT_BASE"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 1024 && n+PortWindow < 65536 {
			return n
		}
		panic("PIKU_TEST_PORT_BASE=" + v + ": want a port above 1024 with room for " + strconv.Itoa(PortWindow) + " after it")
	}
	return 10000
}

// Waiting returns a context for a wait that has no bound of its own (a
// process to exit, a line to appear, a group to be gone): tests wait for
// the event itself, never for a guessed time, and the test binary's
// -timeout is the only bound. The context ends a little before that
// timeout (a tenth of the time left, at most a minute), so the wait can
// fail with its own message and what it saw instead of the timeout's
// goroutine dump. Without a timeout it ends only with the test.
func Waiting(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if end, ok := d.Deadline(); ok {
			margin := min(time.Until(end)/10, time.Minute)
			ctx, cancel = context.WithDeadline(context.Background(), end.Add(-margin))
		}
	}
	t.Cleanup(cancel)
	return ctx
}
