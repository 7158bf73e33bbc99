// Package testdeps lets tests ask for the system programs they drive (sshd,
// uwsgi, nginx, pebble...). A missing program fails the test with the
// package that provides it, because `make test` installs them all; set
// PIKU_TEST_SKIP_MISSING=1 to skip such tests instead on a machine where
// installing is not an option (the skip names what is missing).
package testdeps

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
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
	PortWindow = 4200

	PortsScripts    = 0    // 25 blocks of 80, one per end-to-end script
	PortsSSH        = 2000 // 500 app ports for the SSH end-to-end test
	PortsACME       = 2500 // 500 app ports for the ACME end-to-end test
	PortsSupervisor = 3000 // 1000 ports for the supervisor's tests
	PortsMigrate    = 4000 // 100 ports for the migration end-to-end test
	PortsSpare      = 4100 // 100 ports for whatever comes next
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
