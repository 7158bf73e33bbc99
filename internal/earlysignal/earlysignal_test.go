package earlysignal

import (
	"os"
	"os/signal"
	"strconv"
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

// TestCatchReleasesTheGuard: once the signals are caught, a byte on the
// guard's pipe releases it, and the descriptor is closed.
func TestCatchReleasesTheGuard(t *testing.T) {
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	r := os.NewFile(uintptr(p[0]), "guard pipe")
	defer r.Close()
	fd := strconv.Itoa(p[1]) // catch closes it
	c := catch(func(k string) (string, bool) {
		switch k {
		case Env:
			return "", true
		case GuardEnv:
			return fd, true
		}
		return "", false
	})
	defer signal.Stop(c)
	buf := make([]byte, 2)
	if n, err := r.Read(buf); n != 1 || buf[0] != 'k' {
		t.Fatalf("read %q, %v; want the release byte", buf[:n], err)
	}
	// The write end is closed: the next read is the end of the pipe.
	if n, err := r.Read(buf); n != 0 || err == nil {
		t.Fatalf("read %q, %v after the release; want the end", buf[:n], err)
	}
}
