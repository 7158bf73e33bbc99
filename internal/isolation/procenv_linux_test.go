package isolation

import (
	"slices"
	"testing"
)

// TestProcessEnv: the core file size always, and the nice value a kind,
// piku run or a build (kind "") starts with.
func TestProcessEnv(t *testing.T) {
	l := Limits{CoreMax: 1 << 20, Nice: map[string]int{"": 5, "worker": 15, RunKind: 12}}
	tests := []struct {
		l    Limits
		kind string
		want []string
	}{
		{l, "web", []string{"PIKU_RLIMIT_CORE=1048576", "PIKU_NICENESS=5"}},
		{l, "worker", []string{"PIKU_RLIMIT_CORE=1048576", "PIKU_NICENESS=15"}},
		{l, RunKind, []string{"PIKU_RLIMIT_CORE=1048576", "PIKU_NICENESS=12"}},
		{l, "", []string{"PIKU_RLIMIT_CORE=1048576", "PIKU_NICENESS=5"}},
		{Limits{CoreMax: CoreUnlimited, Nice: map[string]int{"worker": 15}}, "", []string{"PIKU_RLIMIT_CORE=unlimited"}},
		{Limits{Nice: map[string]int{"worker": 15}}, RunKind, []string{"PIKU_RLIMIT_CORE=0"}},
	}
	for _, tt := range tests {
		if got := tt.l.ProcessEnv(tt.kind); !slices.Equal(got, tt.want) {
			t.Errorf("%+v.ProcessEnv(%q) = %q, want %q", tt.l, tt.kind, got, tt.want)
		}
	}
}
