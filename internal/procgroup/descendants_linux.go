package procgroup

import (
	"bytes"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// TagVar is the environment variable that marks every process started
// through Start, and everything they start in turn, with the group's
// token. A descendant that left the group (setsid, a double fork) keeps
// it, so the group's processes can still be found: by Signal, and by a
// later daemon from the token recorded in its state file.
const TagVar = "PIKU_GROUP"

// Tagged returns the live pids whose environment carries token, other
// than the caller.
func Tagged(token string) []int {
	if token == "" {
		return nil
	}
	want := []byte(TagVar + "=" + token + "\x00")
	self := os.Getpid()
	var out []int
	for pid := range allPIDs() {
		if pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil || !bytes.Contains(append([]byte{0}, b...), append([]byte{0}, want...)) {
			continue
		}
		if !zombie(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// signalTagged sends sig to every process carrying token that is not in
// the group pgid (those get it from the group signal).
func signalTagged(token string, pgid int, sig syscall.Signal) {
	for _, pid := range Tagged(token) {
		if pg, _, err := Stat(pid); err == nil && pg != pgid && pg > 1 {
			_ = syscall.Kill(pid, sig)
		}
	}
}

// BecomeSubreaper makes the calling process the child subreaper of its
// descendants (PR_SET_CHILD_SUBREAPER): an orphan below it, such as a
// daemonised grandchild whose parent exited, is re-parented to it rather
// than to init, so it stays found. Its exit must then be reaped with
// ReapOrphans.
func BecomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// ReapOrphans reaps the caller's children that exited and were not started
// by it: the orphans re-parented to a subreaper. A child started through
// Start is the leader of its own process group in the caller's session;
// those are left alone, for os/exec's Wait, whose exit status a blanket
// wait4(-1) would steal. It returns the number reaped.
func ReapOrphans() int {
	self := os.Getpid()
	sid, err := unix.Getsid(0)
	if err != nil {
		return 0
	}
	n := 0
	for pid := range allPIDs() {
		st, err := readStat(pid)
		if err != nil || st.ppid != self || st.state != 'Z' {
			continue
		}
		if st.pgrp == pid && st.session == sid {
			continue // started by Start: its Wait reaps it
		}
		var ws syscall.WaitStatus
		if got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err == nil && got == pid {
			n++
		}
	}
	return n
}

type procStat struct {
	state               byte
	ppid, pgrp, session int
}

// readStat reads the state, parent, process group and session of pid
// from /proc/PID/stat.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, syscall.EINVAL
	}
	f := bytes.Fields(b[i+1:])
	// f[0] state (field 3), f[1] ppid, f[2] pgrp, f[3] session.
	if len(f) < 4 || len(f[0]) != 1 {
		return procStat{}, syscall.EINVAL
	}
	var st procStat
	st.state = f[0][0]
	if st.ppid, err = strconv.Atoi(string(f[1])); err != nil {
		return procStat{}, err
	}
	if st.pgrp, err = strconv.Atoi(string(f[2])); err != nil {
		return procStat{}, err
	}
	if st.session, err = strconv.Atoi(string(f[3])); err != nil {
		return procStat{}, err
	}
	return st, nil
}
