package isolation

import (
	"fmt"
	"maps"
	"slices"
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
	KeyCoreMax    = "PIKU_CORE_MAX"    // core file size per process (a rlimit): 0 (the default), 512M, max
	KeyNice       = "PIKU_NICE"        // CPU priority (nice, 0-19) of the app's processes, or per kind: worker:10
)

// DefaultCoreMax is the core file size of an app's processes unless its
// ENV says otherwise: none. A small server's disk is shared by every app,
// the daemon and their logs, and an app that crashes in a loop under the
// supervisor's restarts would write a core file at every crash; the few
// who debug a crash with one ask for it (PIKU_CORE_MAX=max).
const DefaultCoreMax = 0

// CoreUnlimited is Limits.CoreMax for no limit on core files (max).
const CoreUnlimited = -1

// MaxNice is the lowest CPU priority (the highest nice value) a process
// can have; 0 is the daemon's usual priority.
const MaxNice = 19

// DefaultPidsMax is the number of processes (threads included) an app may
// have unless its ENV says otherwise: far more than any app on a small
// server needs, far below the machine's own limit, so that a fork bomb
// ends at it and the other apps and the daemon can still start processes.
const DefaultPidsMax = 1024

// Limits are what one app's processes may use. A zero field sets nothing,
// but for CoreMax, which is always set (0: no core files).
type Limits struct {
	MemoryMax  int64   // bytes
	MemoryHigh int64   // bytes
	CPUWeight  int     // 1-10000
	CPUMax     float64 // CPUs
	PidsMax    int     // processes and threads
	NoFile     int     // open files per process
	// CoreMax is the core file size of each process, in bytes, or
	// CoreUnlimited.
	CoreMax int64
	// Nice is the nice value (0-MaxNice) the app's processes start with:
	// the key "" for every kind, a kind's name for that kind's; a kind
	// in neither runs at the daemon's priority. Nil asks for nothing.
	Nice map[string]int
}

// NiceOf returns the nice value kind's processes start with, and whether
// the app asked for one.
func (l Limits) NiceOf(kind string) (int, bool) {
	if n, ok := l.Nice[kind]; ok {
		return n, true
	}
	n, ok := l.Nice[""]
	return n, ok
}

// RunKind is the name PIKU_NICE may give the commands of `piku run`
// (run:15), beside the Procfile's kinds; without it they get the value
// for every kind. Builds and release commands get that value always.
const RunKind = "run"

// CheckKinds refuses a per-kind setting that names a kind the app does
// not have (has reports whether it has one) nor RunKind, so that a
// misspelt kind is said rather than silently ignored.
func (l Limits) CheckKinds(spec string, has func(kind string) bool) error {
	for _, k := range slices.Sorted(maps.Keys(l.Nice)) {
		if k != "" && k != RunKind && !has(k) {
			return fmt.Errorf("%s=%q: the Procfile has no kind %q", KeyNice, spec, k)
		}
	}
	return nil
}

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
	switch {
	case l.CoreMax == CoreUnlimited:
		parts = append(parts, "core max")
	case l.CoreMax > 0:
		parts = append(parts, "core "+formatSize(l.CoreMax))
	}
	if len(l.Nice) > 0 {
		parts = append(parts, "nice "+formatNice(l.Nice))
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
	if v, ok := value(get, KeyCoreMax); ok {
		switch n, perr := parseSize(v); {
		case v == "max":
			l.CoreMax = CoreUnlimited
		case v == "0":
			l.CoreMax = 0
		case perr != nil:
			return l, fmt.Errorf("%s=%q: accepted is a size in bytes or with a K, M, G or T suffix (512M, 2G), 0 for no core files (the default), or max", KeyCoreMax, v)
		default:
			l.CoreMax = n
		}
	}
	if v, ok := value(get, KeyNice); ok {
		if l.Nice, err = parseNice(v); err != nil {
			return l, err
		}
	}
	return l, nil
}

// parseNice reads PIKU_NICE: a nice value for every kind (10), values per
// kind (worker:10), or both (5, worker:15), separated by commas or spaces.
func parseNice(v string) (map[string]int, error) {
	bad := func(why string) error {
		return fmt.Errorf("%s=%q: %saccepted is a nice value from 0 to %d for every kind (10), per kind (worker:10), or both (5,worker:15)", KeyNice, v, why, MaxNice)
	}
	out := map[string]int{}
	for _, item := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		kind, num, perKind := strings.Cut(item, ":")
		if !perKind {
			kind, num = "", item
		} else if !validKind(kind) {
			return nil, bad(fmt.Sprintf("%q is not a kind name; ", kind))
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 || n > MaxNice {
			return nil, bad("")
		}
		if _, dup := out[kind]; dup {
			what := "every kind"
			if kind != "" {
				what = "kind " + strconv.Quote(kind)
			}
			return nil, bad("it sets " + what + " twice; ")
		}
		out[kind] = n
	}
	if len(out) == 0 {
		return nil, bad("")
	}
	return out, nil
}

// formatNice renders what parseNice read, the value for every kind first
// and the kinds in order: "5, worker:15".
func formatNice(m map[string]int) string {
	var parts []string
	if n, ok := m[""]; ok {
		parts = append(parts, strconv.Itoa(n))
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if k != "" {
			parts = append(parts, k+":"+strconv.Itoa(m[k]))
		}
	}
	return strings.Join(parts, ",")
}

// validKind reports whether s is a process kind name: letters, digits,
// '_' or '-', as a Procfile takes them.
func validKind(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
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
