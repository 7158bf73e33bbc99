package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/piku/piku/proxy/internal/h1"
)

// Exchange is a request sent and its response's header read; its body
// is read from the connection (Read, CopyTo).
type Exchange struct {
	p        *Pool
	c        *conn
	req      *Request
	stop     func() bool // ends the cut on the client's going away
	wrote    chan error  // the body writer's result; nil without a body
	status   int
	clen     int64 // the body's length, -1 for chunked or until close
	chunked  bool
	noBody   bool
	keep     bool     // the connection may be reused once the body was read
	trailers []string // the trailer fields announced
	body     io.Reader
	lbody    lengthBody // body, for a Content-Length (no allocation of its own)
	eof      bool
	ended    bool // Finish was called; guarded by mu

	upgradeOK bool // a 101 answer says "Connection: upgrade"

	// The client's response fields set before the backend's were parsed
	// into the same map (a few: kept without an allocation).
	preset     [4]presetField
	npreset    int
	presetMany http.Header // when there are more

	mu       sync.Mutex // guards headRead, ended and canceled
	headRead bool       // the answer's head came: the body writer leaves the read deadline alone
	canceled bool       // Cancel cut the connection: it is not reused
}

// exchange writes req on c and reads the response's header.
func (cl *Client) exchange(p *Pool, c *conn, req *Request, reused bool) (*Exchange, error) {
	r := req.R
	ctx := r.Context()
	if err := ctx.Err(); err != nil {
		p.put(c)
		return nil, err
	}
	// The client going away cuts the backend connection at once.
	stop := h1.AfterFunc(ctx, c.cut)
	x := &Exchange{p: p, c: c, req: req, stop: stop}
	// The fields the proxy set before the backend's go to the client
	// with an error page; the backend's go only with its own answer.
	x.keepPreset()
	var proceed chan bool // "Expect: 100-continue": true sends the body, false drops it
	released := false
	release := func(send bool) {
		if proceed != nil && !released {
			released = true
			proceed <- send
		}
	}
	startWritten := c.written.Load()
	fail := func(err error, nothingReceived bool) (*Exchange, error) {
		stop()
		c.close()
		release(false)
		x.restorePreset()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if reused && nothingReceived && !c.announced && time.Since(c.lastUsed) < closeAfter {
			// The backend closed the connection as it was reused, just
			// after its last answer: it closes after every answer.
			p.closesAfterAnswer.Store(true)
		}
		if reused && retryable(req, c.written.Load() == startWritten, nothingReceived) {
			return nil, errNothingSent{err}
		}
		return nil, err
	}

	chunked := req.Body != nil && (req.Body.Size < 0 || len(r.Trailer) > 0)
	writeHead(c.bw, req, chunked)
	// A body read ahead whole goes with the head, from this goroutine.
	inline := req.Body != nil && req.Body.Buf != nil && !chunked
	if inline {
		c.bw.Write(req.Body.Buf)
	}
	if req.Body == nil || inline {
		// The request goes out whole from here, and the answer is
		// waited for at once.
		c.setReadDeadline(time.Now(), cl.ResponseHeaderTimeout)
		if err := flushAndWait(c); err != nil {
			return fail(err, true)
		}
	} else {
		// The head goes out before a body still to come, which may be
		// slow: the backend sees the request at once.
		if err := c.bw.Flush(); err != nil {
			return fail(err, true)
		}
		// The header timeout starts once the body is written (as
		// http.Transport's ResponseHeaderTimeout): an upload may take
		// longer than the backend takes to answer it.
		_ = c.nc.SetReadDeadline(time.Time{})
		c.deadline = time.Time{}
		x.wrote = make(chan error, 1)
		if ExpectsContinue(r) {
			proceed = make(chan bool, 1)
		}
		go x.writeBody(req.Body.attempt(), chunked, proceed, cl.ResponseHeaderTimeout)
	}

	got := false // a byte of the answer arrived
	n1xx, room := 0, maxResponseHeader
	for {
		head, err := h1.ReadSection(c.br, room)
		if err != nil {
			nothing := !got && c.br.Buffered() == 0 &&
				(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				err = fmt.Errorf("no response within %v: %w", cl.ResponseHeaderTimeout, err)
			}
			return fail(err, nothing)
		}
		got = true
		if err := x.parseHead(head); err != nil {
			return fail(err, false)
		}
		if x.status >= 200 || x.status == http.StatusSwitchingProtocols {
			break
		}
		if n1xx++; n1xx > max1xx {
			return fail(fmt.Errorf("more than %d 1xx answers", max1xx), false)
		}
		room -= len(head)
		switch x.status {
		case http.StatusContinue:
			release(true)
		case http.StatusEarlyHints:
			if req.W != nil {
				if err := x.relayHints(head); err != nil {
					return fail(err, false)
				}
			}
		}
	}
	if reused || c.announced {
		p.keepsAlive.Store(true)
	}
	if x.wrote != nil {
		// The header timeout is over: the body writer must not set it
		// any more, and the deadline on c is not known here.
		x.mu.Lock()
		x.headRead = true
		x.mu.Unlock()
		c.deadline = aLongTimeAgo
	}
	if proceed != nil && !released {
		// A final answer without "100 Continue": the body is not wanted.
		// It is neither read from the client nor sent, and the
		// connection is not reused, since the backend may still expect
		// it.
		release(false)
		x.keep = false
	}
	if x.status == http.StatusSwitchingProtocols {
		if err := x.checkSwitch(); err != nil {
			return fail(err, false)
		}
		stop()
		_ = c.nc.SetDeadline(time.Time{})
		return x, nil
	}
	switch {
	case x.noBody:
		x.eof = true
	case x.chunked:
		x.body = &chunkedBody{r: httputil.NewChunkedReader(c.br), br: c.br}
	case x.clen >= 0:
		x.lbody = lengthBody{br: c.br, n: x.clen}
		x.body = &x.lbody
		if x.clen == 0 {
			x.eof = true
		}
	default:
		x.body = c.br // until the backend closes
		x.keep = false
	}
	if !x.eof && (x.clen < 0 || int64(c.br.Buffered()) < x.clen) {
		// A body still to come may take as long as it takes (an event
		// stream); one read whole already needs no deadline change.
		c.setReadDeadline(time.Time{}, 0)
	}
	return x, nil
}

