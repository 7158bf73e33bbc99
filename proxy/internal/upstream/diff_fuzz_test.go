package upstream

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"reflect"
	"strings"
	"testing"

	"github.com/piku/piku/proxy/internal/h1"
)

// The differential fuzzers hold piku's HTTP/1.1 parsers to net/http's on
// the same bytes: the same accept or refuse, the same method, target,
// fields and body bytes. Where piku differs on purpose, the difference is
// named in allowedResponseDiff with the RFC text that allows it (and in
// docs/PROXY.md).

// parsedResponse is what a parser made of a backend's response, as it is
// forwarded: without the hop-by-hop fields.
type parsedResponse struct {
	Status          int
	Header, Trailer http.Header
	Body            string
}

// stdResponse reads one response with http.ReadResponse and drops the
// fields a proxy does not forward (httputil.ReverseProxy's rules).
func stdResponse(data, method string) (*parsedResponse, error) {
	res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(data)), &http.Request{Method: method})
	if err != nil {
		return nil, err
	}
	p := &parsedResponse{Status: res.StatusCode}
	if res.StatusCode < 200 && res.StatusCode != http.StatusSwitchingProtocols {
		return p, nil
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	h := res.Header
	// ReadResponse drops a Connection field that says close: the fields
	// are read again for the names it lists.
	tp := textproto.NewReader(bufio.NewReader(strings.NewReader(data)))
	if _, err := tp.ReadLine(); err != nil {
		return nil, err
	}
	raw, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, err
	}
	for _, v := range raw["Connection"] {
		for _, k := range strings.Split(v, ",") {
			if k = textproto.TrimString(k); k != "" {
				delete(h, textproto.CanonicalMIMEHeaderKey(k))
			}
		}
	}
	for _, k := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		delete(h, k)
	}
	if res.StatusCode == http.StatusNoContent {
		// RFC 9110 8.6: "A server MUST NOT send a Content-Length header
		// field in any response with a status code of 1xx ... or 204";
		// piku does not pass one on.
		delete(h, "Content-Length")
	}
	for k, v := range res.Trailer {
		if v == nil || HopByHop(k) {
			delete(res.Trailer, k) // announced and never sent, or not forwarded
		}
	}
	p.Header, p.Trailer, p.Body = h, res.Trailer, string(b)
	return p, nil
}

