package procgroup

import (
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startLeader starts sleep as the leader of its own group, as a child
// nobody waits for, so that Adopt's wait is the only one.
func startLeader(t *testing.T) (pid int, start uint64) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid = cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL); _, _ = cmd.Process.Wait() })
	_, start, err := Stat(pid)
	if err != nil {
		t.Fatal(err)
	}
	return pid, start
}

// TestAdoptSeesTheEnd adopts a child leader: its end is seen through the
// pidfd, and since it is the caller's child its exit status is known.
func TestAdoptSeesTheEnd(t *testing.T) {
	pid, start := startLeader(t)
	p, err := Adopt(pid, pid, start, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid() != pid || p.PGID != pid {
		t.Fatalf("adopted pid %d group %d, want %d", p.Pid(), p.PGID, pid)
	}
	select {
	case <-p.Done():
		t.Fatal("done before the process ended")
	default:
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if got := p.Exit(); got != "signal: killed" {
		t.Errorf("Exit() = %q, want signal: killed", got)
	}
	if p.ExitCode() != -1 || p.Success() {
		t.Errorf("ExitCode() = %d, Success() = %v", p.ExitCode(), p.Success())
	}
}

// TestAdoptRefusesAnotherProcess: a recorded start time that is not the
// process's (its pid reused) or a group it does not lead is refused.
func TestAdoptRefusesAnotherProcess(t *testing.T) {
	pid, start := startLeader(t)
	if _, err := Adopt(pid, pid, start+1, "", time.Now()); err == nil {
		t.Error("adopted a process with another start time")
	}
	if _, err := Adopt(pid, pid+1, start, "", time.Now()); err == nil {
		t.Error("adopted a process that does not lead the recorded group")
	}
	if _, err := Adopt(1, 1, start, "", time.Now()); err == nil {
		t.Error("adopted init")
	}
}

// TestOutputFIFOOutlivesItsReader: with no reader, a process's writes
// neither fail nor kill it (no SIGPIPE); a reader that opens the FIFO
// later reads them, and sees the end once the writers are gone.
func TestOutputFIFOOutlivesItsReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.1.fifo")
	r, w, err := OutputFIFO(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil { // the daemon is gone
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", "echo written while nobody reads")
	cmd.Stdout = w
	if err := cmd.Run(); err != nil {
		t.Fatalf("a write with no reader: %v", err)
	}
	r2, err := OpenOutput(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if err := w.Close(); err != nil { // the app ends
		t.Fatal(err)
	}
	_ = r2.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(r2)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != "written while nobody reads" {
		t.Errorf("read %q", got)
	}
}
