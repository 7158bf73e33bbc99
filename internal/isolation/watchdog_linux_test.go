package isolation

import (
	"slices"
	"testing"
)

// fakeProcs is a /proc of made-up process groups.
type fakeProcs struct {
	groups map[int][]int
	rss    map[int]int64
}

func (f fakeProcs) Members(pgid int) []int { return f.groups[pgid] }
func (f fakeProcs) RSS(pid int) int64      { return f.rss[pid] }

func TestMemoryWatchdog(t *testing.T) {
	procs := fakeProcs{
		groups: map[int][]int{100: {100, 101}, 200: {200}, 300: {300}},
		rss:    map[int]int64{100: 10 << 20, 101: 30 << 20, 200: 25 << 20, 300: 5 << 20},
	}
	for _, tc := range []struct {
		name   string
		limit  int64
		groups []int
		total  int64
		killed int
	}{
		{"under the limit", 100 << 20, []int{100, 200, 300}, 70 << 20, 0},
		{"no limit", 0, []int{100, 200, 300}, 70 << 20, 0},
		// Over: the group with the most memory in all its processes
		// (100: 40M), not the biggest single process.
		{"over the limit", 64 << 20, []int{100, 200, 300}, 70 << 20, 100},
		{"exactly at the limit", 30 << 20, []int{200, 300}, 30 << 20, 0},
		{"no process", 1 << 20, nil, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var killed []int
			w := &MemoryWatchdog{Procs: procs, Kill: func(pgid int) error { killed = append(killed, pgid); return nil }}
			total, k, err := w.Check("blog", tc.limit, tc.groups)
			if err != nil || total != tc.total || k != tc.killed {
				t.Errorf("Check = %d, %d, %v, want %d, %d", total, k, err, tc.total, tc.killed)
			}
			want := []int(nil)
			if tc.killed != 0 {
				want = []int{tc.killed}
			}
			if !slices.Equal(killed, want) {
				t.Errorf("killed %v, want %v", killed, want)
			}
			kills, use := w.Kills("blog")
			if kills != int64(len(want)) || use != tc.total {
				t.Errorf("Kills = %d, %d, want %d, %d", kills, use, len(want), tc.total)
			}
		})
	}
}
