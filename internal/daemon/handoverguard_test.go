package daemon

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/piku/piku/internal/layout"
)

// TestGuard: the guard of a restart in place leaves at once when the new
// image says it is in charge, stops the apps when the daemon ends without
// saying so, and leaves them to an image that neither says so nor ends
// (a binary from before the guard) once guardWait has passed.
func TestGuard(t *testing.T) {
	root, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Init(); err != nil {
		t.Fatal(err)
	}
	// run runs Guard on a pipe whose write end the daemon, what the test
	// does with it first, holds until Guard returns.
	run := func(t *testing.T, daemon func(w *os.File)) string {
		t.Helper()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		daemon(w)
		// The log goes to a file, read once Guard has returned.
		log, err := os.Create(t.TempDir() + "/guard.log")
		if err != nil {
			t.Fatal(err)
		}
		defer log.Close()
		if err := Guard(root, r, slog.New(slog.NewTextHandler(log, nil))); err != nil {
			t.Fatal(err)
		}
		out, err := os.ReadFile(log.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	t.Run("in charge", func(t *testing.T) {
		if out := run(t, func(w *os.File) { w.Write([]byte{'k'}) }); strings.Contains(out, "stopping every app") {
			t.Errorf("the guard stopped the apps of a daemon in charge:\n%s", out)
		}
	})
	t.Run("ended", func(t *testing.T) {
		if out := run(t, func(w *os.File) { w.Close() }); !strings.Contains(out, "stopping every app") {
			t.Errorf("the guard did not stop the apps of a daemon that ended:\n%s", out)
		}
	})
	t.Run("silent", func(t *testing.T) {
		prev := guardWait
		guardWait = 10 * time.Millisecond
		defer func() { guardWait = prev }()
		out := run(t, func(*os.File) {}) // held open, nothing written
		if strings.Contains(out, "stopping every app") || !strings.Contains(out, "leaving the apps to it") {
			t.Errorf("the guard of a silent image:\n%s", out)
		}
	})
}
