package daemon

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Under systemd the daemon keeps its listening sockets in the service's
// file descriptor store (FileDescriptorStoreMax= in the unit): each one,
// once bound, goes to systemd in an FDSTORE=1 datagram on $NOTIFY_SOCKET
// with the descriptor attached (SCM_RIGHTS; sd_notify without cgo).
// systemd holds them while the daemon runs and across its automatic
// restart after a crash, and passes them to the next daemon (LISTEN_FDS,
// LISTEN_FDNAMES), which listens on them instead of binding: the
// connections that arrive while no daemon runs wait in the sockets'
// backlog instead of being refused. A stop flushes the store.

// sdNotify sends state to the service manager's notification socket, with
// fds attached; it does nothing outside systemd (no NOTIFY_SOCKET).
func sdNotify(state string, fds ...int) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	// An abstract socket's name starts with '@', which SockaddrUnix maps
	// to the leading NUL.
	return os.NewSyscallError("sendmsg", unix.Sendmsg(fd, []byte(state), oob, &unix.SockaddrUnix{Name: path}, 0))
}

// fdName is the store's name of the socket key ("tcp:127.0.0.1:80"): a
// name may not hold ':' (LISTEN_FDNAMES separates names with it), and no
// key holds '|'. ok is false when key cannot be named (too long).
func fdName(key string) (string, bool) {
	name := strings.ReplaceAll(key, ":", "|")
	return name, len(name) <= 255 && !strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f })
}

// storeListener puts ln, the socket of key, in systemd's store.
func storeListener(key string, ln net.Listener) error {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	name, ok := fdName(key)
	if !ok {
		return errors.New("its name is too long for the file descriptor store")
	}
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = sdNotify("FDSTORE=1\nFDNAME="+name, int(fd)) }); err != nil {
		return err
	}
	return serr
}

// unstoreListener removes key's socket from systemd's store.
func unstoreListener(key string) {
	if name, ok := fdName(key); ok {
		_ = sdNotify("FDSTOREREMOVE=1\nFDNAME=" + name)
	}
}

// systemdListeners returns, by socket key, the descriptors systemd passed
// (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES; the first is firstFD, 3), and
// removes those variables from the environment, as sd_listen_fds does when
// asked to, so that neither an app nor the image after a restart in place
// reads them again.
func systemdListeners(firstFD int) map[string]int {
	pid, nfds, names := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		_ = os.Unsetenv(v)
	}
	n, err := strconv.Atoi(nfds)
	if pid != strconv.Itoa(os.Getpid()) || err != nil || n <= 0 {
		return nil
	}
	list := strings.Split(names, ":")
	out := map[string]int{}
	for i := range n {
		fd := firstFD + i
		unix.CloseOnExec(fd)
		if i >= len(list) || list[i] == "" {
			_ = unix.Close(fd) // not one of ours
			continue
		}
		out[strings.ReplaceAll(list[i], "|", ":")] = fd
	}
	return out
}
