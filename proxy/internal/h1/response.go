package h1

import (
	"bufio"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Response is the http.ResponseWriter of Server. The header section is
// made when the status is set (so later changes to the header map do not
// reach the client, as with net/http) and written with the first body
// bytes, the first flush or the end of the handler, once the body's
// framing is known.
type h1Response struct {
	c      *h1Conn
	req    *http.Request
	header http.Header
	status int

	wroteHeader bool // the status is set and c.hbuf holds the header section
	sentHeader  bool // the header section went to the connection
	handlerDone bool
	hijacked    bool

	head       bool  // a HEAD request: the body is not sent
	noBody     bool  // a status without a body (1xx, 204, 304)
	chunked    bool  // the body is sent chunked
	closeAfter bool  // the connection ends with this response
	clen       int64 // the Content-Length the handler set, or -1
	written    int64
	trailers   []string // declared in the Trailer header
	// werr is the error of a chunk written straight to the connection
	// (writeBody): the connection is done, as a failed write through the
	// buffer leaves the buffer failed.
	werr error
}

func (w *h1Response) Header() http.Header { return w.header }

func (w *h1Response) WriteHeader(code int) {
	if w.hijacked || w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	if w.c.canContinue.Load() {
		// The final answer comes first: no "100 Continue" after it.
		w.c.cmu.Lock()
		w.c.canContinue.Store(false)
		w.c.cmu.Unlock()
	}
	h := w.header
	if cl, ok := h["Content-Length"]; ok && len(cl) > 0 {
		if n, ok := ParseContentLength(textproto.TrimString(cl[0])); ok {
			w.clen = n
		} else {
			w.c.s.log.Debug("invalid Content-Length from the handler; ignored", "value", cl[0])
		}
	}
	w.noBody = code == http.StatusNoContent || code == http.StatusNotModified
	if v, ok := h["Connection"]; ok && httpguts.HeaderValuesContainsToken(v, "close") {
		w.closeAfter = true
	}
	if tr, ok := h["Trailer"]; ok {
		for _, v := range tr {
			for _, k := range strings.Split(v, ",") {
				if k = strings.TrimSpace(k); k != "" {
					w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
				}
			}
		}
	}
	b := appendStatusLine(w.c.hbuf[:0], code)
	b = AppendHeader(b, h)
	if _, ok := h["Date"]; !ok {
		b = append(b, w.c.s.dateHeader(time.Now())...)
	}
	w.c.hbuf = b
}

// AppendHeader appends h's fields but those the server writes itself.
func AppendHeader(b []byte, h http.Header) []byte {
	for k, vs := range h {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection":
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			b = appendField(b, k, v)
		}
	}
	return b
}

// appendField appends "k: v\r\n", line breaks in v turned into spaces as
// http.Header.Write does.
func appendField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	if strings.ContainsAny(v, "\r\n") {
		v = HeaderNewlines.Replace(v)
	}
	b = append(b, strings.TrimSpace(v)...)
	return append(b, "\r\n"...)
}

func appendStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = append(b, statusText(code)...)
	return append(b, "\r\n"...)
}

// statusText is "200 OK" for 200.
func statusText(code int) string {
	switch code {
	case http.StatusOK:
		return "200 OK"
	case http.StatusNotModified:
		return "304 Not Modified"
	case http.StatusNotFound:
		return "404 Not Found"
	}
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	return strconv.Itoa(code) + " " + text
}

// writeInformational sends a 1xx answer at once, with the header map as
// it is.
func (w *h1Response) writeInformational(code int) {
	if w.req.ProtoMinor == 0 {
		return // HTTP/1.0 clients know no 1xx answers
	}
	c := w.c
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if code == http.StatusContinue {
		c.canContinue.Store(false)
	}
	b := appendStatusLine(c.hbuf[:0], code)
	b = AppendHeader(b, w.header)
	b = append(b, "\r\n"...)
	c.hbuf = b[:0]
	c.bw.Write(b)
	c.bw.Flush()
}

