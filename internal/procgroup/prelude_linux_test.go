package procgroup

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestStartRaisesOOMScore(t *testing.T) {
	own, err := OOMScoreAdj(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if own >= AppOOMScoreAdj {
		t.Skipf("the test runs with oom_score_adj %d, not below the apps' %d: nothing to raise", own, AppOOMScoreAdj)
	}
	for _, tc := range []struct {
		name string
		cmd  *exec.Cmd
		want int
	}{
		// A shell line, and what it forks, carry the apps' score.
		{"shell", exec.Command("/bin/sh", "-c", "cat /proc/self/oom_score_adj"), AppOOMScoreAdj},
		{"shell's child", exec.Command("/bin/sh", "-c", "sh -c 'cat /proc/self/oom_score_adj' | cat"), AppOOMScoreAdj},
		// Any other command is started as it is.
		{"program", exec.Command("cat", "/proc/self/oom_score_adj"), own},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			tc.cmd.Stdout = &out
			p, err := Start(tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			if e := p.Exit(); e != "exit 0" {
				t.Fatalf("exit: %s", e)
			}
			if got := strings.TrimSpace(out.String()); got != strconv.Itoa(tc.want) {
				t.Errorf("oom_score_adj = %s, want %d", got, tc.want)
			}
		})
	}
}