// retryable reports whether req, which failed on a reused connection (the
// backend may have closed it as the request was picked), may be sent again
// on a new one: http.Transport's rule (shouldRetryRequest). Either none
// of its bytes could be written (the backend cannot have seen it), and its
// body, if any, can go whole; or no byte of the answer came, the request
// is idempotent (isReplayable: GET, HEAD, OPTIONS, TRACE, or an
// Idempotency-Key), and its body, if any, can go again whole. A POST the
// backend may have read before it closed is never sent twice: it may have
// charged a card.
func retryable(req *Request, nothingWritten, nothingReceived bool) bool {
	if !nothingWritten && !(nothingReceived && idempotent(req.R)) {
		return false
	}
	// revoke: the body was read ahead whole, or none of it was read yet.
	return req.Body == nil || req.Body.revoke()
}

// idempotent reports whether r may be sent twice (net/http's
// Request.isReplayable, without the body: retryable looks at that).
func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	// net/http takes the fields' presence, even with no value.
	if _, ok := r.Header["Idempotency-Key"]; ok {
		return true
	}
	_, ok := r.Header["X-Idempotency-Key"]
	return ok
}

// Status is the response's status code.
func (x *Exchange) Status() int { return x.status }

// Length is the response body's length, or -1 when it is chunked or
// ends when the backend closes.
func (x *Exchange) Length() int64 { return x.clen }

// relayHints passes a "103 Early Hints" answer's fields (but the
// hop-by-hop ones) to the client, as Caddy does.
func (x *Exchange) relayHints(head string) error {
	_, rest := h1.CutLine(head)
	h := http.Header{}
	err := h1.ForEachField(rest, func(k, v string) {
		if !HopByHop(k) {
			h[k] = append(h[k], v)
		}
	})
	if err != nil {
		return err
	}
	sendHints(x.req.W, h)
	return nil
}

// sendHints sends the client "103 Early Hints" with the fields of hints,
// the response's own header left as it was.
func sendHints(w http.ResponseWriter, hints http.Header) {
	h := w.Header()
	saved := make(http.Header, len(hints))
	for k, v := range hints {
		if old, ok := h[k]; ok {
			saved[k] = old
		}
		h[k] = v
	}
	w.WriteHeader(http.StatusEarlyHints)
	for k := range hints {
		if old, ok := saved[k]; ok {
			h[k] = old
		} else {
			delete(h, k)
		}
	}
}

// presetField is a response field the proxy set before the exchange.
type presetField struct {
	k string
	v []string
}

