//go:build unix

package upstream

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"syscall"

	"github.com/piku/piku/proxy/internal/h1"
	"github.com/piku/piku/proxy/internal/splice"
)

// usable reports whether an idle backend connection may carry a request:
// the backend has not closed it and sent nothing on it since its last
// answer, and whether the backend closed it. It looks with one
// non-blocking MSG_PEEK read, so that idle connections need no goroutine
// each watching them (http.Transport runs one per connection for this,
// persistConn.readLoop). EOF (the backend closed the connection, as
// Node, uvicorn or gunicorn do after a few idle seconds) or any byte (a
// late answer, a body sent to HEAD) make the connection unusable; only
// "nothing to read yet" keeps it.
func usable(c *conn) (ok, closed bool) {
	p, err := c.raw()
	if p == nil {
		return err == nil, false
	}
	return p.usable()
}

// flushAndWait writes what c.bw holds and returns once the answer can be
// read, the connection's read deadline passed or it was closed (the read
// that follows then says which). The wait is armed before the request is
// written, so that no answer can come unseen, and the read that follows
// finds it: without the wait, the first read, right after the write,
// finds nothing, and a second read follows the poller's wake-up.
func flushAndWait(c *conn) error {
	p, _ := c.raw()
	if p == nil {
		return c.bw.Flush()
	}
	p.step, p.werr = 0, nil
	_ = p.rc.Read(p.sendFn)
	if p.step == 0 {
		// The read could not begin (the connection closed, or its
		// deadline passed): the request goes out all the same, and
		// the read that follows says what became of it.
		return c.bw.Flush()
	}
	return p.werr
}

// raw returns c's raw connection helper, made at the first call; nil (and
// no error) for a connection that has no file descriptor.
func (c *conn) raw() (*peeker, error) {
	if c.peek == nil {
		sc, ok := c.nc.(syscall.Conn)
		if !ok {
			return nil, nil
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return nil, err
		}
		// Made once per connection: a look or a send costs no
		// allocation.
		p := &peeker{rc: rc, bw: c.bw}
		p.fn = p.look
		p.sendFn = p.send
		c.peek = p
	}
	return c.peek, nil
}

// peeker looks at one connection without reading from it, and sends a
// request on it with the wait for the answer armed first.
type peeker struct {
	rc     syscall.RawConn
	fn     func(fd uintptr) bool
	ok     bool
	closed bool
	b      [1]byte

	bw     *bufio.Writer // the connection's writer
	sendFn func(fd uintptr) bool
	step   int   // calls of send in this flushAndWait
	werr   error // the flush's error
}

func (p *peeker) usable() (ok, closed bool) {
	p.ok, p.closed = false, false
	err := p.rc.Read(p.fn)
	return err == nil && p.ok, p.closed
}

func (p *peeker) look(fd uintptr) bool {
	n, _, err := syscall.Recvfrom(int(fd), p.b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	p.ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
	p.closed = err == nil && n == 0 || err == syscall.ECONNRESET
	return true // never wait for the connection to become readable
}

// send is flushAndWait's step under the connection's read lock, the
// poller's readiness reset: the first call writes the request and asks to
// wait for the connection to become readable (a write that failed ends
// it), the second, once it is, ends the wait without reading.
func (p *peeker) send(uintptr) bool {
	p.step++
	if p.step == 1 {
		p.werr = p.bw.Flush()
		return p.werr != nil
	}
	return true
}

// SpliceTo moves up to max bytes of the body into p, straight from the
// connection where it can (splice(2), on Linux), without the bytes passing
// through the proxy's memory; those the read buffer holds are copied. A
// body of known length (a Content-Length) goes as it is. A chunked one
// goes framed as the client's answer is: a chunk's size line, its data,
// its CRLF, the chunks the app's, cut to at most max-32 bytes each. It returns the data bytes moved; 0, io.EOF at the body's end (the
// trailers read, for a chunked body), as Read does; io.ErrUnexpectedEOF
// when the backend ended it short; splice.ErrFull when p can take nothing
// yet (drain it, then call again); errSmallChunk at a chunk of a chunked
// body smaller than spliceChunkMin, nothing of it taken (read the rest
// with Read); and errors.ErrUnsupported for any other body, a chunked one
// that was read from already, or a connection that cannot splice.
func (x *Exchange) SpliceTo(p *splice.Pipe, max int) (int, error) {
	if x.eof {
		return 0, io.EOF
	}
	if !splice.Supported {
		return 0, errors.ErrUnsupported
	}
	pk, err := x.c.raw()
	if err == nil && pk == nil {
		err = errors.ErrUnsupported
	}
	if err != nil {
		return 0, err
	}
	switch b := x.body.(type) {
	case *lengthBody:
		return x.spliceLength(b, p, pk, max)
	case *chunkedBody:
		n, err := b.spliceTo(p, pk, max)
		if err == io.EOF {
			x.eof = true
		}
		return n, err
	}
	return 0, errors.ErrUnsupported
}

func (x *Exchange) spliceLength(lb *lengthBody, p *splice.Pipe, pk *peeker, max int) (int, error) {
	if lb.n <= 0 {
		x.eof = true
		return 0, io.EOF
	}
	max = int(min(int64(max), lb.n))
	var n int
	var err error
	if b := lb.br.Buffered(); b > 0 {
		buf, _ := lb.br.Peek(min(b, max))
		n, err = p.Write(buf)
		_, _ = lb.br.Discard(n)
		if err == nil && n == 0 {
			err = splice.ErrFull
		}
	} else {
		n, err = p.FillFrom(pk.rc, max)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}
	lb.n -= int64(n)
	if lb.n == 0 {
		x.eof = true
	}
	return n, err
}

func (c *chunkedBody) spliceTo(p *splice.Pipe, pk *peeker, max int) (int, error) {
	if c.raw == nil {
		if c.started {
			return 0, errors.ErrUnsupported
		}
		c.raw = &rawChunks{br: c.br}
	}
	r := c.raw
	if r.owe == 0 && !r.crlf {
		// The client's next chunk: the app's next one, or the next
		// max-32 bytes of it.
		if err := r.toData(); err != nil {
			if err == io.EOF {
				if terr := h1.ReadTrailer(c.br, maxResponseHeader, &c.end); terr != nil {
					return 0, terr
				}
			}
			return 0, err
		}
		if r.n < spliceChunkMin {
			return 0, errSmallChunk
		}
		k := int(min(r.n, uint64(max-32)))
		var line [20]byte
		b := append(strconv.AppendInt(line[:0], int64(k), 16), '\r', '\n')
		if n, err := p.Write(b); n != len(b) {
			if err == nil {
				err = errors.New("no room in an empty pipe for a chunk's line")
			}
			return 0, err
		}
		r.owe, r.crlf = k, true
	}
	moved := 0
	var err error
	if r.owe > 0 {
		if b := r.br.Buffered(); b > 0 {
			buf, _ := r.br.Peek(min(b, r.owe))
			moved, err = p.Write(buf)
			_, _ = r.br.Discard(moved)
			if err == nil && moved == 0 {
				err = splice.ErrFull
			}
		} else {
			moved, err = p.FillFrom(pk.rc, r.owe)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
		}
		r.owe -= moved
		r.took(moved)
	}
	if err == nil && r.owe == 0 && r.crlf {
		var n int
		if n, err = p.Write(crlf); n == len(crlf) {
			r.crlf = false
		} else if err == nil {
			err = splice.ErrFull
		}
	}
	return moved, err
}
