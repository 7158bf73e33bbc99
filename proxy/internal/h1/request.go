package h1

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Error is a request the server answers with code, then closes the
// connection.
type h1Error struct {
	code int
	msg  string
}

func (e *h1Error) Error() string { return statusText(e.code) + ": " + e.msg }

func badRequest(msg string) error { return &h1Error{http.StatusBadRequest, msg} }

// readRequest reads the next request's header section and returns the
// request, and its body unless it has none.
func (c *h1Conn) readRequest() (*http.Request, *h1Body, error) {
	br := c.br
	if br.Buffered() == 0 {
		// A new connection has ReadHeaderTimeout for its first byte, as
		// with net/http; a kept-alive one the idle timeout.
		wait := c.s.idleTimeout
		if !c.served {
			wait = c.s.readHeaderTimeout
		}
		c.setReadDeadline(time.Now(), wait)
		if c.flushLater {
			// The last response goes out as the wait begins.
			if err := c.sendAndWait(); err != nil {
				return nil, nil, err
			}
		} else {
			c.state.Store(connIdle)
		}
		if c.served && (c.s.closing.Load() || c.s.noKeepAlive.Load()) {
			return nil, nil, http.ErrServerClosed
		}
		if _, err := br.Peek(1); err != nil {
			return nil, nil, err
		}
		if !c.state.CompareAndSwap(connIdle, connActive) {
			return nil, nil, http.ErrServerClosed
		}
	} else {
		if c.flushLater {
			// A request came with the last one (pipelined): the last
			// response goes out now.
			c.flushLater = false
			if err := c.bw.Flush(); err != nil {
				return nil, nil, err
			}
		}
		c.state.Store(connActive)
	}
	// The whole section, request line and fields, is bounded (as nginx's
	// large_client_header_buffers bound it), then each line and the count
	// of fields, before a header map is made.
	limit := c.s.maxHeaderBytes
	head, err := readSection(br, limit, true, func() {
		// The header did not come in one read: from now on the client
		// has ReadHeaderTimeout to send the rest.
		t := time.Now().Add(c.s.readHeaderTimeout)
		_ = c.nc.SetReadDeadline(t)
		c.deadline = t
	})
	if err == ErrHeaderTooLarge || err == nil && len(head) > limit {
		return nil, nil, &h1Error{http.StatusRequestHeaderFieldsTooLarge, ""}
	}
	if err != nil {
		return nil, nil, err
	}
	fields, err := c.s.checkLines(head)
	if err != nil {
		return nil, nil, err
	}
	return c.parseRequest(head, fields)
}

// checkLines applies the line and field-count limits to a request's header
// section, and returns how many field lines it has: a request line longer
// than the line limit gets 414, a field line 400 (both as nginx answers
// them), more fields than the count limit 431. Nothing is allocated, so a
// flood of tiny fields is refused at the cost of its bytes alone.
func (s *Server) checkLines(head string) (fields int, err error) {
	first := true
	for rest := head; rest != ""; {
		i := strings.IndexByte(rest, '\n')
		if i < 0 {
			i = len(rest)
		}
		line := len(strings.TrimSuffix(rest[:i], "\r"))
		if i < len(rest) {
			rest = rest[i+1:]
		} else {
			rest = ""
		}
		if line == 0 {
			if first {
				continue // empty lines before the request line (readSection skips them)
			}
			break
		}
		if s.maxLineBytes > 0 && line > s.maxLineBytes {
			if first {
				return 0, &h1Error{http.StatusRequestURITooLong, "request line too long"}
			}
			return 0, &h1Error{http.StatusBadRequest, "header field line too long"}
		}
		if !first {
			fields++
		}
		first = false
	}
	if s.maxFields > 0 && fields > s.maxFields {
		return fields, &h1Error{http.StatusRequestHeaderFieldsTooLarge, "too many header fields"}
	}
	return fields, nil
}

