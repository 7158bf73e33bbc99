package procgroup

import "fmt"

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
	if pid := socketHolder(inodes); pid > 0 {
		return fmt.Sprintf("port %d is held by another process (pid %d, %s), not by this instance: not routing to it", port, pid, ProcessName(pid)), false
	}
	return fmt.Sprintf("port %d is held by a process piku cannot see, not by this instance: not routing to it", port), false
}
