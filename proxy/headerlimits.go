package proxy

import (
	"net/http"
)

const (
	// DefaultMaxHeaderBytes is Options.MaxHeaderBytes unless set: the
	// 32 KiB of nginx's large_client_header_buffers 4 8k (Node allows
	// 16 KiB, gunicorn 8 KiB a line).
	DefaultMaxHeaderBytes = 32 << 10
	// DefaultMaxHeaderFields is Options.MaxHeaderFields unless set:
	// gunicorn's limit_request_fields. Browsers send 10 to 20.
	DefaultMaxHeaderFields = 100
	// minHeaderLineBytes is the least a header line may take, nginx's
	// buffer size.
	minHeaderLineBytes = 8 << 10
)

// headerLineLimit is how long one line of a request's header section may
// be with a section limit of total: a quarter of it (nginx's four
// buffers), at least 8 KiB, at most total.
func headerLineLimit(total int) int {
	return min(total, max(minHeaderLineBytes, total/4))
}

// netHTTPMaxHeaderBytes is the http.Server.MaxHeaderBytes that bounds an
// HTTP/1.1 header section to total: net/http allows 4 KiB more than it is
// set to.
func netHTTPMaxHeaderBytes(total int) int {
	return max(1, total-4096)
}

// h2MaxHeaderBytes is the http.Server.MaxHeaderBytes of the HTTPS
// server: HTTP/2 takes it, plus 320, as its SETTINGS_MAX_HEADER_LIST_SIZE,
// which counts 32 bytes a field besides names and values (RFC 9113
// 6.5.2), so that a header within total bytes and maxFields fields gets
// through. HTTP/1.1 over TLS may then read a few KiB more than total,
// which headerLimits refuses.
func h2MaxHeaderBytes(total, maxFields int) int {
	return max(1, total+32*maxFields-320)
}

// headerLimits applies to requests that net/http's server read (HTTPS,
// HTTP/2, and plain HTTP with Options.NetHTTP1) the limits piku's own
// HTTP/1.1 server applies while it reads them: the size of the header
// section as HTTP/1.1 writes it, the count of fields and the length of
// each line.
func (s *Server) headerLimits(h http.Handler) http.Handler {
	total, maxFields, maxLine := s.o.MaxHeaderBytes, s.o.MaxHeaderFields, headerLineLimit(s.o.MaxHeaderBytes)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, msg := checkHeaderLimits(r, total, maxFields, maxLine); code != 0 {
			if r.ProtoMajor == 1 {
				w.Header().Set("Connection", "close")
			}
			http.Error(w, msg, code)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// checkHeaderLimits returns the status a request read by net/http gets
// for a header beyond the limits (0 if none) and why. Sizes are those of
// the HTTP/1.1 lines ("Name: value" and CRLF); the Host field counts as
// one, as it does on the wire.
func checkHeaderLimits(r *http.Request, total, maxFields, maxLine int) (int, string) {
	line := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 2
	if line > maxLine {
		return http.StatusRequestURITooLong, "414 Request-URI Too Long: request line too long"
	}
	size := line + 2 + len("Host: \r\n") + len(r.Host) + 2 // with the empty line
	fields := 1
	for k, vs := range r.Header {
		fields += len(vs)
		for _, v := range vs {
			n := len(k) + 2 + len(v)
			if n > maxLine {
				return http.StatusBadRequest, "400 Bad Request: header field line too long"
			}
			size += n + 2
		}
	}
	if fields > maxFields {
		return http.StatusRequestHeaderFieldsTooLarge, "431 Request Header Fields Too Large: too many header fields"
	}
	if size > total {
		return http.StatusRequestHeaderFieldsTooLarge, "431 Request Header Fields Too Large"
	}
	return 0, ""
}
