// Package machine says what the machine the benchmarks run on is doing,
// so that their results can be read against it.
package machine

import (
	"os"
	"strings"
)

// LoadAverage is the 1, 5 and 15 minute load averages from /proc/loadavg
// ("0.42 0.50 0.61"), or "unknown".
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
