package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// forward is the proxy's handler for what it does not answer itself: it
// sends r to a backend of its app (backend.go, upstream.go) and copies the
// answer to w. It does what httputil.ReverseProxy did for piku, without
// copying the request or the response header on the way: the request is
// written to the backend from r itself, and the backend's header fields
// are parsed into w.Header().
func (s *Server) forward(w http.ResponseWriter, r *http.Request, info *reqInfo) {
	out := &outgoing{r: r, info: info, header: w.Header()}
	if up := upgradeType(r.Header); up != "" {
		if !printable(up) {
			s.proxyError(w, r, info, fmt.Errorf("client tried to switch to invalid protocol %q", up))
			return
		}
		out.upgrade = up
	}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		out.body = &sentBody{rc: r.Body}
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
			if !containsString(x.trailers, k) {
				k = http.TrailerPrefix + k
			}
			h[k] = vs
		}
	}
	x.finish()
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
	h := w.Header()
	up := ""
	if v := h["Upgrade"]; len(v) > 0 {
		up = v[0]
	}
	if !printable(up) {
		s.proxyError(w, r, info, fmt.Errorf("backend tried to switch to invalid protocol %q", up))
		return
	}
	if !strings.EqualFold(up, x.out.upgrade) {
		s.proxyError(w, r, info, fmt.Errorf("backend tried to switch protocol %q when %q was requested", up, x.out.upgrade))
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.proxyError(w, r, info, fmt.Errorf("switching protocols: %w", err))
		return
	}
	defer conn.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	brw.Write(appendHeader(nil, h))
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
	errc := make(chan error, 2)
	go func() {
		_, err := io.Copy(backend, fromClient)
		errc <- err
	}()
	go func() {
		_, err := io.Copy(conn, x.c.br) // what the backend sent after its header comes first
		errc <- err
	}()
	// One side done: a clean end (EOF) waits for the other, as
	// ReverseProxy does; an error ends both.
	if err := <-errc; err != nil {
		backend.Close()
		conn.Close()
	}
	<-errc
}
