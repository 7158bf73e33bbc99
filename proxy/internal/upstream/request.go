package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/piku/piku/proxy/internal/h1"
)

// Request is one request as it is sent to a backend: the client's
// request, and what the proxy adds.
type Request struct {
	// R is the client's request; it is written from, never copied.
	R *http.Request
	// Fields says which of the client's header and trailer fields go to
	// the backend, besides the hop-by-hop and framing ones, which never
	// do.
	Fields FieldFilter
	// Forwarding is what the proxy says about the client.
	Forwarding Forwarding
	// Body is the request body; nil without one.
	Body *Body
	// Upgrade is the protocol the client asks to switch to, or "".
	Upgrade string
	// Header receives the response's header fields (the client's
	// response header); the fields set in it before are kept, and are
	// all it holds when no answer is forwarded.
	Header http.Header
	// W, when not nil, is the client's: "103 Early Hints" answers are
	// relayed to it.
	W http.ResponseWriter
}

// FieldFilter says whether a client's field goes to the backend.
type FieldFilter interface {
	// Forward reports whether the client's field named k (canonical) goes
	// to the backend, as a header field, or as a trailer field when
	// trailer is set.
	Forward(k string, trailer bool) bool
}

// Forwarding is what the proxy tells a backend about the client, in the
// X-Forwarded-* fields that piku's nginx set.
type Forwarding struct {
	Client string // the client's address: X-Forwarded-For, X-Real-Ip, X-Remote-Address
	Peer   string // the TCP peer, added to X-Forwarded-For when it is not Client
	Secure bool   // X-Forwarded-Proto: https
	Port   string // X-Forwarded-Port
	Start  time.Time
}

// Body is a request's body as the upstream client sends it: it tells
// whether any of it was read, and leaves closing it to the server, so
// that a retry can still send it. Each attempt to send it reads it
// through an attempt of its own (attempt); revoke takes it from an
// attempt that has not read it yet, so that it can go on a new connection
// whole. A body read whole beforehand (Buf) can be sent any number of
// times.
type Body struct {
	// RC is read for the body (when Buf is nil).
	RC io.ReadCloser
	// Size is the length sent as Content-Length, or -1 for chunked.
	Size int64
	// Buf is the whole body when it was read beforehand, else nil.
	Buf []byte

	mu     sync.Mutex
	gen    int // the attempt that may read RC
	sent   atomic.Bool
	eof    atomic.Bool // it was read to its end
	failed atomic.Bool // reading it failed: the client sent a broken body
}

// Sent reports whether any of the body was read to be sent.
func (b *Body) Sent() bool { return b.sent.Load() }

// Done reports whether the whole body was read from the client: nothing
// of it is left on the client's connection.
func (b *Body) Done() bool { return b.Buf != nil || b.eof.Load() }

// Failed reports whether reading the body failed: the client's fault,
// not the backend's.
func (b *Body) Failed() bool { return b.failed.Load() }

// errBodyRevoked ends an attempt that lost the request body to a retry.
var errBodyRevoked = errors.New("request body taken by a new attempt")

// attempt returns the reader of the body for a new attempt to send it.
func (b *Body) attempt() io.Reader {
	if b.Buf != nil {
		return bytes.NewReader(b.Buf)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return &bodyAttempt{b: b, gen: b.gen}
}

// revoke takes the body from the attempt that holds it and reports
// whether it may be sent again whole: it was read beforehand, or no byte
// of it was read yet.
func (b *Body) revoke() bool {
	if b.Buf != nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sent.Load() {
		return false
	}
	b.gen++
	return true
}

// bodyAttempt reads a Body for one attempt to send it.
type bodyAttempt struct {
	b       *Body
	gen     int
	claimed bool
}

func (a *bodyAttempt) Read(p []byte) (int, error) {
	b := a.b
	if !a.claimed {
		b.mu.Lock()
		if b.gen != a.gen {
			b.mu.Unlock()
			return 0, errBodyRevoked
		}
		b.sent.Store(true)
		b.mu.Unlock()
		a.claimed = true
	}
	n, err := b.RC.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	} else if err != nil {
		b.failed.Store(true)
	}
	return n, err
}

// ExpectsContinue reports whether r asks for "100 Continue" before its body.
func ExpectsContinue(r *http.Request) bool {
	for _, v := range r.Header["Expect"] {
		if strings.EqualFold(strings.TrimSpace(v), "100-continue") {
			return true
		}
	}
	return false
}

