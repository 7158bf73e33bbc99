// Package testdeps lets tests ask for the system programs they drive (sshd,
// uwsgi, nginx, pebble...). A missing program fails the test with the
// package that provides it, because `make test` installs them all; set
// PIKU_TEST_SKIP_MISSING=1 to skip such tests instead on a machine where
// installing is not an option (the skip names what is missing).
package testdeps

import (
	"os"
	"os/exec"
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