// keepPreset notes the fields in the client's response header before the
// backend's are parsed into it.
func (x *Exchange) keepPreset() {
	h := x.req.Header
	if len(h) > len(x.preset) {
		x.presetMany = h.Clone()
		return
	}
	for k, v := range h {
		x.preset[x.npreset] = presetField{k, v}
		x.npreset++
	}
}

// restorePreset leaves the client's response header as keepPreset found
// it: a backend's fields reach the client only with its answer.
func (x *Exchange) restorePreset() {
	h := x.req.Header
	clear(h)
	for k, v := range x.presetMany {
		h[k] = v
	}
	for _, f := range x.preset[:x.npreset] {
		h[f.k] = f.v
	}
}

// checkSwitch accepts a 101 answer only when the request asked to switch
// protocols and the answer names the same protocol with "Connection:
// upgrade" (RFC 9110 7.8, as net/http's isProtocolSwitchHeader): else the
// client's connection would be handed to the backend, and the client's
// next requests, for any host, would reach that app unrouted.
func (x *Exchange) checkSwitch() error {
	if x.req.Upgrade == "" {
		return errors.New("backend switched protocols when none was asked for")
	}
	if !x.upgradeOK {
		return errors.New("backend switched protocols without \"Connection: upgrade\"")
	}
	up := ""
	if v := x.req.Header["Upgrade"]; len(v) > 0 {
		up = v[0]
	}
	if !Printable(up) {
		return fmt.Errorf("backend tried to switch to invalid protocol %q", up)
	}
	if !strings.EqualFold(up, x.req.Upgrade) {
		return fmt.Errorf("backend tried to switch protocol %q when %q was requested", up, x.req.Upgrade)
	}
	return nil
}

// Printable reports whether s has only printable ASCII: what a protocol
// name in Upgrade may hold.
func Printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// writeBody writes the request body to the backend, on a goroutine of its
// own, and then starts the response header timeout unless the answer
// came first. A panic ends the exchange, never the daemon.
func (x *Exchange) writeBody(body io.Reader, chunked bool, proceed <-chan bool, headerTimeout time.Duration) {
	var err error
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic writing the request body: %v", p)
			_ = x.c.nc.Close()
		}
		x.wrote <- err
	}()
	err = writeBody(x.c.bw, x.req, body, chunked, proceed)
	if err != nil {
		if x.req.Body.failed.Load() {
			// The client's body is broken: the backend must not wait
			// for the rest of it.
			_ = x.c.nc.Close()
		}
		return
	}
	x.mu.Lock()
	if !x.headRead {
		_ = x.c.nc.SetReadDeadline(time.Now().Add(headerTimeout))
	}
	x.mu.Unlock()
}