// commit writes the header section with the body's framing; final: the
// handler has returned, so what is held back is the whole body.
func (w *h1Response) commit(final bool) {
	w.sentHeader = true
	c := w.c
	b := c.hbuf
	switch {
	case w.noBody:
		if w.status == http.StatusNotModified && w.clen >= 0 {
			b = appendContentLength(b, w.clen)
		}
	case w.clen >= 0:
		b = appendContentLength(b, w.clen)
	case w.head:
		if final && w.written > 0 {
			b = appendContentLength(b, w.written)
		}
	case final && len(w.trailers) == 0:
		b = appendContentLength(b, int64(len(c.pending)))
	case w.req.ProtoAtLeast(1, 1):
		w.chunked = true
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	default:
		w.closeAfter = true // an HTTP/1.0 body of unknown length ends with the connection
	}
	if w.closeAfter || c.s.closing.Load() || c.s.noKeepAlive.Load() || w.bodyEndsConn() {
		w.closeAfter = true
		b = append(b, "Connection: close\r\n"...)
	} else if w.req.ProtoMinor == 0 {
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "\r\n"...)
	c.bw.Write(b)
	c.hbuf = b[:0]
	if len(c.pending) > 0 {
		w.writeBody(c.pending)
		c.pending = c.pending[:0]
	}
}

// bodyEndsConn reports whether the request's body, as it is when the
// answer begins, will cost the connection, which the answer then says
// (net/http's chunkWriter.writeHeader): the client was never told to send
// it ("Expect: 100-continue"), or the handler closed it with more left
// than the server reads on its behalf.
func (w *h1Response) bodyEndsConn() bool {
	b, ok := w.req.Body.(*h1Body)
	if !ok {
		return false
	}
	if !b.mu.TryLock() {
		return false // being read (the upstream client's writer): it goes on
	}
	defer b.mu.Unlock()
	if b.eof {
		return false
	}
	return b.err != nil || b.expect || b.closed && (b.chunked != nil || b.remaining > maxDiscard)
}

func appendContentLength(b []byte, n int64) []byte {
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, n, 10)
	return append(b, "\r\n"...)
}

func (w *h1Response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.clen >= 0 && w.written > w.clen {
		return 0, http.ErrContentLength
	}
	if w.head {
		return len(p), nil
	}
	if w.werr != nil {
		return 0, w.werr
	}
	if !w.sentHeader {
		if w.clen < 0 && len(w.c.pending)+len(p) <= bufferBeforeChunking {
			w.c.pending = append(w.c.pending, p...)
			return len(p), nil
		}
		w.commit(false)
	}
	if err := w.writeBody(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *h1Response) writeBody(p []byte) error {
	bw := w.c.bw
	if w.chunked {
		var hex [18]byte
		size := append(strconv.AppendInt(hex[:0], int64(len(p)), 16), '\r', '\n')
		if len(p) < bw.Size() {
			bw.Write(size)
			bw.Write(p)
			_, err := bw.WriteString("\r\n")
			return err
		}
		// A chunk larger than the buffer goes out whole with its
		// framing in one system call (writev), as nginx sends it:
		// through the buffer it took three writes, two of them of a
		// few bytes, and a copy of the buffer's size.
		if err := bw.Flush(); err != nil {
			return err
		}
		v := net.Buffers{size, p, crlf}
		w.werr = writeBuffers(w.c.nc, &v)
		return w.werr
	}
	_, err := bw.Write(p)
	return err
}

// crlf ends a chunk.
var crlf = []byte("\r\n")

// BuffersWriter is a connection that writes several buffers with one
// system call, as net.Buffers does for a TCP connection (writev). A
// connection that wraps a TCP connection implements it to keep that.
type BuffersWriter interface {
	WriteBuffers(v *net.Buffers) (int64, error)
}

// writeBuffers writes v to nc: with one system call where nc can.
func writeBuffers(nc net.Conn, v *net.Buffers) error {
	if bw, ok := nc.(BuffersWriter); ok {
		_, err := bw.WriteBuffers(v)
		return err
	}
	_, err := v.WriteTo(nc)
	return err
}

// Flush sends what is buffered (http.Flusher).
func (w *h1Response) Flush() { _ = w.FlushError() }

// FlushError sends what is buffered; http.ResponseController calls it.
func (w *h1Response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sentHeader {
		w.commit(false)
	}
	if w.werr != nil {
		return w.werr
	}
	return w.c.bw.Flush()
}

// SetReadDeadline sets the connection's read deadline, as
// http.ResponseController does for net/http's server: a deadline in the
// past wakes a reader of the request body blocked on the client. Once the
// body was read whole and the connection is watched for the client's
// going away (the client watch), the watch owns the deadline and this
// does nothing: there is no body read left to bound.
func (w *h1Response) SetReadDeadline(t time.Time) error {
	c := w.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.watching {
		return nil
	}
	if err := c.nc.SetReadDeadline(t); err != nil {
		return err
	}
	c.deadline = t
	return nil
}

// EnableFullDuplex is a no-op: the body can always be read while the
// response is written.
func (w *h1Response) EnableFullDuplex() error { return nil }

// Hijack hands the connection to the handler (http.Hijacker), for
// WebSockets.
func (w *h1Response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.handlerDone || w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	c := w.c
	c.stopWatch()
	if w.wroteHeader && !w.sentHeader {
		w.commit(false)
	}
	if err := c.bw.Flush(); err != nil {
		return nil, nil, err
	}
	w.hijacked = true
	_ = c.nc.SetReadDeadline(time.Time{})
	c.deadline = time.Time{}
	var rest []byte
	if n := c.br.Buffered(); n > 0 {
		p, _ := c.br.Peek(n)
		rest = append([]byte(nil), p...)
		c.br.Discard(n)
	}
	c.s.forget(c)
	if c.s.connState != nil {
		c.s.connState(c.nc, http.StateHijacked)
	}
	hc := &hijackedConn{Conn: c.nc, buf: rest}
	return hc, bufio.NewReadWriter(bufio.NewReader(hc), c.bw), nil
}

// finish completes the response after the handler returned and reports
// whether the connection can take another request.
func (w *h1Response) finish(body *h1Body) bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sentHeader {
		w.commit(true)
	}
	c := w.c
	if w.chunked {
		b := append(c.hbuf[:0], "0\r\n"...)
		for _, k := range w.trailers {
			for _, v := range w.header[k] {
				b = appendField(b, k, v)
			}
		}
		for k, vs := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && httpguts.ValidHeaderFieldName(name) {
				for _, v := range vs {
					b = appendField(b, name, v)
				}
			}
		}
		b = append(b, "\r\n"...)
		c.bw.Write(b)
		c.hbuf = b[:0]
	}
	keep := !w.closeAfter
	if w.clen >= 0 && !w.head && !w.noBody && w.written != w.clen {
		keep = false // too short: the client waits for the rest
	}
	if w.werr != nil {
		return false
	}
	if keep && body == nil {
		// The response is whole in bw: it goes out as the wait for the
		// next request begins (sendAndWait), or when the connection
		// closes.
		c.flushLater = true
		return true
	}
	if err := c.bw.Flush(); err != nil {
		return false
	}
	if body != nil {
		// What is left of the body gets ReadHeaderTimeout to arrive (a
		// client still sending is expected to keep sending); a reader
		// still blocked on it (the upstream client's body writer) is woken
		// by the same deadline.
		t := time.Now().Add(c.s.readHeaderTimeout)
		_ = c.nc.SetReadDeadline(t)
		c.deadline = t
		if !body.finish() {
			c.linger()
			return false
		}
	}
	return keep
}

