package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/piku/piku/proxy/internal/h1"
	"github.com/piku/piku/proxy/internal/upstream"
)

// forward is the proxy's handler for what it does not answer itself: it
// sends r to a backend of its app (backend.go, package upstream) and
// copies the answer to w. It does what httputil.ReverseProxy did for
// piku, without copying the request or the response header on the way:
// the request is written to the backend from r itself, and the backend's
// header fields are parsed into w.Header().
func (s *Server) forward(w http.ResponseWriter, r *http.Request, info *reqInfo) {
	out := &upstream.Request{R: r, Fields: info, Header: w.Header(), W: w, Forwarding: upstream.Forwarding{
		Client: info.client, Peer: info.peer, Secure: info.secure, Port: info.port, Start: info.start,
	}}
	if up := upgradeType(r.Header); up != "" {
		if !upstream.Printable(up) {
			s.proxyError(w, r, info, fmt.Errorf("client tried to switch to invalid protocol %q", up))
			return
		}
		out.Upgrade = up
	}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		if out.Upgrade != "" {
			// The connection is the upgraded protocol's once the body
			// ends: where it ends is for the backend to guess (RFC
			// 9110 7.8 asks a server to read the body first; few do).
			info.err = errUpgradeBody
			page(w, http.StatusBadRequest)
			return
		}
		out.Body = &upstream.Body{RC: r.Body, Size: r.ContentLength}
		if limit := info.route.MaxBodySize; limit > 0 && r.ContentLength > limit {
			tooLarge(w, info, limit)
			return
		}
		switch {
		case !info.route.StreamRequests:
			sp, ok := s.spoolRequest(w, r, info, out.Body)
			if !ok {
				return
			}
			defer sp.close()
		case readAhead(r):
			if err := s.bufferBody(out.Body, r); err != nil {
				page(w, http.StatusBadRequest) // the client's body failed
				return
			}
		}
	}
	x, b, err := s.send(out, info)
	if err != nil {
		if out.Body != nil && out.Body.Failed() && r.Context().Err() == nil {
			page(w, http.StatusBadRequest) // the client's body, not the backend, failed
			return
		}
		s.proxyError(w, r, info, err)
		return
	}
	defer b.done()
	if x.Status() == http.StatusSwitchingProtocols {
		s.switchProtocols(w, r, info, x)
		return
	}
	left := x.BodyLeft()
	if left {
		// The backend answered before it had the whole upload and will
		// not read the rest: the client's connection ends after the
		// answer (as net/http's server ends it when a handler did not
		// read the body), and the answer says so (HTTP/2 ends only the
		// stream).
		if r.ProtoMajor == 1 {
			w.Header()["Connection"] = []string{"close"}
		}
	}
	buffer := buffered(x.Whole(), w.Header(), info.route)
	w.WriteHeader(x.Status())
	err = s.copyBody(w, x, buffer)
	if left {
		abandonBody(w)
	}
	if err != nil {
		if endedPolitely(r) {
			// A drain ended the event stream (streams.go): its
			// answer ends as a whole one, so the client reconnects.
			x.Abort()
			return
		}
		// The answer is cut short: all that can be done is to end the
		// client's connection (or stream), as ReverseProxy does.
		x.Abort()
		panic(http.ErrAbortHandler)
	}
	if x.HasTrailers() {
		// Trailers need a chunked answer: a flush makes it one.
		_ = flushFunc(w)()
		x.SetTrailers(w.Header())
	}
	x.Finish()
}

// abandonBody ends the reading of a request body the backend will not
// read (Exchange.BodyLeft), once the answer was sent: the body writer,
// blocked on the client that is still sending, is woken by a read
// deadline in the past, and waited for by Exchange.Finish, so that
// nothing reads the client's connection after the request. Where the
// server cannot set one (HTTP/2), the stream's end wakes it.
func abandonBody(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(aLongTimeAgo)
}

// aLongTimeAgo is a deadline in the past: it makes a blocked read return.
var aLongTimeAgo = time.Unix(1, 0)

// Forward reports whether the client's field named k goes to the backend
// (upstream.FieldFilter): not one a client must not say (headers.go),
// without an underscore unless the app allows those, and not
// CF-Connecting-IP from a client that is not Cloudflare.
func (info *reqInfo) Forward(k string, trailer bool) bool {
	if isSpoofable(k) || (!info.route.UnderscoresInHeaders && strings.IndexByte(k, '_') >= 0) {
		return false
	}
	return trailer || k != "Cf-Connecting-Ip" || info.client != info.peer
}

// errUpgradeBody refuses a request that asks to switch protocols and
// declares a body.
var errUpgradeBody = errors.New("upgrade request with a body")

// bufferAhead is the largest request body read whole before it is sent.
const bufferAhead = 32 << 10

// readAhead reports whether r's body is read before it is sent
// (bufferBody): a chunked one unless "100 Continue" was asked for, and one
// of known length when it fits and came whole already, since the
// request's head goes to the backend before a body still to come.
func readAhead(r *http.Request) bool {
	switch {
	case r.ContentLength < 0:
		return !upstream.ExpectsContinue(r)
	case r.ContentLength <= bufferAhead:
		b, ok := r.Body.(interface{ Arrived() bool })
		return ok && b.Arrived()
	}
	return false
}

