package isolation

import (
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/piku/piku/internal/procgroup"
)

func TestSubcommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		cmd  string
		rest []string
	}{
		{[]string{"piku", "daemon"}, "daemon", nil},
		{[]string{"/usr/bin/piku", "--root", "/srv/piku", "run", "blog", "ls"}, "run", []string{"blog", "ls"}},
		{[]string{"piku", "--local", "run", "blog", "--", "sh"}, "run", []string{"blog", "sh"}},
		{[]string{"piku", "--remote=x", "ps", "blog"}, "ps", []string{"blog"}},
		{[]string{"piku"}, "", nil},
	} {
		cmd, rest := subcommand(tc.args)
		if cmd != tc.cmd || (len(rest) > 0 || len(tc.rest) > 0) && !reflect.DeepEqual(rest, tc.rest) {
			t.Errorf("subcommand(%q) = %q %q, want %q %q", tc.args, cmd, rest, tc.cmd, tc.rest)
		}
	}
}

// start runs sleep with env added to the test's environment and returns
// its pid; the process is killed when the test ends.
func start(t *testing.T, env ...string) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

func TestOwner(t *testing.T) {
	self := os.Getpid()
	// The test process plays the daemon: its children are apps'.
	child := start(t, "APP=blog")
	if a, ok := Owner(child, self); !ok || a.App != "blog" || a.PID != child {
		t.Errorf("child of the daemon: Owner = %+v %v, want app blog", a, ok)
	}
	// A process marked as an app's, whoever its parent.
	tagged := start(t, procgroup.TagVar+"=abc", "APP=shop")
	if a, ok := Owner(tagged, 0); !ok || a.App != "shop" {
		t.Errorf("marked process: Owner = %+v %v, want app shop", a, ok)
	}
	// An unmarked process that is not below the daemon is the operator's.
	plain := start(t)
	if a, ok := Owner(plain, 0); ok {
		t.Errorf("operator's process: Owner = %+v, want none", a)
	}
	// The daemon itself is not an app's process.
	if a, ok := Owner(self, self); ok {
		t.Errorf("the daemon: Owner = %+v, want none", a)
	}
	if _, ok := Owner(1<<30, self); ok {
		t.Error("a pid that does not exist is taken for an app's")
	}
}

func TestOwnerBelowPikuRun(t *testing.T) {
	// A process named piku running `run blog`, and a child of it whose
	// environment is clean: the child is blog's.
	dir := t.TempDir()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sh, dir+"/piku"); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// sh -s reads its script from stdin: the command line is
	// piku -s run blog.
	script := dir + "/s"
	if err := os.WriteFile(script, []byte("env -i sleep 60 & echo $! >&3; wait\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dir+"/piku", "-s", "run", "blog")
	cmd.Args = []string{"piku", "-s", "run", "blog"}
	cmd.Stdin, _ = os.Open(script)
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var pid int
	if _, err := fmt.Fscan(r, &pid); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if a, ok := Owner(pid, 0); !ok || a.App != "blog" {
		t.Errorf("below piku run blog: Owner = %+v %v, want app blog", a, ok)
	}
}

func TestProtectDaemon(t *testing.T) {
	before, err := procgroup.OOMScoreAdj(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ProtectDaemon()
	after, _ := procgroup.OOMScoreAdj(os.Getpid())
	if got != after {
		t.Errorf("ProtectDaemon says %d, /proc says %d", got, after)
	}
	switch {
	case err == nil:
		if after > DaemonOOMScoreAdj {
			t.Errorf("no error, but the score is %d, above %d", after, DaemonOOMScoreAdj)
		}
	default:
		// Without CAP_SYS_RESOURCE (this test's case in a container that
		// drops it) the score stays and the error says what would do.
		if after != before || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") || !strings.Contains(err.Error(), "OOMScoreAdjust=-900") {
			t.Errorf("score %d -> %d, err %v: want it kept and the error to say what would lower it", before, after, err)
		}
		t.Logf("could not lower the score here: %v", err)
	}
}
