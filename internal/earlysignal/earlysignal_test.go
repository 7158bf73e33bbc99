package earlysignal

import (
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/piku/piku/internal/testdeps"
)

// TestCatch: with Env set, SIGTERM is caught, not fatal; without it,
// nothing is registered.
func TestCatch(t *testing.T) {
	if c := catch(func(string) (string, bool) { return "", false }); c != nil {
		t.Fatal("caught signals without a handover")
	}
	c := catch(func(k string) (string, bool) { return "3=unix:/x", k == Env })
	if c == nil {
		t.Fatal("no channel after a handover")
	}
	defer signal.Stop(c)
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-c:
		if s != syscall.SIGTERM {
			t.Fatalf("caught %v", s)
		}
	case <-testdeps.Waiting(t).Done():
		t.Fatal("SIGTERM was not caught")
	}
}
