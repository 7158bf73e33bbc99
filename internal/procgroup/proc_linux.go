package procgroup

import (
	"bytes"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// setGroup makes cmd the leader of a new process group, killed when the
// starting thread exits if deathsig is set.
func setGroup(cmd *exec.Cmd, deathsig bool) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if deathsig {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
}

// Stat returns the process group and start time (clock ticks after boot)
// of pid, from /proc/PID/stat. The start time tells a process from a later
// one that reused its pid.
func Stat(pid int) (pgrp int, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); pgrp is field 5, starttime field 22.
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	pg, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	st, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return pg, st, nil
}

// Members returns the live pids whose process group is pgid; zombies,
// which only wait to be reaped, are not counted. A pgid below 2 has no
// members: no process piku starts leads such a group, and group 0 is
// where the kernel's own threads are, which never end.
func Members(pgid int) []int {
	if pgid <= 1 {
		return nil
	}
	var out []int
	for pid := range allPIDs() {
		if pg, _, err := Stat(pid); err == nil && pg == pgid && !zombie(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// allPIDs yields the pid of every process /proc lists (none when it
// cannot be read).
func allPIDs() iter.Seq[int] {
	return func(yield func(int) bool) {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return
		}
		for _, e := range ents {
			if pid, err := strconv.Atoi(e.Name()); err == nil && !yield(pid) {
				return
			}
		}
	}
}

// RSS returns the resident memory of pid in bytes, 0 if unknown.
func RSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// CPU returns the CPU time pid has used, in seconds: its own user and
// system time and that of the children it has waited for. It is 0 if
// unknown.
func CPU(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3; utime, stime, cutime and cstime are fields 14-17.
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	for _, v := range f[11:15] {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0
		}
		ticks += n
	}
	return float64(ticks) / clockTicks
}

// Nice returns the nice value of pid, from /proc/PID/stat.
func Nice(pid int) (int, bool) {
	f := statFields(pid)
	// f[0] is field 3; nice is field 19.
	if len(f) < 17 {
		return 0, false
	}
	n, err := strconv.Atoi(f[16])
	return n, err == nil
}

// CoreLimit returns the soft core file size limit of pid in bytes, from
// /proc/PID/limits, -1 for unlimited; ok is false when it cannot be read.
func CoreLimit(pid int) (n int64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, found := strings.CutPrefix(line, "Max core file size"); found {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			if f[0] == "unlimited" {
				return -1, true
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// statFields returns the fields of /proc/PID/stat after the command
// name: [0] is field 3 (state); nil when it cannot be read.
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// zombie reports whether pid has exited and waits to be reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // gone
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}