func TestPreludeLimits(t *testing.T) {
	dir := t.TempDir()
	procs := dir + "/cgroup.procs"
	for _, tc := range []struct {
		name string
		env  []string
		line string
		exit string
		want string
	}{
		{"open files", []string{NoFileVar + "=100"}, "ulimit -n", "exit 0", "100\n"},
		// The shell writes its pid to every cgroup.procs named before it
		// runs the line.
		{"cgroup joined", []string{CgroupProcsVar + "=" + procs}, "cat " + procs + " | tr -d '\\n'; echo \" $$\"", "exit 0", ""},
		// A cgroup it cannot join: it does not run unlimited.
		{"cgroup refused", []string{CgroupProcsVar + "=" + dir + "/missing/cgroup.procs"}, "echo ran", "exit 125", "piku: cannot join the app's cgroup; not starting\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", tc.line)
			cmd.Env = append(os.Environ(), tc.env...)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			p, err := Start(cmd)
			if err != nil {
				t.Fatal(err)
			}
			if e := p.Exit(); e != tc.exit {
				t.Fatalf("exit: %s (%s)", e, out.String())
			}
			got := out.String()
			if tc.name == "cgroup joined" {
				f := strings.Fields(got)
				if len(f) != 2 || f[0] != f[1] {
					t.Errorf("cgroup.procs holds %q, want the shell's pid", got)
				}
				return
			}
			if got != tc.want {
				t.Errorf("output %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPreludeCoreAndNice checks that a shell line, and what it starts,
// runs with the core file size and the nice value asked for, read back
// from the kernel (/proc/PID/limits, /proc/PID/stat).
func TestPreludeCoreAndNice(t *testing.T) {
	var own syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &own); err != nil {
		t.Fatal(err)
	}
	if own.Max != ^uint64(0) {
		t.Skipf("the test's own hard core limit is %d, not unlimited", own.Max)
	}
	base := ownNice()
	if base > 12 {
		t.Skipf("the test runs at nice %d: no room to lower its priority by 7", base)
	}
	for _, tc := range []struct {
		name string
		env  []string
		core string // the soft and hard limits, as /proc/PID/limits says them
		nice int
	}{
		{"none", []string{CoreVar + "=0"}, "0 0", base},
		{"some, rounded up to 512-byte blocks", []string{CoreVar + "=1000000"}, "1000448 1000448", base},
		{"unlimited", []string{CoreVar + "=unlimited"}, "unlimited unlimited", base},
		{"nice", []string{CoreVar + "=0", NiceVar + "=" + strconv.Itoa(base+7)}, "0 0", base + 7},
		// Below its own: left as it is, and the command runs.
		{"nice below the caller's", []string{NiceVar + "=" + strconv.Itoa(base-1)}, "", base},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The line's child reports: a process the line starts has
			// them too.
			cmd := exec.Command("/bin/sh", "-c", `sh -c 'grep "Max core file size" /proc/$$/limits; cut -d" " -f19 /proc/$$/stat'`)
			cmd.Env = append(os.Environ(), tc.env...)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			p, err := Start(cmd)
			if err != nil {
				t.Fatal(err)
			}
			if e := p.Exit(); e != "exit 0" {
				t.Fatalf("exit: %s (%s)", e, out.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("output %q", out.String())
			}
			if f := strings.Fields(lines[0]); tc.core != "" && (len(f) < 6 || f[4]+" "+f[5] != tc.core) {
				t.Errorf("core file size %q, want %s", lines[0], tc.core)
			}
			if lines[1] != strconv.Itoa(tc.nice) {
				t.Errorf("nice %s, want %d", lines[1], tc.nice)
			}
		})
	}
}

func TestCoreBlocks(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0", "0"}, {"1", "1"}, {"512", "1"}, {"513", "2"}, {"1048576", "2048"},
	} {
		if got, ok := coreBlocks(tc.in); !ok || got != tc.want {
			t.Errorf("coreBlocks(%s) = %s, %v, want %s", tc.in, got, ok, tc.want)
		}
	}
	for _, in := range []string{"", "lots", "-1"} {
		if got, ok := coreBlocks(in); ok {
			t.Errorf("coreBlocks(%q) = %s, want none", in, got)
		}
	}
}

// TestPreludeKeepsTheLine checks that the line runs as it was given: the
// same command line, and a simple command still replaces its shell.
func TestPreludeKeepsTheLine(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", `exec cat /proc/self/cmdline`, "zero", "one")
	cmd.Env = append(os.Environ(), NoFileVar+"=100")
	var out strings.Builder
	cmd.Stdout = &out
	p, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if e := p.Exit(); e != "exit 0" {
		t.Fatalf("exit: %s", e)
	}
	if got, want := out.String(), "cat\x00/proc/self/cmdline\x00"; got != want {
		t.Errorf("cmdline %q, want %q", got, want)
	}
	cmd = exec.Command("/bin/sh", "-c", `echo "$0 $1"; cat /proc/$$/cmdline`, "zero", "one")
	cmd.Env = append(os.Environ(), NoFileVar+"=100")
	out.Reset()
	cmd.Stdout = &out
	if p, err = Start(cmd); err != nil {
		t.Fatal(err)
	}
	p.Exit()
	if got, want := out.String(), "zero one\n/bin/sh\x00-c\x00echo \"$0 $1\"; cat /proc/$$/cmdline\x00zero\x00one\x00"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

// TestPreludeConfine runs commands with ConfineVar naming a stand-in for
// `piku __confine`, which says it ran and then execs what follows "--":
// shell lines and programs alike go through it, last, with their
// arguments as they were.
func TestPreludeConfine(t *testing.T) {
	bin := t.TempDir() + "/confine"
	script := "#!/bin/sh\n[ \"$1\" = __confine ] && [ \"$2\" = -- ] || exit 9\nshift 2\necho \"confined $(cat /proc/self/oom_score_adj)\"\nexec \"$@\"\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	own, err := OOMScoreAdj(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	score := strconv.Itoa(max(own, AppOOMScoreAdj))
	for _, tc := range []struct {
		name string
		cmd  *exec.Cmd
		env  []string
		want string
	}{
		{"shell line", exec.Command("/bin/sh", "-c", `echo "$0 $1"`, "a b", "c"), []string{ConfineVar + "=" + bin}, "confined " + score + "\na b c\n"},
		{"program", exec.Command("echo", "a b", "c"), []string{ConfineVar + "=" + bin}, "confined " + strconv.Itoa(own) + "\na b c\n"},
		{"not asked", exec.Command("/bin/sh", "-c", "echo a"), nil, "a\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cmd.Env = append(os.Environ(), tc.env...)
			var out strings.Builder
			tc.cmd.Stdout, tc.cmd.Stderr = &out, &out
			p, err := Start(tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			if e := p.Exit(); e != "exit 0" {
				t.Fatalf("exit: %s (%s)", e, out.String())
			}
			if got := out.String(); got != tc.want {
				t.Errorf("output %q, want %q", got, tc.want)
			}
		})
	}
}

// BenchmarkStartPrelude measures what the prelude adds to a process's
// start, start to exit of `/bin/sh -c true`: nothing asked, the rlimits
// (ulimit in the prelude's shell), and the nice value on top (one more
// exec, of nice(1)).
func BenchmarkStartPrelude(b *testing.B) {
	for _, bc := range []struct {
		name string
		env  []string
	}{
		{"none", nil},
		{"rlimits", []string{NoFileVar + "=1024", CoreVar + "=0"}},
		{"rlimits+nice", []string{NoFileVar + "=1024", CoreVar + "=0", NiceVar + "=" + strconv.Itoa(ownNice()+5)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				cmd := exec.Command("/bin/sh", "-c", "true")
				cmd.Env = append(os.Environ(), bc.env...)
				p, err := Start(cmd)
				if err != nil {
					b.Fatal(err)
				}
				if e := p.Exit(); e != "exit 0" {
					b.Fatalf("exit: %s", e)
				}
			}
		})
	}
}
