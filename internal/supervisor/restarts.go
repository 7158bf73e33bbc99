package supervisor

import "time"

// maxRecentRestarts bounds InstanceStatus.RecentRestarts: a crash loop
// restarts at most every BackoffMax, so this is far more than an hour
// holds at the default pace.
const maxRecentRestarts = 1000

// recentRestartsWindow is how far back InstanceStatus.RecentRestarts goes.
const recentRestartsWindow = time.Hour

// recentRestarts returns the restart times of prev within the hour before
// now, followed by now, in a new slice (snapshots share the old one).
func recentRestarts(prev []time.Time, now time.Time) []time.Time {
	cut := now.Add(-recentRestartsWindow)
	i := 0
	for i < len(prev) && prev[i].Before(cut) {
		i++
	}
	prev = prev[i:]
	if len(prev) >= maxRecentRestarts {
		prev = prev[len(prev)-maxRecentRestarts+1:]
	}
	out := make([]time.Time, 0, len(prev)+1)
	return append(append(out, prev...), now)
}