// parseHead parses a response's header section: a 1xx's is only looked at,
// a final one's fields go into x.req.Header, without the hop-by-hop ones.
func (x *Exchange) parseHead(head string) error {
	line, rest := h1.CutLine(head)
	proto, status, ok := strings.Cut(line, " ")
	if !ok || !strings.HasPrefix(proto, "HTTP/1.") || len(status) < 3 || (len(status) > 3 && status[3] != ' ') {
		return fmt.Errorf("malformed HTTP response %q", line)
	}
	code, err := strconv.Atoi(status[:3])
	if err != nil || code < 100 {
		return fmt.Errorf("malformed HTTP status code %q", status)
	}
	x.status = code
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok || major != 1 {
		return fmt.Errorf("malformed HTTP version %q", proto)
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// Only looked at, but malformed fields make it no answer.
		var clen, te []string
		err := h1.ForEachField(rest, func(k, v string) {
			switch k {
			case "Content-Length":
				clen = append(clen, v)
			case "Transfer-Encoding":
				te = append(te, v)
			}
		})
		if err == nil {
			if minor == 0 {
				te = nil
			}
			_, err = h1.Frame(te, clen, false)
		}
		return err
	}
	dst := x.req.Header
	var clen, te, conn, trailer []string
	keepAlive := ""
	hb := h1.NewHeaderBuilder(dst, rest)
	err = h1.ForEachField(rest, func(k, v string) {
		switch k {
		case "Content-Length":
			clen = append(clen, v)
			return
		case "Transfer-Encoding":
			te = append(te, v)
			return
		case "Connection":
			conn = append(conn, v)
			return
		case "Trailer":
			trailer = append(trailer, v)
			return
		case "Upgrade":
			if code == http.StatusSwitchingProtocols {
				break // kept for the client: it names the protocol
			}
			return
		case "Keep-Alive":
			keepAlive = v
			return
		case "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te":
			return
		}
		hb.Add(k, v)
	})
	if err != nil {
		return err
	}
	// Fields the Connection header names are hop-by-hop too.
	for _, v := range conn {
		for _, name := range strings.Split(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				k := textproto.CanonicalMIMEHeaderKey(name)
				if k != "Upgrade" || code != http.StatusSwitchingProtocols {
					delete(dst, k)
				}
			}
		}
	}
	x.keep = !httpguts.HeaderValuesContainsToken(conn, "close") &&
		(minor >= 1 || httpguts.HeaderValuesContainsToken(conn, "keep-alive")) &&
		!x.req.R.Close
	if x.c != nil {
		x.c.maxIdle = keepAliveIdle(keepAlive)
		x.c.announced = x.c.maxIdle != idleConnTimeout
	}
	if code == http.StatusSwitchingProtocols {
		x.upgradeOK = httpguts.HeaderValuesContainsToken(conn, "upgrade")
		dst["Connection"] = []string{"Upgrade"}
		return nil
	}
	x.noBody = x.req.R.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	x.clen = -1
	// Content-Length is checked even where Transfer-Encoding overrides
	// it, as net/http does.
	chunkedTE := te
	if minor == 0 {
		chunkedTE = nil
	}
	f, err := h1.Frame(chunkedTE, clen, false)
	if err != nil {
		return err
	}
	if len(te) > 0 {
		if minor == 0 {
			// RFC 9112 6.1: "MUST treat the message as if the framing is
			// faulty" (net/http reads the body until close).
			return fmt.Errorf("Transfer-Encoding in an HTTP/1.0 response")
		}
		x.chunked = !x.noBody
	} else if f.Length >= 0 {
		if code != http.StatusNoContent {
			dst["Content-Length"] = []string{f.LengthField}
		}
		if !x.noBody {
			x.clen = f.Length
		}
	}
	if x.chunked {
		for _, v := range trailer {
			for _, k := range strings.Split(v, ",") {
				if k = textproto.TrimString(k); k != "" {
					if k = textproto.CanonicalMIMEHeaderKey(k); !HopByHop(k) {
						x.trailers = append(x.trailers, k)
					}
				}
			}
		}
		if len(x.trailers) > 0 {
			dst["Trailer"] = []string{strings.Join(x.trailers, ", ")}
		}
	}
	return nil
}

// keepAliveIdle is how long a connection may stay idle by the backend's
// "Keep-Alive: timeout=N" (seconds; RFC 2068 19.7.1.1, as Node, uvicorn
// and Apache send it): a second less than it says, so that a request is
// not sent just as the backend gives the connection up, and never more
// than idleConnTimeout.
func keepAliveIdle(v string) time.Duration {
	for v != "" {
		var p string
		p, v, _ = strings.Cut(v, ",")
		k, val, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(textproto.TrimString(k), "timeout") {
			continue
		}
		n, err := strconv.Atoi(textproto.TrimString(val))
		if err != nil || n < 0 {
			break
		}
		d := time.Duration(min(n, int(idleConnTimeout/time.Second))) * time.Second
		return d - min(time.Second, d/2)
	}
	return idleConnTimeout
}

// Whole reports whether the response body is here whole: read with the
// header, or none.
func (x *Exchange) Whole() bool {
	return x.eof || x.clen > 0 && int64(x.c.br.Buffered()) >= x.clen
}

// Cancel makes a read of the response body, blocked or to come, fail at
// once; it may be called from any goroutine. The exchange must still be
// ended (Abort). Once it has ended, Cancel does nothing: its connection
// may be in the pool, or carrying another request, by then.
func (x *Exchange) Cancel() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.ended {
		return
	}
	x.canceled = true
	_ = x.c.nc.SetDeadline(aLongTimeAgo)
}

// BodyLeft reports whether the answer came while the client was still
// sending the request body: the backend will not read the rest, and the
// client's connection, where the rest still comes, cannot carry another
// request.
func (x *Exchange) BodyLeft() bool { return x.wrote != nil && !x.req.Body.Done() }

// Abort ends an exchange whose answer could not be passed on whole: the
// connection is closed, never reused.
func (x *Exchange) Abort() {
	x.keep = false
	x.Finish()
}