// headerEnd returns the length of the header section at the start of buf
// (up to and with its empty line), or -1 if buf does not hold all of it.
func headerEnd(buf []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(buf) && buf[i] == '\n' {
			return i + 1
		}
		if i+1 < len(buf) && buf[i] == '\r' && buf[i+1] == '\n' {
			return i + 2
		}
	}
}

// CutLine splits s after its first line, without the line's CRLF or LF.
func CutLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// parseRequest makes the request of a header section, checking it as
// net/http's server does.
func (c *h1Conn) parseRequest(head string, fields int) (*http.Request, *h1Body, error) {
	if BareLF(head) {
		// RFC 9112 2.2 lets a recipient take a bare LF for a line end;
		// like llhttp, piku does not: a field another parser would read
		// as part of the line before it must not frame the body here.
		return nil, nil, badRequest("line ended by a bare LF")
	}
	line, rest := CutLine(head)
	method, rest1, ok1 := strings.Cut(line, " ")
	uri, proto, ok2 := strings.Cut(rest1, " ")
	if !ok1 || !ok2 || uri == "" || !ValidToken(method) {
		return nil, nil, badRequest("malformed HTTP request")
	}
	if method == "PRI" && uri == "*" {
		// The HTTP/2 connection preface (RFC 9113 3.4) is no request.
		return nil, nil, badRequest("HTTP/2 preface on an HTTP/1.1 connection")
	}
	var major, minor int
	switch proto {
	case "HTTP/1.1":
		major, minor = 1, 1
	case "HTTP/1.0":
		major, minor = 1, 0
	default:
		var ok bool
		if major, minor, ok = http.ParseHTTPVersion(proto); !ok {
			return nil, nil, badRequest("malformed HTTP version")
		}
		if major != 1 {
			return nil, nil, &h1Error{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
		}
	}

	hb := newHeaderBuilder(nil, fields)
	if err := ForEachField(rest, hb.Add); err != nil {
		return nil, nil, err
	}
	h := hb.h

	req := &c.tmpl
	*req = http.Request{Method: method, Proto: proto, ProtoMajor: major, ProtoMinor: minor,
		Header: h, Body: http.NoBody, RemoteAddr: c.remote, RequestURI: uri}
	justAuthority := method == http.MethodConnect && !strings.HasPrefix(uri, "/")
	if justAuthority {
		uri = "http://" + uri
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, nil, badRequest("malformed request URI")
	}
	if justAuthority {
		u.Scheme = ""
	}
	req.URL = u

	hosts, haveHost := h["Host"]
	switch {
	case minor >= 1 && (!haveHost || len(hosts) == 0) && method != http.MethodConnect:
		return nil, nil, badRequest("missing required Host header")
	case len(hosts) > 1:
		return nil, nil, badRequest("too many Host headers")
	case len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]):
		return nil, nil, badRequest("malformed Host header")
	}
	req.Host = u.Host
	if req.Host == "" && len(hosts) == 1 {
		req.Host = hosts[0]
	}
	delete(h, "Host")

	conn := h["Connection"]
	if minor == 0 {
		req.Close = !httpguts.HeaderValuesContainsToken(conn, "keep-alive") || httpguts.HeaderValuesContainsToken(conn, "close")
	} else {
		req.Close = httpguts.HeaderValuesContainsToken(conn, "close")
	}

	// The body's framing, by net/http's rules against request smuggling:
	// one Transfer-Encoding, "chunked" only, which wins over Content-Length;
	// Content-Length fields that all agree.
	te, ok := h["Transfer-Encoding"]
	if ok {
		delete(h, "Transfer-Encoding")
		if minor == 0 {
			// Ignored for the framing, as net/http does, but the
			// framing is faulty: the connection ends with this
			// request (RFC 9112 6.1).
			req.Close = true
			te = nil
		}
	}
	f, err := Frame(te, h["Content-Length"], true)
	if err != nil {
		fe := err.(*FramingError)
		return nil, nil, &h1Error{fe.Status, fe.Msg}
	}
	chunked, clen := f.Chunked, int64(0)
	if f.Length >= 0 {
		clen = f.Length
		h["Content-Length"] = []string{f.LengthField}
	}
	if chunked {
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
		if tr, ok := h["Trailer"]; ok {
			delete(h, "Trailer")
			var bad bool
			for _, v := range tr {
				for _, k := range strings.Split(v, ",") {
					k = textproto.TrimString(k)
					if k == "" {
						continue
					}
					k = textproto.CanonicalMIMEHeaderKey(k)
					switch k {
					case "Transfer-Encoding", "Trailer", "Content-Length":
						bad = true
					}
					if req.Trailer == nil {
						req.Trailer = http.Header{}
					}
					req.Trailer[k] = nil
				}
			}
			if bad {
				return nil, nil, badRequest("bad trailer key")
			}
		}
	} else {
		req.ContentLength = clen
	}

	var body *h1Body
	if chunked || clen > 0 {
		body = &h1Body{c: c, remaining: clen}
		if chunked {
			body.chunked = httputil.NewChunkedReader(c.br)
		}
		// A body may take as long as it takes (as with net/http without a
		// ReadTimeout).
		c.setReadDeadline(time.Time{}, 0)
	}
	if exp, ok := h["Expect"]; ok && len(exp) > 0 {
		if httpguts.HeaderValuesContainsToken(exp, "100-continue") {
			if minor >= 1 && body != nil {
				body.expect = true
				c.canContinue.Store(true)
			}
		} else if exp[0] != "" {
			return nil, nil, &h1Error{http.StatusExpectationFailed, ""}
		}
	}
	return req, body, nil
}

