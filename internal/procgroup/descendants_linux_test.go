package procgroup

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReapOrphansLeavesOwnChildren makes the test a subreaper, lets an
// own child and an orphan (re-parented to the test) exit, and checks that
// ReapOrphans reaps the orphan and leaves the child's exit status to its
// Wait: a wait4(-1) loop would have taken it.
func TestReapOrphansLeavesOwnChildren(t *testing.T) {
	if err := BecomeSubreaper(); err != nil {
		t.Skipf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	cmd := exec.Command("/bin/sh", "-c", `sleep 0.2 & echo $!; read x; exit 7`)
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	r, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 32)
	n, _ := r.Read(line)
	orphan, err := strconv.Atoi(strings.TrimSpace(string(line[:n])))
	if err != nil {
		t.Fatalf("orphan pid %q: %v", line[:n], err)
	}
	w.Write([]byte("\n")) // the child exits 7 and leaves sleep to us
	w.Close()
	<-p.Done()
	if got := p.Exit(); got != "exit 7" {
		t.Errorf("own child: %q, want exit 7", got)
	}
	// Nothing but /proc says when the orphan has exited.
	for {
		st, err := readStat(orphan)
		if err != nil {
			t.Fatalf("the orphan %d was reaped by someone else: %v", orphan, err)
		}
		if st.ppid != os.Getpid() {
			t.Fatalf("the orphan %d went to %d, not to the subreaper", orphan, st.ppid)
		}
		if st.state == 'Z' {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// An own child exiting meanwhile is left to its Wait. (How often
	// ReapOrphans meets it as a zombie, between its exit and its Wait,
	// is up to the scheduler: its Exit below says it was not taken.)
	own := exec.Command("/bin/sh", "-c", "exit 5")
	q, err := Start(own)
	if err != nil {
		t.Fatal(err)
	}
	// (Orphans of other tests, re-parented to this subreaper too, may be
	// reaped along with it.)
	if got := ReapOrphans(); got < 1 {
		t.Errorf("ReapOrphans reaped %d, want the orphan", got)
	}
	if _, err := readStat(orphan); err == nil {
		t.Errorf("the orphan %d is still there", orphan)
	}
	if got := q.Exit(); got != "exit 5" {
		t.Errorf("own child after ReapOrphans: %q, want exit 5", got)
	}
}

// BenchmarkTagged measures the /proc scan that Signal adds to every
// signal sent to a group, to find the processes that left it.
func BenchmarkTagged(b *testing.B) {
	for b.Loop() {
		Tagged("0000000000000000")
	}
}