// Finish ends the exchange: the connection goes back to the pool when the
// body was read to its end, the request body was written whole and
// neither side asked to close; else it is closed. A second call does
// nothing.
func (x *Exchange) Finish() {
	x.mu.Lock()
	ended, canceled := x.ended, x.canceled
	x.ended = true
	x.mu.Unlock()
	if ended {
		return
	}
	reuse := x.keep && x.eof && !canceled
	if x.wrote != nil && !x.req.Body.Done() {
		// The backend answered before it had the whole body, which the
		// client is still sending: it will not read the rest. Closing
		// the connection ends a write of the body writer; a read from
		// the client's body is the caller's to end (forward.go wakes
		// it). The writer is waited for, a short while, so that it
		// leaves the client's connection alone once the request ends.
		x.stop()
		x.c.close()
		t := time.NewTimer(bodyWriteWait)
		select {
		case <-x.wrote:
		case <-t.C:
		}
		t.Stop()
		return
	}
	if x.wrote != nil && reuse {
		// A backend that keeps the connection after answering has read
		// the whole request body, or is about to; the writer's last
		// flush may still be returning. One that stopped reading without
		// closing costs the connection, after a short wait.
		t := time.NewTimer(bodyWriteWait)
		select {
		case err := <-x.wrote:
			reuse = err == nil
		case <-t.C:
			reuse = false
		}
		t.Stop()
	}
	// stop reports false when the client went away: the deadline is set.
	if !x.stop() {
		reuse = false
	}
	if reuse {
		x.p.put(x.c)
		return
	}
	x.c.close()
}

// Read reads the response body.
func (x *Exchange) Read(p []byte) (int, error) {
	if x.eof {
		return 0, io.EOF
	}
	n, err := x.body.Read(p)
	if err == io.EOF {
		x.eof = true
	}
	return n, err
}

// CopyTo copies the response body to w through buf, calling flush (when
// not nil) after every write. A small body that came with the header is
// written from the read buffer.
func (x *Exchange) CopyTo(w io.Writer, flush func() error, buf []byte) error {
	if x.eof {
		return nil
	}
	br := x.c.br
	if x.clen > 0 && int64(br.Buffered()) >= x.clen {
		p, _ := br.Peek(int(x.clen))
		_, err := w.Write(p)
		br.Discard(int(x.clen))
		x.eof = true
		return err
	}
	for {
		n, rerr := x.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if flush != nil {
				if err := flush(); err != nil {
					return err
				}
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

// HasTrailers reports whether the body, read to its end, ended with
// trailer fields.
func (x *Exchange) HasTrailers() bool {
	cb, ok := x.body.(*chunkedBody)
	return ok && len(cb.end) > 0
}

// SetTrailers puts the body's trailer fields into h (the client's
// response header, once its header was sent): those announced under
// their names, the others with http.TrailerPrefix, the hop-by-hop and
// framing ones not at all.
func (x *Exchange) SetTrailers(h http.Header) {
	cb, ok := x.body.(*chunkedBody)
	if !ok {
		return
	}
	for k, vs := range cb.end {
		if HopByHop(k) {
			continue
		}
		if !containsString(x.trailers, k) {
			k = http.TrailerPrefix + k
		}
		h[k] = vs
	}
}

// Conn returns the backend connection of a 101 answer and what to read
// from it: the bytes the backend sent after its header come first.
func (x *Exchange) Conn() (net.Conn, io.Reader) { return x.c.nc, x.c.br }

// lengthBody is a body of n bytes.
type lengthBody struct {
	br *bufio.Reader
	n  int64
}

func (l *lengthBody) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.br.Read(p)
	l.n -= int64(n)
	if l.n == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// chunkedBody is a chunked body; its trailers are kept once it ends.
// It is read with net/http's chunked reader, or, once an answer relayed
// through a pipe took it (SpliceTo, before any Read), with raw, which
// knows where each chunk's data lies on the connection.
type chunkedBody struct {
	r       io.Reader
	br      *bufio.Reader
	end     http.Header // the trailers, once read
	raw     *rawChunks
	started bool // Read was called
}

func (c *chunkedBody) Read(p []byte) (int, error) {
	c.started = true
	var n int
	var err error
	if c.raw != nil {
		n, err = c.raw.Read(p)
	} else {
		n, err = c.r.Read(p)
	}
	if err == io.EOF {
		if terr := h1.ReadTrailer(c.br, maxResponseHeader, &c.end); terr != nil {
			return n, terr
		}
	}
	return n, err
}
