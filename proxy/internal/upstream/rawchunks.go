package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// rawChunks reads a chunked body as net/http's chunked reader does (the
// same line rules, limits and errors: net/http/internal/chunked.go), and
// keeps where it is in the framing, which the relay of an answer through
// a pipe needs: it moves each chunk's data straight from the connection
// (SpliceTo) and frames the client's chunks itself. owe and crlf are the
// client's side: the bytes of the chunk it was promised that are still to
// go into the pipe, and whether its closing CRLF is.
type rawChunks struct {
	br       *bufio.Reader
	n        uint64 // unread data bytes of the current chunk
	checkEnd bool   // the CRLF after a chunk's data is still to read
	excess   int64  // framing beyond what the data justifies
	err      error  // sticky; io.EOF after the last chunk's line
	buf      [2]byte

	owe  int
	crlf bool
}

// maxChunkLine bounds a chunk's size line, as net/http does.
const maxChunkLine = 4096

var (
	errChunkLineLong  = errors.New("header line too long")
	errChunkBareLF    = errors.New("chunked line ends with bare LF")
	errChunkCR        = errors.New("invalid CR in chunked line")
	errChunkEmpty     = errors.New("empty hex number for chunk length")
	errChunkHex       = errors.New("invalid byte in chunk length")
	errChunkTooLarge  = errors.New("http chunk length too large")
	errChunkMalformed = errors.New("malformed chunked encoding")
	errChunkExcess    = errors.New("chunked encoding contains too much non-data")
)

// beginChunk reads a chunk's size line.
func (c *rawChunks) beginChunk() {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		switch err {
		case io.EOF:
			err = io.ErrUnexpectedEOF
		case bufio.ErrBufferFull:
			err = errChunkLineLong
		}
		c.err = err
		return
	}
	if i := bytes.IndexByte(line, '\r'); i == -1 {
		c.err = errChunkBareLF
		return
	} else if i != len(line)-2 {
		c.err = errChunkCR
		return
	}
	line = line[:len(line)-2]
	if len(line) >= maxChunkLine {
		c.err = errChunkLineLong
		return
	}
	c.excess += int64(len(line)) + 2
	for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
		line = line[:len(line)-1]
	}
	line, _, _ = bytes.Cut(line, []byte(";")) // extensions are dropped
	c.n, c.err = parseChunkSize(line)
	if c.err != nil {
		return
	}
	c.excess = max(c.excess-16-2*int64(c.n), 0)
	if c.excess > 16*1024 {
		c.err = errChunkExcess
	}
	if c.n == 0 {
		c.err = io.EOF
	}
}

func parseChunkSize(v []byte) (uint64, error) {
	if len(v) == 0 {
		return 0, errChunkEmpty
	}
	var n uint64
	for i, b := range v {
		switch {
		case '0' <= b && b <= '9':
			b -= '0'
		case 'a' <= b && b <= 'f':
			b = b - 'a' + 10
		case 'A' <= b && b <= 'F':
			b = b - 'A' + 10
		default:
			return 0, errChunkHex
		}
		if i == 16 {
			return 0, errChunkTooLarge
		}
		n = n<<4 | uint64(b)
	}
	return n, nil
}

// endChunk reads the CRLF after a chunk's data.
func (c *rawChunks) endChunk() {
	if _, c.err = io.ReadFull(c.br, c.buf[:2]); c.err != nil {
		if c.err == io.EOF {
			c.err = io.ErrUnexpectedEOF
		}
		return
	}
	if c.buf != [2]byte{'\r', '\n'} {
		c.err = errChunkMalformed
		return
	}
	c.checkEnd = false
}

// chunkHeaderAvailable reports whether a whole line is buffered.
func (c *rawChunks) chunkHeaderAvailable() bool {
	n := c.br.Buffered()
	if n > 0 {
		peek, _ := c.br.Peek(n)
		return bytes.IndexByte(peek, '\n') >= 0
	}
	return false
}

// Read reads the body's data, as net/http's chunked reader does: it
// returns what it has rather than wait for a next chunk's line.
func (c *rawChunks) Read(b []byte) (n int, err error) {
	for c.err == nil {
		if c.checkEnd {
			if n > 0 && c.br.Buffered() < 2 {
				break
			}
			c.endChunk()
			if c.err != nil {
				break
			}
		}
		if c.n == 0 {
			if n > 0 && !c.chunkHeaderAvailable() {
				break
			}
			c.beginChunk()
			continue
		}
		if len(b) == 0 {
			break
		}
		rb := b
		if uint64(len(rb)) > c.n {
			rb = rb[:c.n]
		}
		var k int
		k, c.err = c.br.Read(rb)
		n += k
		b = b[k:]
		c.n -= uint64(k)
		if c.n == 0 && c.err == nil {
			c.checkEnd = true
		} else if c.err == io.EOF {
			c.err = io.ErrUnexpectedEOF
		}
	}
	return n, c.err
}

// toData reads up to a chunk's data: the end of the chunk before and the
// next one's line. It returns io.EOF at the last chunk (its trailer
// section follows).
func (c *rawChunks) toData() error {
	for c.err == nil && c.n == 0 {
		if c.checkEnd {
			c.endChunk()
			continue
		}
		c.beginChunk()
	}
	return c.err
}

// took records k bytes of the current chunk's data taken.
func (c *rawChunks) took(k int) {
	c.n -= uint64(k)
	if c.n == 0 {
		c.checkEnd = true
	}
}

// spliceChunkMin is the smallest chunk relayed through a pipe: smaller
// ones (a stream of lines) cost fewer system calls copied, several at a
// time.
const spliceChunkMin = 16 << 10

// errSmallChunk hands a chunked body back to Read (SpliceTo).
var errSmallChunk = errors.New("chunk too small to relay through a pipe")

// IsSmallChunk reports whether SpliceTo's err handed a chunked body back
// to Read at a chunk too small for the pipe.
func IsSmallChunk(err error) bool { return err == errSmallChunk }

// crlf ends a chunk.
var crlf = []byte("\r\n")

// SpliceRest returns what completes the client's chunk that SpliceTo
// began (its data still owed, read from the app, and its CRLF), for an
// answer handed from the pipe to a copy in the middle of one: the copy
// then frames whole chunks of its own. It is empty for a body of known
// length, or between chunks.
func (x *Exchange) SpliceRest() ([]byte, error) {
	cb, ok := x.body.(*chunkedBody)
	if !ok || cb.raw == nil {
		return nil, nil
	}
	r := cb.raw
	var b []byte
	if r.owe > 0 {
		b = make([]byte, r.owe, r.owe+2)
		if _, err := io.ReadFull(r.br, b); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		r.took(r.owe)
		r.owe = 0
	}
	if r.crlf {
		b = append(b, crlf...)
		r.crlf = false
	}
	return b, nil
}

// NextChunkLarge reports whether a chunked body not read yet begins with
// a chunk large enough to relay through a pipe (spliceChunkMin bytes or
// more). It waits for that chunk's size line, and the body is read with
// rawChunks from then on, by Read as by SpliceTo.
func (x *Exchange) NextChunkLarge() bool {
	cb, ok := x.body.(*chunkedBody)
	if !ok || cb.started || x.eof {
		return false
	}
	if cb.raw == nil {
		cb.raw = &rawChunks{br: cb.br}
	}
	r := cb.raw
	if r.owe > 0 || r.crlf {
		return true
	}
	return r.toData() == nil && r.n >= spliceChunkMin
}