// bufferBody reads a request body ahead (readAhead), up to bufferAhead
// bytes, as nginx reads every body before it sends it:
//   - a chunked body that ends within it goes to the backend with a
//     Content-Length, since many simple servers (Python's http.server,
//     most embedded ones) frame a request by Content-Length only, and
//     would read the chunk lines as the next request;
//   - a body read whole can be sent again on a new connection when the
//     backend closed the one it was sent on unanswered (package upstream).
//
// A body that does not end there streams on, chunked, after what was
// read. A body the client asked "100 Continue" for is not read ahead: the
// backend is to decide first.
func (s *Server) bufferBody(b *upstream.Body, r *http.Request) error {
	buf := s.bufs.Get()
	defer s.bufs.Put(buf)
	buf = buf[:bufferAhead]
	n := 0
	for n < len(buf) {
		m, err := b.RC.Read(buf[n:])
		n += m
		if err == io.EOF {
			b.Buf = append(make([]byte, 0, n), buf[:n]...)
			if len(r.Trailer) == 0 {
				b.Size = int64(n)
			} // else trailers go only with a chunked body
			return nil
		}
		if err != nil {
			return err
		}
	}
	b.RC = readCloser{io.MultiReader(bytes.NewReader(bytes.Clone(buf[:n])), b.RC), b.RC}
	return nil
}

// readCloser is a Reader with the Closer of what it reads.
type readCloser struct {
	io.Reader
	io.Closer
}

// copyBody copies the response body of x to w, read ahead of the client
// when buffer is set (spool.go), or relays it through a pipe where it can
// (splice.go). An answer of unknown length, or an event stream, is
// flushed after every read (when buffered: whenever the client has
// caught up); an event stream is never relayed through a pipe.
func (s *Server) copyBody(w http.ResponseWriter, x *upstream.Exchange, buffer bool) error {
	var flush func() error
	if x.Length() < 0 || isEventStream(w.Header()) {
		flush = flushFunc(w)
	}
	if !isEventStream(w.Header()) {
		if ok, err := s.copySpliced(w, x, buffer, flush); ok {
			return err
		}
	}
	if buffer {
		return s.copyBuffered(w, x, flush, nil)
	}
	buf := s.bufs.Get()
	defer s.bufs.Put(buf)
	return x.CopyTo(w, flush, buf)
}

// isEventStream reports whether h says text/event-stream.
func isEventStream(h http.Header) bool {
	ct := h["Content-Type"]
	if len(ct) == 0 {
		return false
	}
	v := strings.TrimSpace(ct[0])
	return len(v) >= 17 && strings.EqualFold(v[:17], "text/event-stream")
}

// flushFunc returns w's flush, looking through wrappers that have an
// Unwrap method (as http.ResponseController does); a no-op without one.
func flushFunc(w http.ResponseWriter) func() error {
	for {
		switch f := w.(type) {
		case interface{ FlushError() error }:
			return f.FlushError
		case http.Flusher:
			return func() error { f.Flush(); return nil }
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return func() error { return nil }
		}
		w = u.Unwrap()
	}
}

// upgradeType is the protocol a request or response asks to switch to, or "".
func upgradeType(h http.Header) string {
	if !httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		return ""
	}
	if v := h["Upgrade"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// switchProtocols completes a 101 answer (a WebSocket): it takes the
// client's connection over, sends it the backend's header and copies both
// ways until either side ends. The request's context ending (the client
// gone, the proxy shutting down) closes both connections.
func (s *Server) switchProtocols(w http.ResponseWriter, r *http.Request, info *reqInfo, x *upstream.Exchange) {
	backend, fromBackend := x.Conn()
	defer backend.Close()
	h := w.Header() // the backend's fields, its Upgrade checked (checkSwitch)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.proxyError(w, r, info, fmt.Errorf("switching protocols: %w", err))
		return
	}
	defer conn.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	brw.Write(h1.AppendHeader(nil, h))
	brw.WriteString("Connection: Upgrade\r\n\r\n")
	if err := brw.Flush(); err != nil {
		return
	}
	var fromClient io.Reader = conn
	if n := brw.Reader.Buffered(); n > 0 {
		p, _ := brw.Reader.Peek(n)
		fromClient = io.MultiReader(bytes.NewReader(bytes.Clone(p)), conn)
	}
	stop := context.AfterFunc(r.Context(), func() { backend.Close(); conn.Close() })
	defer stop()
	pipe := s.switchedPipe(r, conn, backend) // a drain closes a WebSocket politely (wsclose.go)
	errc := make(chan error, 2)
	go func() { errc <- pipe.toBackend(fromClient) }()
	go func() { errc <- pipe.toClient(fromBackend) }() // what the backend sent after its header comes first
	// One side done: a clean end (EOF) waits for the other, as
	// ReverseProxy does; an error ends both.
	if err := <-errc; err != nil {
		backend.Close()
		conn.Close()
	}
	<-errc
}
