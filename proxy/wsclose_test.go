package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// frame builds one WebSocket frame, masked with key when it is not nil.
func frame(fin bool, op byte, payload []byte, key []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	var mbit byte
	if key != nil {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		f = append(f, mbit|byte(n))
	case n < 1<<16:
		f = append(f, mbit|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, mbit|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	if key == nil {
		return append(f, payload...)
	}
	f = append(f, key...)
	for i, c := range payload {
		f = append(f, c^key[i%4])
	}
	return f
}

// readFrame reads one frame and returns its first byte and its payload,
// unmasked.
func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := int64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = int64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = int64(binary.BigEndian.Uint64(b[:]))
	}
	var key []byte
	if h[1]&0x80 != 0 {
		key = make([]byte, 4)
		if _, err := io.ReadFull(r, key); err != nil {
			return 0, nil, err
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	for i := range p {
		if key != nil {
			p[i] ^= key[i%4]
		}
	}
	return h[0], p, nil
}

// goingAway is the payload of the proxy's close frame.
var goingAway = append([]byte{0x03, 0xE9}, "going away"...)

// TestWSFrames: the frame follower finds where each frame ends and its
// opcode, however the bytes are split.
func TestWSFrames(t *testing.T) {
	key := []byte{1, 2, 3, 4}
	for _, tc := range []struct {
		name   string
		stream []byte
		ops    []int // the opcodes of the frames, in order
	}{
		{"small text", frame(true, 1, []byte("hi"), nil), []int{1}},
		{"masked", frame(true, 1, []byte("hi"), key), []int{1}},
		{"empty ping then close", append(frame(true, 9, nil, nil), frame(true, 8, goingAway, key)...), []int{9, 8}},
		{"16-bit length", frame(true, 2, bytes.Repeat([]byte("x"), 300), key), []int{2}},
		{"64-bit length", frame(true, 2, bytes.Repeat([]byte("y"), 70000), nil), []int{2}},
		{"fragments", append(frame(false, 1, []byte("a"), nil), frame(true, 0, []byte("b"), nil)...), []int{1, 0}},
	} {
		for _, step := range []int{1, 3, 7, 1 << 20} {
			var f wsFrames
			var ops []int
			for p := tc.stream; len(p) > 0; {
				chunk := p[:min(step, len(p))]
				p = p[len(chunk):]
				for len(chunk) > 0 {
					n, op := f.feed(chunk)
					chunk = chunk[n:]
					if op >= 0 {
						ops = append(ops, op)
						if !f.between() {
							t.Errorf("%s, by %d: not between frames after one ended", tc.name, step)
						}
					} else if len(chunk) > 0 {
						t.Errorf("%s, by %d: feed stopped with no frame ended", tc.name, step)
					}
				}
			}
			if !f.between() || !equalInts(ops, tc.ops) {
				t.Errorf("%s, by %d: ops %v, between %v; want %v", tc.name, step, ops, f.between(), tc.ops)
			}
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestWSDirCloseWaitsForFrame: a close frame asked for while a frame is
// under way goes out when that frame ends, never inside it; the source's
// frames after it are dropped until its own close frame, which ends the
// direction. Both directions: to a client (unmasked) and to a backend
// (masked).
func TestWSDirCloseWaitsForFrame(t *testing.T) {
	for _, masked := range []bool{false, true} {
		var key []byte
		if !masked {
			key = []byte{9, 8, 7, 6} // the source is the client: its frames are masked
		}
		var out bytes.Buffer
		d := &wsDir{dst: &out, masked: masked}
		msg := frame(true, 1, []byte("a message cut in two by the reads"), key)
		if replied, err := d.write(msg[:10]); replied || err != nil {
			t.Fatalf("write: %v, %v", replied, err)
		}
		d.end() // mid-frame
		if out.Len() != 10 {
			t.Fatalf("masked %v: %d bytes out after the close was asked for mid-frame, want the 10 of the frame", masked, out.Len())
		}
		later := frame(true, 1, []byte("after the close"), key)
		reply := frame(true, 8, []byte{0x03, 0xE8}, key)
		rest := append(append(append([]byte{}, msg[10:]...), later...), reply...)
		replied, err := d.write(rest)
		if err != nil || !replied {
			t.Fatalf("masked %v: the source's close did not end the direction: %v, %v", masked, replied, err)
		}
		r := bufio.NewReader(&out)
		b0, p, err := readFrame(r)
		if err != nil || b0 != 0x81 || string(p) != "a message cut in two by the reads" {
			t.Fatalf("masked %v: first frame %#x %q %v", masked, b0, p, err)
		}
		b0, p, err = readFrame(r)
		if err != nil || b0 != 0x88 || !bytes.Equal(p, goingAway) {
			t.Fatalf("masked %v: second frame %#x %q %v, want the close 1001", masked, b0, p, err)
		}
		if r.Buffered() != 0 {
			t.Errorf("masked %v: %d bytes after the close frame, want none", masked, r.Buffered())
		}
	}
}

// TestWSDirCloseBetweenFrames: between frames the close frame goes out at
// once, masked toward a backend only.
func TestWSDirCloseBetweenFrames(t *testing.T) {
	for _, masked := range []bool{false, true} {
		var out bytes.Buffer
		d := &wsDir{dst: &out, masked: masked}
		d.write(frame(true, 1, []byte("hi"), nil))
		d.end()
		d.end() // once only
		r := bufio.NewReader(&out)
		readFrame(r)
		raw, _ := r.Peek(r.Buffered())
		if got := raw[1]&0x80 != 0; got != masked {
			t.Errorf("close frame masked %v, want %v", got, masked)
		}
		b0, p, err := readFrame(r)
		if err != nil || b0 != 0x88 || !bytes.Equal(p, goingAway) || r.Buffered() != 0 {
			t.Errorf("masked %v: %#x %q %v, %d more bytes", masked, b0, p, err, r.Buffered())
		}
	}
}

// TestDrainClosesWebSocket: a drain sends a WebSocket's client and its
// backend each a close frame with 1001 "going away"; once each has
// answered with its own, the connection ends.
func TestDrainClosesWebSocket(t *testing.T) {
	backendGot := make(chan []byte, 1)
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Write(frame(true, 1, []byte("hello"), nil))
		brw.Flush()
		b0, p, err := readFrame(brw.Reader)
		if err != nil || b0 != 0x88 {
			backendGot <- nil
			return
		}
		backendGot <- p
		c.Write(frame(true, 8, p[:2], nil)) // the reply
	})
	s, addr := startProxy(t, Options{}, Route{App: "a", Hosts: []string{"a.test"}, Backends: []string{be}})
	ws, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	io.WriteString(ws, "GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	r := bufio.NewReader(ws)
	if line, err := r.ReadString('\n'); err != nil || !strings.Contains(line, " 101 ") {
		t.Fatalf("upgrade: %q, %v", line, err)
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	if _, p, err := readFrame(r); err != nil || string(p) != "hello" {
		t.Fatalf("first frame %q %v", p, err)
	}

	drained := make(chan int, 1)
	go func() { drained <- s.Drain(context.Background(), []string{be}) }()
	b0, p, err := readFrame(r)
	if err != nil || b0 != 0x88 || !bytes.Equal(p, goingAway) {
		t.Fatalf("client got %#x %q %v, want a close frame 1001 going away", b0, p, err)
	}
	if got := <-backendGot; !bytes.Equal(got, goingAway) {
		t.Fatalf("backend got close %q, want 1001 going away", got)
	}
	ws.Write(frame(true, 8, p[:2], []byte{1, 2, 3, 4})) // the client's reply
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Errorf("after the close: %q, %v; want the end of the connection", rest, err)
	}
	if n := <-drained; n != 0 {
		t.Errorf("Drain = %d", n)
	}
}

// TestDrainEndsEventStreamCleanly: a drain ends an event stream with the
// end of its chunked answer (the terminating chunk), not a cut, so that
// an EventSource reconnects.
func TestDrainEndsEventStreamCleanly(t *testing.T) {
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: tick\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	s, addr := startProxy(t, Options{}, Route{App: "a", Hosts: []string{"a.test"}, Backends: []string{be}})
	req, _ := http.NewRequest("GET", "http://"+addr+"/events", nil)
	req.Host = "a.test"
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("answer not chunked: %v", resp.TransferEncoding)
	}
	sse := bufio.NewReader(resp.Body)
	if line, err := sse.ReadString('\n'); err != nil || line != "data: tick\n" {
		t.Fatalf("event stream: %q, %v", line, err)
	}
	drained := make(chan int, 1)
	go func() { drained <- s.Drain(context.Background(), []string{be}) }()
	if rest, err := io.ReadAll(sse); err != nil {
		t.Errorf("event stream ended with %v (after %q), want a clean end", err, rest)
	}
	if n := <-drained; n != 0 {
		t.Errorf("Drain = %d", n)
	}
}
