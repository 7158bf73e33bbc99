package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The differential fuzzers hold piku's HTTP/1.1 parsers to net/http's on
// the same bytes: the same accept or refuse, the same method, target,
// fields and body bytes. Where piku differs on purpose, the difference is
// named in allowedRequestDiff with the RFC text that allows it (and in
// docs/PROXY.md).

// parsedRequest is what a parser made of a request.
type parsedRequest struct {
	Method, URI, Host string
	Header, Trailer   http.Header
	Body              string
}

// fuzzHeaderLimit is the fuzzed server's MaxHeaderBytes.
const fuzzHeaderLimit = 4 << 10

// stdRequest reads one request as net/http's server does: http.ReadRequest
// and the checks server.go adds before the handler runs.
func stdRequest(data string) (*parsedRequest, error) {
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(data)))
	if err != nil {
		return nil, err
	}
	if req.ProtoMajor != 1 {
		return nil, errors.New("unsupported protocol version")
	}
	// ReadRequest drops the Host field that net/http's server checks:
	// the fields are read again, as its reader reads them.
	tp := textproto.NewReader(bufio.NewReader(strings.NewReader(data)))
	if _, err := tp.ReadLine(); err != nil {
		return nil, err
	}
	mh, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, err
	}
	hosts, haveHost := mh["Host"]
	if req.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && req.Method != http.MethodConnect {
		return nil, errors.New("missing required Host header")
	}
	if len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]) {
		return nil, errors.New("malformed Host header")
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, errors.New("invalid header name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, errors.New("invalid header value")
			}
		}
	}
	if exp := req.Header.Get("Expect"); exp != "" && !httpguts.HeaderValuesContainsToken(req.Header["Expect"], "100-continue") {
		return nil, errors.New("expectation failed")
	}
	delete(req.Header, "Host")
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	return &parsedRequest{req.Method, req.RequestURI, req.Host, req.Header, req.Trailer, string(b)}, nil
}

// pikuRequest reads one request with piku's HTTP/1.1 server.
func pikuRequest(data string) (*parsedRequest, error) {
	o := Config{ReadHeaderTimeout: time.Second, IdleTimeout: time.Second, MaxHeaderBytes: fuzzHeaderLimit}
	s := NewServer(http.NotFoundHandler(), o, context.Background(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c := s.newConn(&fuzzConn{r: strings.NewReader(data)})
	req, body, err := c.readRequest()
	if err != nil {
		return nil, err
	}
	var b []byte
	if body != nil {
		body.req = req
		body.expect = false // the client is told to go on
		if b, err = io.ReadAll(body); err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
	}
	return &parsedRequest{req.Method, req.RequestURI, req.Host, req.Header, req.Trailer, string(b)}, nil
}

// allowedRequestDiff names the difference piku keeps on purpose for a
// request that piku refuses and net/http takes, or "".
func allowedRequestDiff(data string) string {
	head, _, _ := strings.Cut(data, "\r\n\r\n")
	if len(head)+len("\r\n\r\n") > fuzzHeaderLimit { // the limit counts the whole section
		return "MaxHeaderBytes: net/http's ReadRequest has no limit of its own"
	}
	if BareLF(head+"\r\n") || strings.Contains(strings.ReplaceAll(data, "\r\n", ""), "\n") {
		return `RFC 9112 2.2: a recipient "MAY recognize a single LF as a line terminator": piku does not, in header and trailer sections (as llhttp)`
	}
	lines := strings.Split(head, "\r\n")
	cl, te := false, false
	for i, l := range lines {
		if i > 0 && l != "" && (l[0] == ' ' || l[0] == '\t') {
			return `RFC 9112 5.2: a server "MUST either reject the message by sending a 400 ... or replace each received obs-fold": piku rejects`
		}
		name, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(name) {
		case "content-length":
			cl = true
		case "transfer-encoding":
			te = true
		}
	}
	if cl && te {
		return `RFC 9112 6.1: a message with both Transfer-Encoding and Content-Length "ought to be handled as an error": piku refuses (as nginx)`
	}
	if method, rest, ok := strings.Cut(lines[0], " "); ok && method != "" && strings.HasPrefix(rest, " ") {
		return "RFC 9112 3: request-line = method SP request-target SP HTTP-version; an empty request-target is none (net/http takes it for CONNECT)"
	}
	if strings.HasPrefix(data, "PRI * ") {
		return "RFC 9113 3.4: the HTTP/2 connection preface is no HTTP/1.1 request"
	}
	return ""
}

// trimEmptyLines drops the empty lines before a request line, which RFC
// 9112 2.2 asks a server to ignore ("SHOULD ignore at least one empty
// line (CRLF) received prior to the request-line"), piku does, and
// http.ReadRequest refuses.
func trimEmptyLines(data string) string {
	for {
		switch {
		case strings.HasPrefix(data, "\r\n"):
			data = data[2:]
		case strings.HasPrefix(data, "\n"):
			data = data[1:]
		default:
			return data
		}
	}
}

// FuzzH1RequestDiff sends the same bytes to net/http's request reader
// and piku's.
func FuzzH1RequestDiff(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /p?q HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n1\r\na\r\n0\r\nX: y\r\n\r\n",
		"GET http://a/b HTTP/1.1\r\nHost: c\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
		"\r\nGET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
		"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
		"GET / HTTP/1.0\r\nX: \t v \t\r\nX: w\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		got, gerr := pikuRequest(data)
		want, werr := stdRequest(trimEmptyLines(data))
		if gerr != nil && werr == nil && allowedRequestDiff(data) != "" {
			return
		}
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("piku: %v, net/http: %v", gerr, werr)
		}
		if gerr != nil {
			return
		}
		if len(got.Header) == 0 {
			got.Header = nil
		}
		if len(want.Header) == 0 {
			want.Header = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("piku read\n%+v\nnet/http read\n%+v", got, want)
		}
	})
}
