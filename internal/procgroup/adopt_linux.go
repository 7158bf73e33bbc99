package procgroup

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Adopt takes over the process group led by pid, which an earlier daemon
// started (StartOutliving) and recorded with its start time (Stat's start,
// clock ticks after boot), its group and its token. The leader is watched
// through a pidfd, so its end is seen whether or not it is the caller's
// child: its exit status is known only when it is (a daemon that replaced
// itself in place with exec is still its parent); after a crash its parent
// is whoever took the orphans, and Exit says ExitUnknown.
//
// Adopt fails when pid is gone or is now another process (its start time
// differs): a reused pid is never adopted.
func Adopt(pid, pgid int, start uint64, token string, started time.Time) (*Process, error) {
	if pid <= 1 || pgid <= 1 {
		return nil, fmt.Errorf("adopting pid %d: not a process group piku starts", pid)
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("adopting pid %d: %w", pid, err)
	}
	// Checked after the pidfd is open: the pidfd then refers to the
	// process whose start time was read, not to a later one. (A zombie
	// with that start time is the same process, ended: its pidfd is
	// readable at once, and the caller sees it end.)
	if pg, st, err := Stat(pid); err != nil || st != start || pg != pgid {
		_ = unix.Close(fd)
		if err == nil {
			err = errors.New("it is now another process")
		}
		return nil, fmt.Errorf("adopting pid %d: %w", pid, err)
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	p := &Process{PGID: pgid, Started: started, Token: token, pid: pid, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer f.Close()
		waitExit(f)
		// Our child (after an exec in place): reap it and learn how it
		// ended. Anyone else's: ECHILD, the status stays unknown.
		var ws syscall.WaitStatus
		for {
			got, err := syscall.Wait4(pid, &ws, 0, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err == nil && got == pid {
				p.ws, p.known = ws, true
			}
			return
		}
	}()
	return p, nil
}

// waitExit returns once the process of the pidfd f has exited (its pidfd
// is readable), waiting in the runtime's poller rather than in a thread.
func waitExit(f *os.File) {
	exited := func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err == nil && n > 0
	}
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Read(exited)
	}
	if err != nil {
		// Not pollable here: wait in a blocking poll instead.
		fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}
}

// OutputPipeSize is the buffer of an output FIFO (F_SETPIPE_SZ): what an
// app may write while no daemon reads its output before its writes
// block. 1 MiB is the most an unprivileged process may ask for by default
// (/proc/sys/fs/pipe-max-size).
const OutputPipeSize = 1 << 20

// OutputFIFO makes path a new FIFO for a process's output and opens it
// twice: w, read-write, for the process's stdout and stderr, and r,
// non-blocking, for the caller to read. The process holds the FIFO open
// for reading as well as writing, so its writes never get SIGPIPE or
// EPIPE while no daemon reads: they fill the pipe's buffer (OutputPipeSize
// where the kernel allows) and then wait. A later daemon reopens path
// (OpenOutput) and reads what was written meanwhile. r ends (EOF) once
// every process holding w has closed it. The caller closes w once the
// process has started.
func OutputFIFO(path string) (r, w *os.File, err error) {
	_ = os.Remove(path)
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, nil, &os.PathError{Op: "mkfifo", Path: path, Err: err}
	}
	w, err = os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	_, _ = unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, OutputPipeSize)
	r, err = OpenOutput(path)
	if err != nil {
		_ = w.Close()
		return nil, nil, err
	}
	return r, w, nil
}

// OpenOutput opens the FIFO at path for reading without blocking, in the
// runtime's poller (so read deadlines work).
func OpenOutput(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}