// pikuResponse reads one response as the upstream client does.
func pikuResponse(data, method string) (*parsedResponse, error) {
	br := bufio.NewReader(strings.NewReader(data))
	head, err := h1.ReadSection(br, maxResponseHeader)
	if err != nil {
		return nil, err
	}
	x := &Exchange{req: &Request{R: &http.Request{Method: method}, Header: http.Header{}}}
	if err := x.parseHead(head); err != nil {
		return nil, err
	}
	p := &parsedResponse{Status: x.status}
	if x.status < 200 && x.status != http.StatusSwitchingProtocols {
		return p, nil
	}
	h := x.req.Header
	delete(h, "Trailer") // announced to the client: compared as values
	var body io.Reader
	var cb *chunkedBody
	switch {
	case x.status == http.StatusSwitchingProtocols, x.noBody:
		body = strings.NewReader("")
	case x.chunked:
		cb = &chunkedBody{r: httputil.NewChunkedReader(br), br: br}
		body = cb
	case x.clen >= 0:
		body = &lengthBody{br: br, n: x.clen}
	default:
		body = br
	}
	if x.status == http.StatusSwitchingProtocols {
		delete(h, "Upgrade")
		delete(h, "Connection")
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	p.Header, p.Body = h, string(b)
	if cb != nil && len(cb.end) > 0 {
		// What forward passes on: every trailer but the hop-by-hop ones,
		// announced or not.
		p.Trailer = http.Header{}
		for k, v := range cb.end {
			if !HopByHop(k) {
				p.Trailer[k] = v
			}
		}
	}
	return p, nil
}

// allowedResponseDiff names the difference piku keeps on purpose for a
// response that piku refuses and net/http takes, or "".
func allowedResponseDiff(data string) string {
	line, _, _ := strings.Cut(data, "\n")
	proto, status, _ := strings.Cut(strings.TrimSuffix(line, "\r"), " ")
	if !strings.HasPrefix(proto, "HTTP/1.") {
		return "piku speaks HTTP/1.x to backends: another version in a response is refused (RFC 9112 2.3: the major version is 1)"
	}
	if code, _, _ := strings.Cut(status, " "); len(code) != 3 || code < "100" || strings.Trim(code, "0123456789") != "" {
		return `RFC 9110 15: "The status code of a response is a three-digit integer code"; a signed one, or one below 100, is refused`
	}
	head, _, _ := strings.Cut(data, "\n\n")
	head, _, _ = strings.Cut(head, "\r\n\r\n")
	if tail := data[len(head):]; strings.Contains(strings.ReplaceAll(tail, "\r\n", ""), "\n") {
		return `RFC 9112 2.2: a recipient "MAY recognize a single LF as a line terminator": piku does not in a trailer section, as in a client's`
	}
	for _, l := range strings.Split(head, "\n")[1:] {
		if l != "" && (l[0] == ' ' || l[0] == '\t') {
			return `RFC 9112 5.2: a proxy that receives an obs-fold in a response "MUST either discard the message and replace it with a 502 (Bad Gateway) response ... or replace each received obs-fold"; piku answers 502`
		}
		name, _, ok := strings.Cut(strings.TrimSuffix(l, "\r"), ":")
		if ok && !h1.ValidToken(name) {
			return `RFC 9110 5.1: field-name = token; a name that is none (with a space) is refused (net/http's textproto takes it, for compatibility)`
		}
		if ok && proto == "HTTP/1.0" && strings.EqualFold(name, "Transfer-Encoding") {
			return `RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding: "MUST treat the message as if the framing is faulty"; refused (net/http reads until close)`
		}
	}
	return ""
}

// FuzzUpstreamResponseDiff sends the same bytes to http.ReadResponse and
// to the upstream client's response reader.
func FuzzUpstreamResponseDiff(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close, X-A\r\nX-A: 1\r\nX-B: 2\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n",
		"HTTP/1.0 200 OK\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\n\r\nuntil close",
		"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
	} {
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, data string, isHead bool) {
		method := http.MethodGet
		if isHead {
			method = http.MethodHead
		}
		got, gerr := pikuResponse(data, method)
		want, werr := stdResponse(data, method)
		if gerr != nil && werr == nil && allowedResponseDiff(data) != "" {
			return
		}
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("piku: %v, net/http: %v", gerr, werr)
		}
		if gerr != nil {
			return
		}
		for _, p := range []*parsedResponse{got, want} {
			if len(p.Header) == 0 {
				p.Header = nil
			}
			if len(p.Trailer) == 0 {
				p.Trailer = nil
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("piku read\n%+v\nnet/http read\n%+v", got, want)
		}
	})
}

// FuzzUpstreamHead parses arbitrary response headers from a backend: it
// never panics, and what reaches the client has no hop-by-hop field and
// no Content-Length beside chunking.
func FuzzUpstreamHead(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close, X-A\r\nX-A: 1\r\nX-B: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nTrailer: X-Sum\r\n\r\n",
		"HTTP/1.0 204 No Content\r\nKeep-Alive: 5\r\nConnection: keep-alive\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\n",
	} {
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, head string, isHead bool) {
		method := http.MethodGet
		if isHead {
			method = http.MethodHead
		}
		x := &Exchange{req: &Request{R: &http.Request{Method: method}, Header: http.Header{}}}
		if err := x.parseHead(head); err != nil || x.status < 200 {
			return
		}
		h := x.req.Header
		for _, k := range []string{"Transfer-Encoding", "Keep-Alive", "Proxy-Connection", "Te"} {
			if h[k] != nil {
				t.Fatalf("hop-by-hop %s reaches the client: %q", k, h)
			}
		}
		if x.status != http.StatusSwitchingProtocols && h["Connection"] != nil {
			t.Fatalf("Connection reaches the client: %q", h)
		}
		if x.chunked && (x.clen != -1 || h["Content-Length"] != nil) {
			t.Fatalf("chunked with a length: %d, %q", x.clen, h)
		}
	})
}
