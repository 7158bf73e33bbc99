package isolation

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// tcpEstablished is the state of a connected socket in /proc/net/tcp.
const tcpEstablished = "01"

// TCPPeer returns the pid of the process of this machine at the far end
// of a TCP connection accepted on localPort from peerPort: the socket
// whose local port is peerPort and whose remote port is localPort, found
// in /proc/net/tcp and /proc/net/tcp6, and the process holding it. It
// returns 0 when no process here holds it (a peer on another machine, or
// in another network namespace).
func TCPPeer(peerPort, localPort int) int {
	local, remote := fmt.Sprintf(":%04X", peerPort), fmt.Sprintf(":%04X", localPort)
	inodes := map[string]bool{}
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
			if len(fs) >= 10 && fs[3] == tcpEstablished && strings.HasSuffix(fs[1], local) && strings.HasSuffix(fs[2], remote) && fs[9] != "0" {
				inodes[fs[9]] = true
			}
		}
		_ = f.Close()
	}
	if len(inodes) == 0 {
		return 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := "/proc/" + e.Name() + "/fd/"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(dir + fd.Name())
			if err != nil {
				continue
			}
			if inode, ok := strings.CutPrefix(link, "socket:["); ok && inodes[strings.TrimSuffix(inode, "]")] {
				return pid
			}
		}
	}
	return 0
}
