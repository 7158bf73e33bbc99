package daemon

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// connMemoryShare is the part of the daemon's memory the proxy's client
// connections may hold together: a quarter, the rest left to the apps'
// share of a small server and the daemon's own work.
const connMemoryShare = 4

// connCost is what one client connection may hold at most with request
// headers of maxHeaderBytes: the header section read (about twice its
// bytes, and its header map), the connection's read and write buffers, a
// body copy buffer and the goroutines' stacks.
func connCost(maxHeaderBytes int) int64 {
	return 3*int64(maxHeaderBytes) + 32<<10
}

// memoryConnLimit is how many client connections fit in a quarter of mem
// bytes at connCost each; 0 when mem is unknown.
func memoryConnLimit(mem int64, maxHeaderBytes int) int {
	if mem <= 0 {
		return 0
	}
	return int(max(1, mem/connMemoryShare/connCost(maxHeaderBytes)))
}

// memoryLimit returns the memory the daemon may use: its cgroup's limit
// (v2 memory.max, v1 memory.limit_in_bytes) when there is one below the
// machine's memory, else the machine's (MemTotal); 0 if unknown.
func memoryLimit() int64 {
	total := memTotal()
	if cg := cgroupMemoryLimit("/proc/self/cgroup", "/sys/fs/cgroup"); cg > 0 && (total == 0 || cg < total) {
		return cg
	}
	return total
}

// memTotal reads MemTotal from /proc/meminfo, in bytes.
func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("MemTotal:")); ok {
			f := strings.Fields(string(rest))
			if len(f) == 2 && f[1] == "kB" {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return n << 10
				}
			}
		}
	}
	return 0
}

// cgroupMemoryLimit returns the memory limit of the cgroup the process is
// in, as procCgroup (/proc/self/cgroup) names it under mount
// (/sys/fs/cgroup); 0 when it has none.
func cgroupMemoryLimit(procCgroup, mount string) int64 {
	f, err := os.Open(procCgroup)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			file = filepath.Join(mount, parts[2], "memory.max")
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			file = filepath.Join(mount, "memory", parts[2], "memory.limit_in_bytes")
		default:
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n >= 1<<62 { // v1's "no limit" is a page-rounded MaxInt64
			return 0
		}
		return n
	}
	return 0
}
