package procgroup

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// AppOOMScoreAdj is the oom_score_adj every process started through Start
// gets when its starter's is lower: the kernel's OOM killer then picks an
// app's process before the daemon, which runs lower (see
// isolation.ProtectDaemon) and proxies every app.
const AppOOMScoreAdj = 500

// prelude makes cmd, a shell line (/bin/sh -c LINE), start with what must
// hold from its first instruction on, for it and everything it starts:
//   - its oom_score_adj raised to AppOOMScoreAdj when the caller's is
//     lower, so it never runs with the daemon's.
//
// Go cannot run code between fork and exec, and settings made from outside
// after the start leave a moment in which a fork bomb escapes them; the
// shell's own first statements leave none. Other commands are left as
// they are.
func prelude(cmd *exec.Cmd) {
	if cmd.Err != nil || cmd.Path != "/bin/sh" || len(cmd.Args) < 3 || cmd.Args[1] != "-c" {
		return
	}
	var b strings.Builder
	if own, err := OOMScoreAdj(os.Getpid()); err == nil && own < AppOOMScoreAdj {
		b.WriteString("echo " + strconv.Itoa(AppOOMScoreAdj) + " 2>/dev/null >/proc/self/oom_score_adj; ")
	}
	cmd.Args[2] = b.String() + cmd.Args[2]
}

// OOMScoreAdj returns the oom_score_adj of pid.
func OOMScoreAdj(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/oom_score_adj")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