// ParseFields parses header fields, one a line up to an empty one, into a
// header map (into h when it is not nil, as for trailers).
func ParseFields(s string, h http.Header) (http.Header, error) {
	hb := NewHeaderBuilder(h, s)
	err := ForEachField(s, hb.Add)
	return hb.h, err
}

// HeaderBuilder adds the fields of a header section to a header map, the
// first value of each field from one array made for the section: most
// fields appear once.
type HeaderBuilder struct {
	h    http.Header
	vals []string
}

// NewHeaderBuilder returns a builder adding to h (a new map when h is
// nil) the fields of section s.
func NewHeaderBuilder(h http.Header, s string) *HeaderBuilder {
	return newHeaderBuilder(h, strings.Count(s, "\n")+1) // a field a line; the last may lack its line end
}

// newHeaderBuilder returns a builder adding n fields to h (a new map when
// h is nil).
func newHeaderBuilder(h http.Header, n int) *HeaderBuilder {
	if h == nil {
		h = make(http.Header, n)
	}
	return &HeaderBuilder{h: h, vals: make([]string, 0, n)}
}

// Add adds the field k: v.
func (b *HeaderBuilder) Add(k, v string) {
	if old, ok := b.h[k]; ok {
		b.h[k] = append(old, v)
		return
	}
	i := len(b.vals)
	b.vals = append(b.vals, v)
	b.h[k] = b.vals[i : i+1 : i+1]
}

// ForEachField calls fn with the canonical name and the value of each
// header field in s, one a line up to an empty one, checking each as
// net/http does (no line folding, a token for a name, no control
// character in a value).
func ForEachField(s string, fn func(k, v string)) error {
	for s != "" {
		var line string
		line, s = CutLine(s)
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return badRequest("obsolete line folding")
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return badRequest("malformed MIME header line")
		}
		name := line[:colon]
		if !ValidToken(name) {
			return badRequest("invalid header field name")
		}
		v := trimOWS(line[colon+1:])
		if !validFieldValue(v) {
			return badRequest("invalid header field value")
		}
		fn(canonicalKey(name), v)
	}
	return nil
}

