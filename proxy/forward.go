package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/piku/piku/proxy/internal/h1"
)

// forward is the proxy's handler for what it does not answer itself: it
// sends r to a backend of its app (backend.go, upstream.go) and copies the
// answer to w. It does what httputil.ReverseProxy did for piku, without
// copying the request or the response header on the way: the request is
// written to the backend from r itself, and the backend's header fields
// are parsed into w.Header().
func (s *Server) forward(w http.ResponseWriter, r *http.Request, info *reqInfo) {
	out := &outgoing{r: r, info: info, header: w.Header(), w: w}
	if up := upgradeType(r.Header); up != "" {
		if !printable(up) {
			s.proxyError(w, r, info, fmt.Errorf("client tried to switch to invalid protocol %q", up))
			return
		}
		out.upgrade = up
	}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		if out.upgrade != "" {
			// The connection is the upgraded protocol's once the body
			// ends: where it ends is for the backend to guess (RFC
			// 9110 7.8 asks a server to read the body first; few do).
			info.err = errUpgradeBody
			page(w, http.StatusBadRequest)
			return
		}
		out.body = &sentBody{rc: r.Body, size: r.ContentLength}
		if readAhead(r) {
			if err := s.bufferBody(out.body, r); err != nil {
				page(w, http.StatusBadRequest) // the client's body failed
				return
			}
		}
	}
	x, err := s.send(out)
	if err != nil {
		if out.body != nil && out.body.failed.Load() && r.Context().Err() == nil {
			page(w, http.StatusBadRequest) // the client's body, not the backend, failed
			return
		}
		s.proxyError(w, r, info, err)
		return
	}
	defer x.b.done()
	if x.status == http.StatusSwitchingProtocols {
		s.switchProtocols(w, r, info, x)
		return
	}
	w.WriteHeader(x.status)
	if err := s.copyBody(w, x); err != nil {
		if endedPolitely(r) {
			// A drain ended the event stream (streams.go): its
			// answer ends as a whole one, so the client reconnects.
			x.keep = false
			x.finish()
			return
		}
		// The answer is cut short: all that can be done is to end the
		// client's connection (or stream), as ReverseProxy does.
		x.keep = false
		x.finish()
		panic(http.ErrAbortHandler)
	}
	if cb, ok := x.body.(*chunkedBody); ok && len(cb.end) > 0 {
		// Trailers need a chunked answer: a flush makes it one.
		_ = flushFunc(w)()
		h := w.Header()
		for k, vs := range cb.end {
			if hopByHop[k] {
				continue // framing and hop-by-hop fields: not in trailers either
			}
			if !containsString(x.trailers, k) {
				k = http.TrailerPrefix + k
			}
			h[k] = vs
		}
	}
	x.finish()
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
		return !expectsContinue(r)
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
//     backend closed the one it was sent on unanswered (upstream.go).
//
// A body that does not end there streams on, chunked, after what was
// read. A body the client asked "100 Continue" for is not read ahead: the
// backend is to decide first.
func (s *Server) bufferBody(b *sentBody, r *http.Request) error {
	buf := s.bufs.Get()
	defer s.bufs.Put(buf)
	buf = buf[:bufferAhead]
	n := 0
	for n < len(buf) {
		m, err := b.rc.Read(buf[n:])
		n += m
		if err == io.EOF {
			b.buf = append(make([]byte, 0, n), buf[:n]...)
			if len(r.Trailer) == 0 {
				b.size = int64(n)
			} // else trailers go only with a chunked body
			return nil
		}
		if err != nil {
			return err
		}
	}
	b.rc = readCloser{io.MultiReader(bytes.NewReader(bytes.Clone(buf[:n])), b.rc), b.rc}
	return nil
}

// readCloser is a Reader with the Closer of what it reads.
type readCloser struct {
	io.Reader
	io.Closer
}

// copyBody copies the response body of x to w. An answer of unknown
// length, or an event stream, is flushed after every read.
func (s *Server) copyBody(w http.ResponseWriter, x *exchange) error {
	if x.eof {
		return nil
	}
	br := x.c.br
	if x.clen > 0 && int64(br.Buffered()) >= x.clen {
		// Most small bodies came with the header: they are written from
		// the read buffer.
		p, _ := br.Peek(int(x.clen))
		_, err := w.Write(p)
		br.Discard(int(x.clen))
		x.eof = true
		return err
	}
	var flush func() error
	if x.clen < 0 || isEventStream(x.out.header) {
		flush = flushFunc(w)
	}
	buf := s.bufs.Get()
	defer s.bufs.Put(buf)
	for {
		n, rerr := x.read(buf)
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

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// switchProtocols completes a 101 answer (a WebSocket): it takes the
// client's connection over, sends it the backend's header and copies both
// ways until either side ends. The request's context ending (the client
// gone, the proxy shutting down) closes both connections.
func (s *Server) switchProtocols(w http.ResponseWriter, r *http.Request, info *reqInfo, x *exchange) {
	backend := x.c.nc
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
	go func() { errc <- pipe.toClient(x.c.br) }() // what the backend sent after its header comes first
	// One side done: a clean end (EOF) waits for the other, as
	// ReverseProxy does; an error ends both.
	if err := <-errc; err != nil {
		backend.Close()
		conn.Close()
	}
	<-errc
}