var (
	_ http.ResponseWriter = (*h1Response)(nil)
	_ http.Flusher        = (*h1Response)(nil)
	_ http.Hijacker       = (*h1Response)(nil)
)

// RawWriter is a response whose body can go straight to the client's
// connection instead of through the server's buffer: one sent as it is
// with a Content-Length, or one sent chunked whose chunks the caller
// frames (not the answer to HEAD).
type RawWriter interface {
	// WriteRaw sends the header and what the server holds, then calls
	// send with the client's connection to write the body: up to n bytes
	// of a body of known length, or, with n < 0, whole chunks of a
	// chunked one (the server ends the body, its trailers included). The
	// data bytes send reports count as the body's. It reports false,
	// calling nothing, when the body cannot go that way.
	WriteRaw(n int64, send func(nc net.Conn) (int64, error)) (bool, int64, error)
}

// WriteRaw implements RawWriter.
func (w *h1Response) WriteRaw(n int64, send func(nc net.Conn) (int64, error)) (bool, int64, error) {
	if w.hijacked || w.noBody || w.head || w.werr != nil {
		return false, 0, nil
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if n >= 0 && (w.clen < 0 || w.written+n > w.clen) || n < 0 && w.clen >= 0 {
		return false, 0, nil
	}
	if !w.sentHeader {
		if len(w.c.pending) > 0 {
			return false, 0, nil // a body begun, not yet framed
		}
		w.commit(false)
	}
	if w.chunked != (n < 0) {
		return false, 0, nil // an HTTP/1.0 client's body ends with the connection
	}
	if err := w.c.bw.Flush(); err != nil {
		return true, 0, err
	}
	k, err := send(w.c.nc)
	w.written += k
	return true, k, err
}
