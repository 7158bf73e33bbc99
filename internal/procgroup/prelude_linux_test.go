package procgroup

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
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
