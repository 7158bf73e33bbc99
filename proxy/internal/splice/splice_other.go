//go:build !linux

package splice

import (
	"errors"
	"syscall"
)

// Supported reports whether this system can move bytes with a pipe.
const Supported = false

// Pipe is the Linux pipe's stand-in: Pool.Get never lends one.
type Pipe struct{ n int }

// Size is what a pipe is asked to hold.
const Size = 64 << 10

// ErrFull is the Linux one's.
var ErrFull = errors.New("pipe full")

func newPipe() (*Pipe, error) { return nil, errors.ErrUnsupported }

func (p *Pipe) close() {}

// Len is how many bytes the pipe holds.
func (p *Pipe) Len() int { return p.n }

// Write is unsupported.
func (p *Pipe) Write([]byte) (int, error) { return 0, errors.ErrUnsupported }

// Read is unsupported.
func (p *Pipe) Read([]byte) (int, error) { return 0, errors.ErrUnsupported }

// FillFrom is unsupported.
func (p *Pipe) FillFrom(syscall.RawConn, int) (int, error) { return 0, errors.ErrUnsupported }

// DrainTo is unsupported.
func (p *Pipe) DrainTo(syscall.RawConn) (int, error) { return 0, errors.ErrUnsupported }
