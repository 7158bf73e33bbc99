//go:build unix

package h1

import "syscall"

// pending reports whether the connection fd has something to read, or
// ended, without reading it (a non-blocking MSG_PEEK); true too when it
// cannot tell, so that the caller reads instead of waiting.
func pending(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}