// trimOWS trims the optional white space (spaces and tabs, RFC 9110 5.6.3)
// around a field value; a CR is no white space, and is refused after.
func trimOWS(v string) string {
	for v != "" && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for v != "" && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// BareLF reports whether a header section has a line ended by LF alone.
func BareLF(head string) bool {
	for i := 0; i < len(head); {
		j := strings.IndexByte(head[i:], '\n')
		if j < 0 {
			return false
		}
		if i+j == 0 || head[i+j-1] != '\r' {
			return true
		}
		i += j + 1
	}
	return false
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey, without an allocation
// for a name in canonical form already (as most clients send them).
func canonicalKey(name string) string {
	upper := true
	for i := 0; i < len(name); i++ {
		b := name[i]
		if upper && 'a' <= b && b <= 'z' || !upper && 'A' <= b && b <= 'Z' {
			return textproto.CanonicalMIMEHeaderKey(name)
		}
		upper = b == '-'
	}
	return name
}

// ValidToken reports whether s is a token (RFC 9110 §5.6.2), as a method
// and a field name must be.
func ValidToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !httpguts.IsTokenRune(rune(s[i])) {
			return false
		}
	}
	return true
}

// validFieldValue reports whether v has no control character but tab.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// ParseContentLength parses a Content-Length value: digits only.
func ParseContentLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// h1Body is a request body on a client connection. It may be read on
// another goroutine than the handler's (the upstream client writes it to
// the backend from one of its own).
type h1Body struct {
	c         *h1Conn
	req       *http.Request // its Trailer gets the trailers of a chunked body
	mu        sync.Mutex
	remaining int64     // bytes left, without chunking
	chunked   io.Reader // nil without chunking
	expect    bool      // "100 Continue" is still to be asked for
	eof       bool
	closed    bool // by the handler
	err       error
}

var errBodyReadAfterClose = errors.New("http: invalid Read on closed Body")

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errBodyReadAfterClose
	}
	return b.read(p)
}

// Close stops the handler's reads; the server reads what is left, to keep
// the connection.
func (b *h1Body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

func (b *h1Body) read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.expect {
		b.expect = false
		b.c.writeContinue()
	}
	var n int
	var err error
	if b.chunked != nil {
		n, err = b.chunked.Read(p)
		if err == io.EOF {
			if err = b.readTrailer(); err == nil {
				err = io.EOF
			}
		}
	} else {
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err = b.c.br.Read(p)
		b.remaining -= int64(n)
		if b.remaining == 0 {
			err = io.EOF
		} else if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}
	if err == io.EOF {
		b.eof = true
		b.c.bodyDone()
	} else if err != nil {
		b.err = err
	}
	return n, err
}

// Arrived reports whether the rest of a body of known length came from
// the client already (it is in the connection's read buffer), so that
// reading it waits on nothing.
func (b *h1Body) Arrived() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.chunked == nil && !b.expect && !b.closed && b.err == nil && int64(b.c.br.Buffered()) >= b.remaining
}

// readTrailer reads the trailer section after a chunked body's last chunk
// into the request's Trailer.
func (b *h1Body) readTrailer() error {
	switch err := readTrailer(b.c.br, b.c.s.maxHeaderBytes, b.c.s.maxFields, &b.req.Trailer); err {
	case ErrHeaderTooLarge:
		return badRequest("trailer too large")
	case ErrTooManyFields:
		return badRequest("too many trailer fields")
	case ErrTrailerBareLF:
		return badRequest("trailer line ended by a bare LF")
	default:
		return err
	}
}

// finish ends the body after the handler returned, reading up to
// maxDiscard bytes the handler left, and reports whether the connection
// can take another request.
func (b *h1Body) finish() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.eof {
		return true
	}
	if b.err != nil || b.expect {
		// Broken, or the client was never told to send it: it may or may
		// not come.
		return false
	}
	buf := make([]byte, connBufSize)
	for n := 0; n < maxDiscard; {
		k, err := b.read(buf)
		n += k
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}