// writeHead writes req's request line and header section: the client's
// fields but the hop-by-hop ones and those req.Fields refuses, then the
// forwarding fields, like piku's nginx did.
func writeHead(w *bufio.Writer, req *Request, chunked bool) {
	r, fw := req.R, &req.Forwarding
	w.WriteString(r.Method)
	w.WriteByte(' ')
	w.WriteString(r.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(r.Host)
	w.WriteString("\r\n")
	var named []string // fields the Connection header names
	if conn := r.Header["Connection"]; len(conn) > 0 {
		for _, v := range conn {
			for _, name := range strings.Split(v, ",") {
				if name = textproto.TrimString(name); name != "" {
					named = append(named, textproto.CanonicalMIMEHeaderKey(name))
				}
			}
		}
	}
	for k, vs := range r.Header {
		if HopByHop(k) || !req.Fields.Forward(k, false) {
			continue
		}
		if len(named) > 0 && containsString(named, k) {
			continue
		}
		for _, v := range vs {
			writeField(w, k, v)
		}
	}
	if httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers") {
		w.WriteString("Te: trailers\r\n")
	}
	if req.Upgrade != "" {
		w.WriteString("Connection: Upgrade\r\nUpgrade: ")
		w.WriteString(req.Upgrade)
		w.WriteString("\r\n")
	}
	w.WriteString("X-Forwarded-For: ")
	w.WriteString(fw.Client)
	if fw.Client != fw.Peer {
		w.WriteString(", ")
		w.WriteString(fw.Peer)
	}
	w.WriteString("\r\nX-Real-Ip: ")
	w.WriteString(fw.Client)
	w.WriteString("\r\nX-Remote-Address: ")
	w.WriteString(fw.Client)
	if fw.Secure {
		w.WriteString("\r\nX-Forwarded-Proto: https")
	} else {
		w.WriteString("\r\nX-Forwarded-Proto: http")
	}
	w.WriteString("\r\nX-Forwarded-Host: ")
	w.WriteString(r.Host)
	w.WriteString("\r\nX-Forwarded-Port: ")
	w.WriteString(fw.Port)
	w.WriteString("\r\nX-Request-Start: t=")
	// Appended to the writer's own buffer: a local array would escape
	// through Write (one allocation a request).
	w.Write(strconv.AppendInt(w.AvailableBuffer(), fw.Start.UnixMicro(), 10))
	w.WriteString("\r\n")
	switch {
	case chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
		if len(r.Trailer) > 0 {
			names := make([]string, 0, len(r.Trailer))
			for k := range r.Trailer {
				if !HopByHop(k) && req.Fields.Forward(k, true) {
					names = append(names, k)
				}
			}
			if len(names) > 0 {
				writeField(w, "Trailer", strings.Join(names, ", "))
			}
		}
	case req.Body != nil && req.Body.Size > 0:
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(w.AvailableBuffer(), req.Body.Size, 10))
		w.WriteString("\r\n")
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	w.WriteString("\r\n")
}

// HopByHop reports whether the field named k (canonical) concerns one
// connection only (RFC 9110 7.6.1, and those httputil.ReverseProxy
// drops), or is a framing field the upstream client writes itself.
func HopByHop(k string) bool { return hopByHop[k] }

var hopByHop = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Host": true, "Content-Length": true,
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func writeField(w *bufio.Writer, k, v string) {
	w.WriteString(k)
	w.WriteString(": ")
	if strings.ContainsAny(v, "\r\n") {
		v = h1.HeaderNewlines.Replace(v)
	}
	w.WriteString(strings.TrimSpace(v))
	w.WriteString("\r\n")
}

// errBodyDropped ends the body writer of a request whose final answer came
// without "100 Continue": the body is not sent.
var errBodyDropped = errors.New("request body not sent: the backend answered without 100 Continue")

// writeBody writes req's body (and trailers) after the header, once
// proceed (when not nil) says so or expectContinueTimeout passed.
func writeBody(w *bufio.Writer, req *Request, body io.Reader, chunked bool, proceed <-chan bool) error {
	r, size := req.R, req.Body.Size
	if proceed != nil {
		t := time.NewTimer(expectContinueTimeout)
		select {
		case send := <-proceed:
			if !send {
				t.Stop()
				return errBodyDropped
			}
		case <-t.C:
		}
		t.Stop()
	}
	if !chunked {
		n, err := io.Copy(w, body)
		if err == nil && n != size {
			err = fmt.Errorf("request body was %d bytes, not the %d announced", n, size)
		}
		if err != nil {
			return err
		}
		return w.Flush()
	}
	// A chunk is sent as soon as it was read, so that a streaming upload
	// streams.
	cw := httputil.NewChunkedWriter(flushWriter{w})
	if _, err := io.Copy(cw, body); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return err
	}
	// The client's trailers arrived with the end of its body, in the
	// request's own map; they go by the rules of header fields.
	for k, vs := range r.Trailer {
		if HopByHop(k) || !req.Fields.Forward(k, true) {
			continue
		}
		for _, v := range vs {
			writeField(w, k, v)
		}
	}
	w.WriteString("\r\n")
	return w.Flush()
}

// flushWriter flushes after every write.
type flushWriter struct{ w *bufio.Writer }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.w.Flush()
	}
	return n, err
}
