package isolation

import (
	"fmt"
	"strconv"
	"strings"
)

// ENV keys of an app's limits (docs/APP-FILES.md).
const (
	KeyMemoryMax  = "PIKU_MEMORY_MAX"  // hard memory limit of the app: 512M, 2G, max
	KeyMemoryHigh = "PIKU_MEMORY_HIGH" // soft limit: reclaimed above it first
	KeyCPUWeight  = "PIKU_CPU_WEIGHT"  // share of the CPU against other apps: 1-10000, default 100
	KeyCPUMax     = "PIKU_CPU_MAX"     // at most this many CPUs: 0.5, 2, max
	KeyPidsMax    = "PIKU_PIDS_MAX"    // processes and threads of the app: default DefaultPidsMax
	KeyNoFile     = "PIKU_NOFILE"      // open files per process (a rlimit)
)

// DefaultPidsMax is the number of processes (threads included) an app may
// have unless its ENV says otherwise: far more than any app on a small
// server needs, far below the machine's own limit, so that a fork bomb
// ends at it and the other apps and the daemon can still start processes.
const DefaultPidsMax = 1024

// Limits are what one app's processes may use. A zero field sets nothing.
type Limits struct {
	MemoryMax  int64   // bytes
	MemoryHigh int64   // bytes
	CPUWeight  int     // 1-10000
	CPUMax     float64 // CPUs
	PidsMax    int     // processes and threads
	NoFile     int     // open files per process
}

// Any reports whether l limits something.
func (l Limits) Any() bool { return l != Limits{} }

// String renders l for logs and ps: "memory 512M, pids 1024".
func (l Limits) String() string {
	var parts []string
	if l.MemoryMax > 0 {
		parts = append(parts, "memory "+formatSize(l.MemoryMax))
	}
	if l.MemoryHigh > 0 {
		parts = append(parts, "memory high "+formatSize(l.MemoryHigh))
	}
	if l.CPUWeight > 0 {
		parts = append(parts, "cpu weight "+strconv.Itoa(l.CPUWeight))
	}
	if l.CPUMax > 0 {
		parts = append(parts, "cpu max "+strconv.FormatFloat(l.CPUMax, 'f', -1, 64))
	}
	if l.PidsMax > 0 {
		parts = append(parts, "pids "+strconv.Itoa(l.PidsMax))
	}
	if l.NoFile > 0 {
		parts = append(parts, "nofile "+strconv.Itoa(l.NoFile))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// LandlockKey is the app's ENV key that turns its confinement off
// (PIKU_LANDLOCK=off): for an app that must read or write outside its own
// directories (another app's files, a path under PIKU_ROOT, a /tmp shared
// with other programs), reach an abstract unix socket or signal a process
// that is not its own.
const LandlockKey = "PIKU_LANDLOCK"

// ParseLimits reads an app's limits from its settings (get returns a
// key's value and whether it is set). It is pure: the daemon calls it
// before a rollout, so a bad value refuses the push or the change and
// names the key, the value and what is accepted.
//
// It also checks LandlockKey, which is not a limit but is an app's
// isolation setting: on (the default) or off.
func ParseLimits(get func(string) (string, bool)) (Limits, error) {
	l := Limits{PidsMax: DefaultPidsMax}
	var err error
	if l.MemoryMax, err = sizeKey(get, KeyMemoryMax); err != nil {
		return l, err
	}
	if l.MemoryHigh, err = sizeKey(get, KeyMemoryHigh); err != nil {
		return l, err
	}
	if l.MemoryMax > 0 && l.MemoryHigh > l.MemoryMax {
		return l, fmt.Errorf("%s is above %s: the soft limit must not be above the hard one", KeyMemoryHigh, KeyMemoryMax)
	}
	if l.CPUWeight, err = intKey(get, KeyCPUWeight, 1, 10000, false); err != nil {
		return l, err
	}
	if v, ok := value(get, KeyCPUMax); ok && v != "max" {
		f, perr := strconv.ParseFloat(v, 64)
		if perr != nil || f < 0.01 || f > 1024 {
			return l, fmt.Errorf("%s=%q: accepted is a number of CPUs from 0.01 to 1024 (0.5, 2), or max", KeyCPUMax, v)
		}
		l.CPUMax = f
	}
	if v, ok := value(get, KeyPidsMax); ok {
		if v == "max" {
			l.PidsMax = 0
		} else if l.PidsMax, err = intKey(get, KeyPidsMax, 16, 4194304, true); err != nil {
			return l, err
		}
	}
	if v, ok := value(get, LandlockKey); ok && v != "on" && v != "off" {
		return l, fmt.Errorf("%s=%q: accepted is on (the default: the app is confined to its own files) or off", LandlockKey, v)
	}
	if l.NoFile, err = intKey(get, KeyNoFile, 64, 1048576, false); err != nil {
		return l, err
	}
	return l, nil
}

func value(get func(string) (string, bool), key string) (string, bool) {
	v, ok := get(key)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

func intKey(get func(string) (string, bool), key string, lo, hi int, maxOK bool) (int, error) {
	v, ok := value(get, key)
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		also := ""
		if maxOK {
			also = ", or max"
		}
		return 0, fmt.Errorf("%s=%q: accepted is a whole number from %d to %d%s", key, v, lo, hi, also)
	}
	return n, nil
}

// sizeKey parses a size: bytes, or a number with a K, M, G or T suffix
// (powers of 1024, an optional B or iB after it), or max for none.
func sizeKey(get func(string) (string, bool), key string) (int64, error) {
	v, ok := value(get, key)
	if !ok || v == "max" {
		return 0, nil
	}
	n, err := parseSize(v)
	if err != nil || n < 4<<20 {
		return 0, fmt.Errorf("%s=%q: accepted is a size of at least 4M, in bytes or with a K, M, G or T suffix (512M, 2G), or max", key, v)
	}
	return n, nil
}

// ParseSize reads a size as the ENV keys take it: bytes, or a number with
// a K, M, G or T suffix (powers of 1024, an optional B or iB after it).
func ParseSize(v string) (int64, error) { return parseSize(v) }

func parseSize(v string) (int64, error) {
	s := strings.ToUpper(v)
	s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), "I")
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 || n*float64(mult) > 1<<50 {
		return 0, fmt.Errorf("bad size %q", v)
	}
	return int64(n * float64(mult)), nil
}

// FormatSize renders a size in bytes as the ENV keys take it: 512M, 2G,
// or bytes.
func FormatSize(n int64) string { return formatSize(n) }

func formatSize(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "G"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "M"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "K"
	}
	return strconv.FormatInt(n, 10)
}
