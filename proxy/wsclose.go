package proxy

import (
	"crypto/rand"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// A WebSocket that a drain ends is closed politely, as Caddy does: each
// side gets a close frame with status 1001 "going away" (RFC 6455 7.4.1),
// the client so that it reconnects (to the new instances), the backend so
// that it ends the session as it would on a client's close. The proxy
// copies the connection's bytes both ways without parsing the protocol,
// but follows where each frame ends (wsFrames), so that a close frame is
// never written into the middle of a frame one side is sending: it goes
// out at once when the direction is between frames, else as soon as the
// frame under way ends. From then on what that side sends is dropped
// (its frames would follow a close) until its own close frame, the reply;
// once both directions have had their reply, or end, the connection
// ends. streamCloseGrace bounds all of it: then the connection is cut.

// streamCloseGrace is how long a stream that a drain ended politely has
// to finish (a WebSocket's closing handshake) before it is cut.
const streamCloseGrace = 2 * time.Second

// wsGoingAway is the close status of a WebSocket ended by a drain.
const wsGoingAway = 1001

// wsGoingAwayReason is the close frame's reason text.
const wsGoingAwayReason = "going away"

// WebSocket opcodes (RFC 6455 5.2).
const wsOpClose = 0x8

// switchedPipe copies a switched connection's bytes: toBackend what the
// client sends, toClient what the backend sends. Each returns nil on a
// clean end.
type switchedPipe struct {
	toBackend, toClient func(src io.Reader) error
}

// switchedPipe returns the copiers of the connection switched by r's 101
// answer, between the client's connection client and the backend's. A
// WebSocket's copiers follow its frames and register with r's stream
// slot, so that a drain closes it politely; any other protocol is copied
// as bytes, and a drain cuts it.
func (s *Server) switchedPipe(r *http.Request, client, backend io.Writer) switchedPipe {
	if !strings.EqualFold(upgradeType(r.Header), "websocket") {
		return switchedPipe{
			toBackend: func(src io.Reader) error { _, err := io.Copy(backend, src); return err },
			toClient:  func(src io.Reader) error { _, err := io.Copy(client, src); return err },
		}
	}
	toBackend := &wsDir{dst: backend, masked: true}
	toClient := &wsDir{dst: client}
	if slot, ok := r.Context().Value(streamSlotKey{}).(*streamSlot); ok {
		s.streams.setPolite(slot, func() {
			toClient.end()
			toBackend.end()
		})
	}
	return switchedPipe{
		toBackend: func(src io.Reader) error { return s.copyFrames(toBackend, src) },
		toClient:  func(src io.Reader) error { return s.copyFrames(toClient, src) },
	}
}

// copyFrames copies src into d until src ends, or has answered the close
// frame d sent with its own.
func (s *Server) copyFrames(d *wsDir, src io.Reader) error {
	buf := s.bufs.Get()
	defer s.bufs.Put(buf)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			replied, err := d.write(buf[:n])
			if err != nil {
				return err
			}
			if replied {
				return nil
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// wsDir is one direction of a WebSocket connection: what one side sends,
// written to the other (dst).
type wsDir struct {
	dst    io.Writer
	masked bool // the frames go to the backend: a client's frames are masked

	mu      sync.Mutex // held while bytes are written to dst
	frames  wsFrames   // where the frames from the source end
	pending bool       // a close frame goes out when the frame under way ends
	closing bool       // a close frame went out: the source's frames are dropped until its close
	closed  bool       // a close frame went out, the proxy's or the source's own
}

// write passes p, the source's next bytes, on to dst, following its
// frames. replied reports that the source answered the proxy's close
// frame: the direction is done.
func (d *wsDir) write(p []byte) (replied bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(p) > 0 {
		if d.closing {
			n, op := d.frames.feed(p)
			p = p[n:]
			if op == wsOpClose {
				return true, nil
			}
			continue
		}
		if !d.pending {
			// The usual case: all of p goes on in one write.
			for q := p; len(q) > 0; {
				n, op := d.frames.feed(q)
				q = q[n:]
				if op == wsOpClose {
					d.closed = true // the source closes itself
				}
			}
			_, err := d.dst.Write(p)
			return false, err
		}
		// A close frame waits for the frame under way: frame by frame.
		n, op := d.frames.feed(p)
		if _, err := d.dst.Write(p[:n]); err != nil {
			return false, err
		}
		p = p[n:]
		if op == wsOpClose {
			d.closed, d.pending = true, false // the source closed itself
		}
		if d.pending && d.frames.between() {
			d.pending = false
			d.sendClose()
		}
	}
	return false, nil
}

// end sends the close frame: at once when no frame is under way, else
// when the one under way ends.
func (d *wsDir) end() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	if !d.frames.between() {
		d.pending = true
		return
	}
	// The copier may be waiting for the source: the frame is written
	// here, within the grace the drain gives the stream.
	if c, ok := d.dst.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = c.SetWriteDeadline(time.Now().Add(streamCloseGrace))
	}
	d.sendClose()
}

// sendClose writes the close frame "1001 going away" to dst. d.mu is held.
func (d *wsDir) sendClose() {
	d.closed, d.closing = true, true
	_, _ = d.dst.Write(closeFrame(d.masked))
}

// closeFrame is a close frame with status 1001 "going away", masked with
// a random key for a backend (RFC 6455 5.3).
func closeFrame(masked bool) []byte {
	payload := binary.BigEndian.AppendUint16(nil, wsGoingAway)
	payload = append(payload, wsGoingAwayReason...)
	f := []byte{0x80 | wsOpClose, byte(len(payload))}
	if !masked {
		return append(f, payload...)
	}
	f[1] |= 0x80
	var key [4]byte
	_, _ = rand.Read(key[:])
	f = append(f, key[:]...)
	for i, c := range payload {
		f = append(f, c^key[i%4])
	}
	return f
}

// wsFrames follows the frames of a byte stream of WebSocket frames
// (RFC 6455 5.2): where each ends, and its opcode.
type wsFrames struct {
	hdr  [14]byte // the header of the frame under way
	nhdr int      // its bytes seen so far
	left int64    // payload bytes of the frame under way still to come
}

// between reports whether the stream is between two frames.
func (f *wsFrames) between() bool { return f.nhdr == 0 && f.left == 0 }

// headerLen is the length of the header under way, once its first two
// bytes tell it; 0 before.
func (f *wsFrames) headerLen() int {
	if f.nhdr < 2 {
		return 0
	}
	n := 2
	switch f.hdr[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if f.hdr[1]&0x80 != 0 {
		n += 4 // the masking key
	}
	return n
}

// payloadLen is the payload length the complete header says.
func (f *wsFrames) payloadLen() int64 {
	switch n := f.hdr[1] & 0x7f; n {
	case 126:
		return int64(binary.BigEndian.Uint16(f.hdr[2:4]))
	case 127:
		return int64(binary.BigEndian.Uint64(f.hdr[2:10]) &^ (1 << 63))
	default:
		return int64(n)
	}
}

// feed takes the bytes of p up to the end of the frame under way and
// returns how many it took, and the frame's opcode when it ended there
// (-1 otherwise).
func (f *wsFrames) feed(p []byte) (n int, op int) {
	for n < len(p) {
		if f.left > 0 {
			k := int(min(int64(len(p)-n), f.left))
			n += k
			f.left -= int64(k)
			if f.left == 0 {
				return n, f.endFrame()
			}
			continue
		}
		f.hdr[f.nhdr] = p[n]
		f.nhdr++
		n++
		if h := f.headerLen(); h > 0 && f.nhdr == h {
			if f.left = f.payloadLen(); f.left == 0 {
				return n, f.endFrame()
			}
		}
	}
	return n, -1
}

// endFrame starts the next frame and returns the opcode of the one that
// ended.
func (f *wsFrames) endFrame() int {
	op := int(f.hdr[0] & 0x0f)
	f.nhdr = 0
	return op
}
