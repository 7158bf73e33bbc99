// Package machine says what the machine the benchmarks run on is doing,
// so that their results can be read against it.
package machine

import (
	"os"
	"strconv"
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

// Busy is the CPU time, in seconds summed over every CPU, the machine has
// spent on anything but idling since it started: every process's user
// and system time and the kernel's interrupts and softirqs, which it
// runs in whatever context it finds (/proc/stat). It is 0 when
// /proc/stat cannot be read.
func Busy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy uint64
	// user nice system idle iowait irq softirq steal; guest time is in
	// user's already.
	for i, v := range f[1:9] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0
		}
		if i != 3 && i != 4 && i != 7 {
			busy += n
		}
	}
	return float64(busy) / clockTicks
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/stat: 100 on
// every Linux architecture Go runs on.
const clockTicks = 100
