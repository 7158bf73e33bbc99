package procgroup

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// States of a TCP socket in /proc/net/tcp.
const (
	tcpEstablished = "01"
	tcpListen      = "0A"
)

// tcpSockets returns the inodes of the TCP sockets (IPv4 and IPv6) of
// /proc/net/tcp and /proc/net/tcp6 whose local address, remote address
// (hex "ADDR:PORT") and state match.
func tcpSockets(match func(local, remote, state string) bool) map[string]bool {
	out := map[string]bool{}
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
			fs := strings.Fields(sc.Text())
			if len(fs) >= 10 && fs[9] != "0" && match(fs[1], fs[2], fs[3]) {
				out[fs[9]] = true
			}
		}
		_ = f.Close()
	}
	return out
}

// portSuffix is how /proc/net/tcp ends an address on port: ":1F90".
func portSuffix(port int) string { return fmt.Sprintf(":%04X", port) }

// listenerInodes returns the inodes of the TCP sockets listening on port.
func listenerInodes(port int) map[string]bool {
	want := portSuffix(port)
	return tcpSockets(func(local, _, state string) bool {
		return state == tcpListen && strings.HasSuffix(local, want)
	})
}

// holdsSocket reports whether pid has a descriptor open on one of the
// sockets inodes.
func holdsSocket(pid int, inodes map[string]bool) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		link, err := os.Readlink(dir + e.Name())
		if err != nil {
			continue
		}
		if inode, ok := strings.CutPrefix(link, "socket:["); ok && inodes[strings.TrimSuffix(inode, "]")] {
			return true
		}
	}
	return false
}

// socketHolders returns the pids of the processes of this machine that
// have a descriptor open on one of the sockets inodes, as far as it can
// see (another user's processes, without root, and another pid namespace
// are not seen).
func socketHolders(inodes map[string]bool, first bool) []int {
	if len(inodes) == 0 {
		return nil
	}
	var out []int
	for pid := range allPIDs() {
		if holdsSocket(pid, inodes) {
			out = append(out, pid)
			if first {
				break
			}
		}
	}
	return out
}

// socketHolder returns the pid of a process of this machine that has a
// descriptor open on one of the sockets inodes, 0 when none it can see
// has (another user's processes, without root; another pid namespace).
func socketHolder(inodes map[string]bool) int {
	if pids := socketHolders(inodes, true); len(pids) > 0 {
		return pids[0]
	}
	return 0
}

// ListenerOwners returns the pids of the processes that hold the TCP
// socket listening on port (any address), found through /proc: one,
// unless it forked or handed the socket over; listening is false when no
// socket listens there, and pids is empty when one does but the
// processes holding it cannot be seen.
func ListenerOwners(port int) (pids []int, listening bool) {
	inodes := listenerInodes(port)
	return socketHolders(inodes, false), len(inodes) > 0
}

// TCPPeer returns the pid of the process of this machine at the far end
// of a TCP connection accepted on localPort from peerPort: the socket
// whose local port is peerPort and whose remote port is localPort, and
// the process holding it. It returns 0 when no process here holds it (a
// peer on another machine, or in another network namespace).
func TCPPeer(peerPort, localPort int) int {
	local, remote := portSuffix(peerPort), portSuffix(localPort)
	return socketHolder(tcpSockets(func(l, r, state string) bool {
		return state == tcpEstablished && strings.HasSuffix(l, local) && strings.HasSuffix(r, remote)
	}))
}

// ProcessName returns the command name of pid (/proc/PID/comm), "" when
// it cannot be read.
func ProcessName(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
