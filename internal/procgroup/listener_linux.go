package procgroup

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// tcpListen is the state of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

// listenerInodes returns the inodes of the TCP sockets (IPv4 and IPv6)
// listening on port, from /proc/net/tcp and /proc/net/tcp6.
func listenerInodes(port int) map[string]bool {
	out := map[string]bool{}
	want := fmt.Sprintf(":%04X", port)
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != tcpListen || !strings.HasSuffix(fields[1], want) {
				continue
			}
			out[fields[9]] = true
		}
		_ = f.Close()
	}
	return out
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

// OwnsListener reports whether the socket listening on TCP port is held
// by the group's processes (its members, and those carrying its token).
// When it is not, the answer says what listens there instead: another
// process (a squatter that bound the port first), or nothing. A readiness
// check that a connection succeeds cannot tell these apart, since the
// squatter answers it.
func (p *Process) OwnsListener(port int) (answer string, ok bool) {
	inodes := listenerInodes(port)
	if len(inodes) == 0 {
		return fmt.Sprintf("no socket listens on port %d", port), false
	}
	for _, pid := range append(Members(p.PGID), Tagged(p.Token)...) {
		if holdsSocket(pid, inodes) {
			return "", true
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !holdsSocket(pid, inodes) {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		return fmt.Sprintf("port %d is held by another process (pid %d, %s), not by this instance: not routing to it", port, pid, strings.TrimSpace(string(comm))), false
	}
	return fmt.Sprintf("port %d is held by a process piku cannot see, not by this instance: not routing to it", port), false
}
