package cli

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// rawMode puts the terminal f in raw mode (keys arrive one by one, not
// echoed) and returns how to restore it.
func rawMode(f *os.File) (restore func(), err error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// key is a key press top understands.
type key int

const (
	keyNone key = iota // no key before the deadline
	keyUp
	keyDown
	keyEscape
	keyQuit
	keyOther
)

// keyReader reads key presses from a terminal in raw mode.
type keyReader struct {
	f   *os.File
	buf []byte // read and not yet decoded
}

// next returns the next key, or keyNone once wait has passed without one.
func (k *keyReader) next(wait time.Duration) (key, error) {
	if len(k.buf) == 0 {
		if wait <= 0 {
			return keyNone, nil
		}
		fds := []unix.PollFd{{Fd: int32(k.f.Fd()), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(wait.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) || n == 0 {
			return keyNone, nil
		}
		if err != nil {
			return keyNone, fmt.Errorf("terminal: %w", err)
		}
		b := make([]byte, 64)
		m, err := k.f.Read(b)
		if m == 0 && err != nil {
			return keyQuit, nil // the terminal is gone
		}
		k.buf = b[:m]
	}
	b := k.buf
	switch {
	case len(b) >= 3 && b[0] == 0x1b && b[1] == '[' && b[2] == 'A':
		k.buf = b[3:]
		return keyUp, nil
	case len(b) >= 3 && b[0] == 0x1b && b[1] == '[' && b[2] == 'B':
		k.buf = b[3:]
		return keyDown, nil
	case len(b) >= 3 && b[0] == 0x1b && (b[1] == '[' || b[1] == 'O'):
		k.buf = b[3:]
		return keyOther, nil
	}
	k.buf = b[1:]
	switch b[0] {
	case 'q', 'Q', 3, 4: // q, Ctrl-C, Ctrl-D
		return keyQuit, nil
	case 0x1b:
		return keyEscape, nil
	case 'k':
		return keyUp, nil
	case 'j':
		return keyDown, nil
	}
	return keyOther, nil
}
