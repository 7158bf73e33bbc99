package h1

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
)

// Framing is how a message's body is delimited (RFC 9112 §6): by the
// chunked transfer coding, by a Content-Length, or, with neither, by the
// kind of message (no body for a request, until close for a response).
type Framing struct {
	Chunked     bool
	Length      int64  // the Content-Length, -1 without one
	LengthField string // the Content-Length value as sent, trimmed
}

// FramingError is a message whose framing is refused, with the status a
// server answers it with.
type FramingError struct {
	Status int
	Msg    string
	Values []string // the fields at fault
}

func (e *FramingError) Error() string { return fmt.Sprintf("%s %q", e.Msg, e.Values) }

// Frame is the one framing decision, for requests and responses both, by
// net/http's rules against request smuggling: one Transfer-Encoding,
// "chunked" only; Content-Length fields that all agree, digits only. te
// is nil where the caller ignores the field (a request in HTTP/1.0). With
// refuseBoth (requests, as nginx does) a message with both fields is
// refused (RFC 9112 §6.1: "ought to be handled as an error"); without it
// (responses, as net/http's client does) Transfer-Encoding wins and
// Content-Length is still checked.
func Frame(te, clen []string, refuseBoth bool) (Framing, error) {
	f := Framing{Length: -1}
	if len(te) > 0 {
		if len(te) != 1 {
			return f, &FramingError{http.StatusNotImplemented, "too many transfer encodings", te}
		}
		if !strings.EqualFold(textproto.TrimString(te[0]), "chunked") {
			return f, &FramingError{http.StatusNotImplemented, "unsupported transfer encoding", te}
		}
		f.Chunked = true
	}
	if len(clen) == 0 {
		return f, nil
	}
	if f.Chunked && refuseBoth {
		return f, &FramingError{http.StatusBadRequest, "both Transfer-Encoding and Content-Length", clen}
	}
	first := textproto.TrimString(clen[0])
	for _, v := range clen[1:] {
		if textproto.TrimString(v) != first {
			return f, &FramingError{http.StatusBadRequest, "message cannot contain multiple Content-Length headers", clen}
		}
	}
	n, ok := ParseContentLength(first)
	if !ok {
		return f, &FramingError{http.StatusBadRequest, "bad Content-Length", clen}
	}
	f.Length, f.LengthField = n, first
	return f, nil
}
