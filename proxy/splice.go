package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/piku/piku/proxy/internal/h1"
	"github.com/piku/piku/proxy/internal/splice"
	"github.com/piku/piku/proxy/internal/upstream"
)

// Large answers are relayed through a kernel pipe (splice(2), Linux)
// when they can be: the bytes move from the app's connection to the
// client's without being copied into the proxy and out again, which is
// most of a large answer's cost (a 1 MiB answer: about half of the
// daemon's CPU). They can when the answer goes out as it came (not
// compressed, not cached, not an event stream), to a plain HTTP/1.1
// client served by the proxy's own server, and has a Content-Length of
// spliceMin or more, or is chunked (then framed here, a chunk at a time,
// for as long as the app's chunks are large: upstream.SpliceTo). A
// buffered answer (the default) goes through the pipe only while the
// client keeps up: once the client has not taken a pipe's load (64 KiB)
// within spillAfter, what the pipe holds, and what completes the chunk
// under way, go out first, and the rest goes through the spool, so that
// a slow client still frees the app at once.

// spliceMin is the smallest answer relayed through a pipe: below it the
// copy costs less than the pipe's system calls.
const spliceMin = 64 << 10

// maxPipes bounds the pipes open at once (two file descriptors each,
// out of the daemon's reserve); answers beyond it are copied.
const maxPipes = 64

// errSpliceOff ends a relay through a pipe that cannot go on: the client
// is behind (a buffered answer), a chunk is small, or a connection cannot
// splice. The rest of the answer goes the usual way, what the pipe holds
// first.
var errSpliceOff = errors.New("relay through a pipe given up")

// copySpliced relays x's body to w through a pipe (see above). It
// reports false when it did not take the answer: nothing of the body was
// written, and the caller copies it. A relay given up part way finishes
// the usual way here.
func (s *Server) copySpliced(w http.ResponseWriter, x *upstream.Exchange, buffer bool, flush func() error) (bool, error) {
	n := x.Length() // -1: chunked, the pump frames the client's chunks
	if !splice.Supported || n >= 0 && n < spliceMin {
		return false, nil
	}
	rw, ok := w.(h1.RawWriter)
	if !ok || n < 0 && !x.NextChunkLarge() {
		return false, nil
	}
	p := s.pipes.Get()
	if p == nil {
		return false, nil
	}
	defer s.pipes.Put(p) // closed unless empty
	handled, _, err := rw.WriteRaw(n, func(nc net.Conn) (int64, error) {
		cc, ok := nc.(*clientConn)
		if !ok {
			return 0, errSpliceOff // TLS
		}
		tc, ok := cc.Conn.(*net.TCPConn)
		if !ok {
			return 0, errSpliceOff
		}
		rc, err := tc.SyscallConn()
		if err != nil {
			return 0, errSpliceOff
		}
		s.splicedAnswers.Add(1)
		return s.pump(cc, rc, x, p, buffer)
	})
	if !handled {
		return false, nil
	}
	if !errors.Is(err, errSpliceOff) {
		return true, err
	}
	// The rest the usual way: first, as they are, what the pipe holds
	// and what completes the client's chunk under way.
	held := make([]byte, p.Len())
	if _, err := io.ReadFull(p, held); err != nil {
		return true, err
	}
	rest, err := x.SpliceRest()
	if err != nil {
		return true, err
	}
	// The pump counted the data it put into the pipe; rest's is new.
	restData := int64(len(rest))
	if n < 0 && restData >= 2 {
		restData -= 2 // the chunk's CRLF
	}
	held = append(held, rest...)
	raw := func() error { return writeHeld(rw, held, n < 0, restData) }
	if buffer {
		return true, s.copyBuffered(w, x, flush, raw)
	}
	if err := raw(); err != nil {
		return true, err
	}
	buf := s.bufs.Get()
	defer s.bufs.Put(buf)
	return true, x.CopyTo(w, flush, buf)
}

// writeHeld writes held, bytes of the body as they go on the wire (whole
// chunks of a chunked one), straight to the client's connection, counting
// data of them as the body's (what the pump had not counted).
func writeHeld(rw h1.RawWriter, held []byte, chunked bool, data int64) error {
	if len(held) == 0 {
		return nil
	}
	n := data // the body's bytes held were counted by the pump, bar data
	if chunked {
		n = -1
	}
	ok, _, err := rw.WriteRaw(n, func(nc net.Conn) (int64, error) {
		if _, err := nc.Write(held); err != nil {
			return 0, err
		}
		return data, nil
	})
	if !ok && err == nil {
		err = errors.New("the body's bytes held from the pipe cannot be written")
	}
	return err
}

// pump moves x's body through p to the client's connection rc (of cc),
// a pipe's load at a time, and returns the body's data bytes it put into
// the pipe (chunk framing not counted). With
// buffer set, a load the client has not taken within spillAfter ends it
// with errSpliceOff, the rest of that load left in p; else the send
// timeout bounds each write, as for a copy.
func (s *Server) pump(cc *clientConn, rc syscall.RawConn, x *upstream.Exchange, p *splice.Pipe, buffer bool) (int64, error) {
	var sent int64
	spill := spillAfter
	if d := s.spillAfter.Load(); d > 0 {
		spill = time.Duration(d)
	}
	if buffer {
		// The next write moves the send timeout on from the spill's
		// short deadline; without a send timeout, none is left.
		defer func() {
			if cc.sendTimeout <= 0 {
				_ = cc.SetWriteDeadline(time.Time{})
			}
		}()
	}
	for {
		moved, err := x.SpliceTo(p, splice.Size)
		sent += int64(moved)
		switch {
		case err == io.EOF:
			return sent, nil
		case errors.Is(err, errors.ErrUnsupported) || upstream.IsSmallChunk(err):
			return sent, errSpliceOff
		case err != nil && !errors.Is(err, splice.ErrFull):
			return sent, err
		}
		for p.Len() > 0 {
			if buffer {
				_ = cc.SetWriteDeadline(time.Now().Add(spill))
			} else {
				cc.moveSendDeadline()
			}
			if _, err := p.DrainTo(rc); err != nil {
				if buffer && errors.Is(err, os.ErrDeadlineExceeded) {
					return sent, errSpliceOff
				}
				return sent, err
			}
		}
	}
}
