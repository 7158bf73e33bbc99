package supervisor

import (
	"context"
	"sync"
	"testing"
)

// fakeOOM is an OOMCounter whose count grows by grow at every call.
type fakeOOM struct {
	mu    sync.Mutex
	kills int64
	grow  int64
}

func (f *fakeOOM) OOMKills(app string) (int64, int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kills += f.grow
	return f.kills, 64 << 20
}

// TestExitByOOMKiller: an instance killed by SIGKILL while its app's OOM
// kill count grew is shown as killed by the OOM killer at its limit, and
// restarted; a SIGKILL without a new OOM kill, or an exit with a status
// while the count grew, is shown as it was.
func TestExitByOOMKiller(t *testing.T) {
	for _, tc := range []struct {
		name, command string
		grow          int64
		want          string
	}{
		{"oom", "kill -9 $$", 1, "killed: out of memory (limit 64M)"},
		{"oom of the shell's child", "sh -c 'kill -9 $$'; exit $?", 1, "killed: out of memory (limit 64M)"},
		{"other SIGKILL", "kill -9 $$", 0, "signal: killed"},
		{"exit status", "exit 3", 1, "exit 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startSup(t, "")
			ts.oom = &fakeOOM{grow: tc.grow}
			_ = ts.Apply(context.Background(), ts.spec("hog", ProcessSpec{Kind: "worker", Count: 1, Command: tc.command}))
			var st InstanceStatus
			eventually(t, "a restart after the exit", func() bool {
				st = ts.Status("hog")[0]
				return st.Restarts >= 1 && st.LastExit != ""
			})
			if st.LastExit != tc.want {
				t.Errorf("last exit %q, want %q", st.LastExit, tc.want)
			}
			if err := ts.Stop(context.Background(), "hog"); err != nil {
				t.Fatal(err)
			}
		})
	}
}
