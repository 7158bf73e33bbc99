//go:build linux

package splice

import (
	"errors"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Supported reports whether this system can move bytes with a pipe.
const Supported = true

// Pipe is a kernel pipe through which bytes move from one socket to
// another without a copy into the process (splice(2)). It holds at most
// Size bytes, often fewer: the kernel counts its slots in pages, and a
// slot may hold a small piece of a packet.
type Pipe struct {
	r, w int
	n    int // bytes in the pipe
}

// Size is what a pipe is asked to hold: 64 KiB, the default of a pipe.
const Size = 64 << 10

// newPipe opens a pipe, both ends non-blocking and closed on exec.
func newPipe() (*Pipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, os.NewSyscallError("pipe2", err)
	}
	return &Pipe{r: fds[0], w: fds[1]}, nil
}

func (p *Pipe) close() {
	_ = unix.Close(p.r)
	_ = unix.Close(p.w)
}

// Len is how many bytes the pipe holds.
func (p *Pipe) Len() int { return p.n }

// Write puts b into the pipe (bytes already read into memory), as much
// of it as the pipe takes; a full pipe takes nothing (0, nil).
func (p *Pipe) Write(b []byte) (int, error) {
	n, err := unix.Write(p.w, b)
	if err == unix.EAGAIN {
		return 0, nil
	}
	if err != nil {
		return 0, os.NewSyscallError("write", err)
	}
	p.n += n
	return n, nil
}

// Read reads what the pipe holds into b.
func (p *Pipe) Read(b []byte) (int, error) {
	if p.n == 0 {
		return 0, io.EOF
	}
	n, err := unix.Read(p.r, b[:min(len(b), p.n)])
	if err != nil {
		return 0, os.NewSyscallError("read", err)
	}
	p.n -= n
	return n, nil
}

// ErrFull is FillFrom's answer when the pipe could take nothing though
// its count of bytes says it has room: its slots are used up by small
// pieces. The pipe must be drained first.
var ErrFull = errors.New("pipe full")

// FillFrom moves up to max bytes from src into the pipe, waiting for src
// to have some (its read deadline bounds the wait). It returns 0, io.EOF
// when src ended.
func (p *Pipe) FillFrom(src syscall.RawConn, max int) (int, error) {
	var n int64
	var serr error
	err := src.Read(func(fd uintptr) bool {
		k, e := unix.Splice(int(fd), nil, p.w, nil, max, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		n, serr = int64(k), e // int64 on 64-bit systems, int on 32-bit ones
		if serr == unix.EAGAIN && p.n > 0 {
			// Either the socket has nothing or the pipe is full: with
			// bytes in the pipe, its reader makes room or the caller
			// gives them out first.
			serr = ErrFull
			return true
		}
		return serr != unix.EAGAIN
	})
	if err != nil {
		return 0, err
	}
	if serr != nil {
		if serr == ErrFull {
			return 0, ErrFull
		}
		return 0, os.NewSyscallError("splice", serr)
	}
	if n == 0 {
		return 0, io.EOF
	}
	p.n += int(n)
	return int(n), nil
}

// DrainTo moves what the pipe holds to dst, waiting for dst to take some
// (its write deadline bounds the wait), and returns how much moved: all
// of it, or less with the error that stopped it.
func (p *Pipe) DrainTo(dst syscall.RawConn) (int, error) {
	moved := 0
	for p.n > 0 {
		var n int64
		var serr error
		err := dst.Write(func(fd uintptr) bool {
			k, e := unix.Splice(p.r, nil, int(fd), nil, p.n, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			n, serr = int64(k), e
			return serr != unix.EAGAIN
		})
		if err == nil && serr != nil {
			err = os.NewSyscallError("splice", serr)
		}
		if n > 0 {
			p.n -= int(n)
			moved += int(n)
		}
		if err != nil {
			return moved, err
		}
	}
	return moved, nil
}
