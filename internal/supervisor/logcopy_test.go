package supervisor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFullDiskDropsLogsAndKeepsTheProcess writes an instance's output to a
// log on a filesystem that is full: the output is dropped and counted, the
// process never notices (no SIGPIPE, no restart), and once space is freed
// logging resumes by itself.
func TestFullDiskDropsLogsAndKeepsTheProcess(t *testing.T) {
	logs := t.TempDir()
	if err := syscall.Mount("tmpfs", logs, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("needs a small tmpfs to fill (root and CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(logs, syscall.MNT_DETACH) })
	filler := filepath.Join(logs, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()

	ts := startSup(t, "")
	gate := filepath.Join(ts.dir, "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	spec := ts.spec("full", ProcessSpec{Kind: "worker", Count: 1, Env: []string{"PATH=/usr/bin:/bin"},
		Command: `i=0; while [ $i -lt 3000 ]; do echo "line $i: output nobody can store right now"; i=$((i+1)); done; ` +
			`: > wrote-all; read x < gate; echo resumed; exec sleep 1000`})
	spec.Logs.Dir = logs
	if err := ts.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(ts.dir, "wrote-all")
	var st InstanceStatus
	eventually(t, "the worker to write everything, or to be restarted", func() bool {
		st = ts.Status("full")[0]
		_, err := os.Stat(marker)
		return err == nil || st.Restarts > 0
	})
	if st.Restarts > 0 {
		t.Fatalf("the worker was restarted (last exit %q): it noticed the full disk", st.LastExit)
	}
	pid := st.PID
	eventually(t, "the dropped output to be counted", func() bool {
		st = ts.Status("full")[0]
		return st.LogDropped > 100000
	})
	if !strings.Contains(st.LogError, "no space left on device") {
		t.Errorf("LogError = %q", st.LogError)
	}

	// Space comes back: the next output is written, and nothing restarted.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	g, err := os.OpenFile(gate, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	g.WriteString("go\n")
	g.Close()
	log := filepath.Join(logs, "worker.1.log")
	eventually(t, "logging to resume", func() bool { return strings.Contains(readLog(t, log), "resumed") })
	st = ts.Status("full")[0]
	if st.PID != pid || st.Restarts != 0 || st.State != StateRunning {
		t.Errorf("after the disk was full: pid %d (was %d), %d restarts, %s", st.PID, pid, st.Restarts, st.State)
	}
	if st.LogError != "" {
		t.Errorf("LogError = %q after logging resumed", st.LogError)
	}
}
