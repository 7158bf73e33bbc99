package procgroup

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// AppOOMScoreAdj is the oom_score_adj every process started through Start
// gets when its starter's is lower: the kernel's OOM killer then picks an
// app's process before the daemon, which runs lower (see
// isolation.ProtectDaemon) and proxies every app.
const AppOOMScoreAdj = 500

// CgroupProcsVar, in a command's environment, lists (separated by colons)
// the cgroup.procs files its shell joins before it runs anything.
const CgroupProcsVar = "PIKU_CGROUP_PROCS"

// NoFileVar, in a command's environment, is the open files limit
// (RLIMIT_NOFILE) its shell sets before it runs anything.
const NoFileVar = "PIKU_NOFILE"

// CoreVar, in a command's environment, is the core file size limit
// (RLIMIT_CORE) its shell sets before it runs anything: bytes, or
// "unlimited". A value above the caller's own hard limit is lowered to
// it, so that the command still starts.
const CoreVar = "PIKU_RLIMIT_CORE"

// NiceVar, in a command's environment, is the nice value (0-19) the
// command runs at: its shell execs it through nice(1) with what lowers
// the caller's priority to it. A value below the caller's own is left
// (lowering a nice value needs a privilege apps must not get).
const NiceVar = "PIKU_NICENESS"

// ConfineVar, in a command's environment, is the piku binary that confines
// the command to its app before it runs it: the command is run as
// `BIN __confine -- COMMAND...` (see isolation.Confine), after the rest of
// the prelude.
const ConfineVar = "PIKU_CONFINE"

// prelude makes cmd, a shell line (/bin/sh -c LINE), start with what must
// hold from its first instruction on, for it and everything it starts:
//   - its oom_score_adj raised to AppOOMScoreAdj when the caller's is
//     lower, so it never runs with the daemon's;
//   - its cgroups joined (CgroupProcsVar), so it never runs unlimited; it
//     exits with status 125 and says so if it cannot join them;
//   - its open files and core file size limits (NoFileVar, CoreVar);
//   - its CPU priority (NiceVar), by exec'ing through nice(1);
//   - its confinement to its app (ConfineVar), last.
//
// Go cannot run code between fork and exec, and settings made from outside
// after the start leave a moment in which a fork bomb escapes them; a
// shell that runs them first and then execs the line leaves none. Other
// commands are left as they are.
func prelude(cmd *exec.Cmd) {
	if cmd.Err != nil {
		return
	}
	confine := envValue(cmd.Env, ConfineVar)
	if cmd.Path != "/bin/sh" || len(cmd.Args) < 3 || cmd.Args[1] != "-c" {
		if confine != "" {
			// Not a shell line: the confining binary runs it as it is.
			cmd.Args = append([]string{confine, "__confine", "--", cmd.Path}, cmd.Args[1:]...)
			cmd.Path = confine
		}
		return
	}
	var b strings.Builder
	if own, err := OOMScoreAdj(os.Getpid()); err == nil && own < AppOOMScoreAdj {
		b.WriteString("echo " + strconv.Itoa(AppOOMScoreAdj) + " 2>/dev/null >/proc/self/oom_score_adj; ")
	}
	if procs := envValue(cmd.Env, CgroupProcsVar); procs != "" {
		var join []string
		for _, f := range strings.Split(procs, ":") {
			if f == "" || strings.ContainsAny(f, "'\n") {
				continue
			}
			join = append(join, "echo $$ >'"+f+"'")
		}
		if len(join) > 0 {
			b.WriteString("{ " + strings.Join(join, " && ") + "; } 2>/dev/null || { echo \"piku: cannot join the app's cgroup; not starting\" >&2; exit 125; }; ")
		}
	}
	if n, err := strconv.Atoi(envValue(cmd.Env, NoFileVar)); err == nil && n > 0 {
		b.WriteString("ulimit -n " + strconv.Itoa(n) + " || exit 125; ")
	}
	if blocks, ok := coreBlocks(envValue(cmd.Env, CoreVar)); ok {
		b.WriteString("ulimit -c " + blocks + " || exit 125; ")
	}
	nice := ""
	if want, err := strconv.Atoi(envValue(cmd.Env, NiceVar)); err == nil {
		if inc := want - ownNice(); inc > 0 {
			if bin, err := exec.LookPath("nice"); err == nil && !strings.ContainsAny(bin, "'\n") {
				nice = "'" + bin + "' -n " + strconv.Itoa(inc) + " "
			} else {
				b.WriteString("echo 'piku: no nice command: " + NiceVar + " not applied' >&2; ")
			}
		}
	}
	if b.Len() == 0 && confine == "" && nice == "" {
		return
	}
	// The prelude runs in a shell of its own, which then execs the line
	// as it was given (same pid, same command line), so the line's
	// shell behaves as it would have: a simple command still replaces it.
	if confine != "" {
		b.WriteString(`exec ` + nice + `"$` + ConfineVar + `" __confine -- /bin/sh -c "$@"`)
	} else {
		b.WriteString(`exec ` + nice + `/bin/sh -c "$@"`)
	}
	cmd.Args = append([]string{cmd.Args[0], "-c", b.String(), "sh"}, cmd.Args[2:]...)
}

// coreBlocks returns the argument of the shell's `ulimit -c` for v, a
// CoreVar value: 512-byte blocks, as POSIX counts them (dash, and bash as
// sh), or unlimited; at most the caller's own hard limit.
func coreBlocks(v string) (string, bool) {
	if v == "" {
		return "", false
	}
	const infinity = ^uint64(0) // RLIM_INFINITY
	want := infinity
	if v != "unlimited" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return "", false
		}
		want = n
	}
	var own syscall.Rlimit
	hard := infinity
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &own); err == nil {
		hard = own.Max
	}
	if want == infinity && hard == infinity {
		return "unlimited", true
	}
	blocks := min(want, hard)/512 + min(min(want, hard)%512, 1)
	if hard != infinity && blocks*512 > hard {
		blocks = hard / 512
	}
	return strconv.FormatUint(blocks, 10), true
}

// ownNice returns the nice value of the calling thread (a process's
// threads share it unless one changes its own).
func ownNice() int {
	// The system call returns 20 - nice, so that it is never negative.
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		return 0
	}
	return 20 - prio
}

// envValue returns the last value of key in env.
func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if s, ok := strings.CutPrefix(kv, key+"="); ok {
			v = s
		}
	}
	return v
}

// OOMScoreAdj returns the oom_score_adj of pid.
func OOMScoreAdj(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/oom_score_adj")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
