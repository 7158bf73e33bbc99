package cli

import (
	"os"

	"golang.org/x/sys/unix"
)

// watchClient calls gone when the other end of out (the SSH channel of a
// push) is closed: the client went away. It stops watching when stop is
// closed; the returned func waits for the watcher to end.
func watchClient(out *os.File, gone func()) (stop func()) {
	r, w, err := os.Pipe()
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.Close()
		fds := []unix.PollFd{
			{Fd: int32(out.Fd()), Events: 0}, // POLLERR and POLLHUP are always reported
			{Fd: int32(r.Fd()), Events: unix.POLLIN},
		}
		for {
			_, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			if err == nil && fds[1].Revents == 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
				gone()
			}
			return
		}
	}()
	return func() {
		w.Close()
		<-done
	}
}
