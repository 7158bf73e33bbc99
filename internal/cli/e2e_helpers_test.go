package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/testdeps"
)

// buildPiku builds the piku binary into dir and returns its path.
func buildPiku(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "piku")
	build := exec.Command("go", "build", "-o", bin, "./cmd/piku")
	build.Dir = filepath.Join("..", "..") // the module root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building piku: %v\n%s", err, out)
	}
	return bin
}

// portRange is PIKU_PORTS for the part of the test port window at offset,
// n ports long.
func portRange(offset, n int) string {
	base := testdeps.PortBase() + offset
	return fmt.Sprintf("PIKU_PORTS=%d-%d", base, base+n-1)
}

// startDaemon runs `bin daemon` for root with env added to the test's
// environment, logging to dir/daemon.log, and waits until it answers. The
// returned stop (called at the latest when the test ends) stops the daemon
// with SIGINT and fails the test unless it exits cleanly within 30s; the
// log is printed if the test failed.
func startDaemon(t *testing.T, bin string, root layout.Root, dir string, env ...string) (stop func()) {
	t.Helper()
	logFile := filepath.Join(dir, "daemon.log")
	daemonLog, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	d := exec.Command(bin, "daemon")
	d.Env = append(append(os.Environ(), "PIKU_ROOT="+root.Dir()), env...)
	d.Stdout, d.Stderr = daemonLog, daemonLog
	if err := d.Start(); err != nil {
		daemonLog.Close()
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			defer daemonLog.Close()
			_ = d.Process.Signal(os.Interrupt)
			done := make(chan error, 1)
			go func() { done <- d.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("the daemon did not exit cleanly: %v", err)
				}
			case <-time.After(30 * time.Second):
				_ = d.Process.Kill()
				<-done
				t.Error("the daemon did not stop within 30s")
			}
			if t.Failed() {
				b, _ := os.ReadFile(logFile)
				t.Logf("daemon log:\n%s", b)
			}
		})
	}
	t.Cleanup(stop)
	waitFor(t, "daemon answering", 30*time.Second, func() (bool, string) {
		_, err := control.NewClient(root.Socket()).Ping(context.Background())
		return err == nil, fmt.Sprint(err)
	})
	return stop
}
