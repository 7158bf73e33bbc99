package proxy

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/net/http/httpguts"

	"github.com/piku/piku/proxy/internal/h1"
)

// Compression of proxied responses follows what piku's nginx template
// asked of nginx (`gzip on; gzip_proxied any; gzip_comp_level 7;
// gzip_min_length 2048; gzip_vary on` with text, JSON, JavaScript, XML
// and SVG types): a response is compressed when
//
//   - the client accepts gzip or zstd (Accept-Encoding, q-values honoured),
//   - the request is not HEAD and the status is 200, 403 or 404 (nginx's
//     gzip filter skips every other status, so 204, 206 and 304 too),
//   - the app set no Content-Encoding, no Content-Range and no
//     `Cache-Control: no-transform`,
//   - the type is compressible (compressible) and the body is 2048 bytes
//     or more, or of unknown length (as nginx decides on Content-Length
//     alone).
//
// Event streams and other flushed answers stay streamed: every Flush
// flushes the encoder first, so what the app sent reaches the client as
// soon as it would have uncompressed.
const (
	// compressMin is nginx's gzip_min_length in piku's template.
	compressMin = 2048
	// gzipLevel is nginx's gzip_comp_level in piku's template.
	gzipLevel = 7
)

// encoding is a content coding the proxy can produce.
type encoding uint8

const (
	encIdentity encoding = iota
	encGzip
	encZstd
)

func (e encoding) String() string {
	switch e {
	case encGzip:
		return "gzip"
	case encZstd:
		return "zstd"
	}
	return "identity"
}

// negotiate picks the coding for a request's Accept-Encoding values: the
// one with the highest q-value, zstd on a tie (it costs less CPU than
// gzip at a better ratio: docs/PERFORMANCE.md); "*" stands for a coding
// not named; q=0 refuses one. encIdentity when neither is accepted.
func negotiate(values []string) encoding {
	qGzip, qZstd, qAny := -1.0, -1.0, -1.0
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			name = strings.TrimSpace(name)
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil || f < 0 || f > 1 {
						f = 0
					}
					q = f
				}
			}
			switch {
			case strings.EqualFold(name, "gzip"), strings.EqualFold(name, "x-gzip"):
				qGzip = max(qGzip, q)
			case strings.EqualFold(name, "zstd"):
				qZstd = max(qZstd, q)
			case name == "*":
				qAny = max(qAny, q)
			}
		}
	}
	if qGzip < 0 {
		qGzip = qAny
	}
	if qZstd < 0 {
		qZstd = qAny
	}
	switch {
	case qZstd > 0 && qZstd >= qGzip:
		return encZstd
	case qGzip > 0:
		return encGzip
	}
	return encIdentity
}

// compressible reports whether a response of type ctype is worth
// compressing: text, JSON, JavaScript, XML, SVG (and WebAssembly).
func compressible(ctype string) bool {
	ct, _, _ := strings.Cut(ctype, ";")
	ct = strings.ToLower(strings.TrimSpace(ct))
	return strings.HasPrefix(ct, "text/") || strings.HasSuffix(ct, "+xml") || strings.HasSuffix(ct, "+json") ||
		ct == "application/javascript" || ct == "application/x-javascript" || ct == "application/json" ||
		ct == "application/xml" || ct == "image/svg+xml" || ct == "application/wasm"
}

// compressWriter compresses a response on its way to the client when the
// rules above allow it; otherwise it passes it through untouched. It is
// used once, for one response.
type compressWriter struct {
	http.ResponseWriter
	enc     encoding // what the client accepts; encIdentity: only Vary is added
	decided bool
	zw      encoder // non-nil while compressing
	pools   *encoderPools
}

// encoder is what compressWriter needs of a gzip or zstd writer.
type encoder interface {
	io.Writer
	Flush() error
	Close() error
	Reset(io.Writer)
}

// encoderPools recycles encoders, whose state is tens of kilobytes (gzip)
// to a megabyte (zstd) and costly to build.
type encoderPools struct {
	gzip, zstd sync.Pool
}

func (p *encoderPools) get(e encoding, w io.Writer) encoder {
	var zw encoder
	switch e {
	case encGzip:
		if v, ok := p.gzip.Get().(*gzip.Writer); ok {
			zw = v
		} else {
			zw, _ = gzip.NewWriterLevel(w, gzipLevel)
		}
	case encZstd:
		if v, ok := p.zstd.Get().(*zstd.Encoder); ok {
			zw = v
		} else {
			zw, _ = zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20),
				zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithLowerEncoderMem(true))
		}
	}
	zw.Reset(w)
	return zw
}

func (p *encoderPools) put(zw encoder) {
	zw.Reset(io.Discard) // drop the reference to the response
	switch v := zw.(type) {
	case *gzip.Writer:
		p.gzip.Put(v)
	case *zstd.Encoder:
		p.zstd.Put(v)
	}
}

// compressing makes cw wrap w for r, which may get a compressed answer
// (not a HEAD request: the caller passes those by); cw.finish must be
// called once the handler has written the whole response.
func (s *Server) compressing(cw *compressWriter, w http.ResponseWriter, r *http.Request) {
	*cw = compressWriter{ResponseWriter: w, enc: negotiate(r.Header["Accept-Encoding"]), pools: &s.zpools}
}

// decide looks at the response header once, before it goes out.
func (w *compressWriter) decide(code int) {
	w.decided = true
	if code != http.StatusOK && code != http.StatusForbidden && code != http.StatusNotFound {
		return
	}
	h := w.Header()
	if len(h["Content-Encoding"]) > 0 || len(h["Content-Range"]) > 0 || !compressible(first(h["Content-Type"])) {
		return
	}
	if httpguts.HeaderValuesContainsToken(h["Cache-Control"], "no-transform") {
		return
	}
	if cl := first(h["Content-Length"]); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n < compressMin {
			return
		}
	}
	if !httpguts.HeaderValuesContainsToken(h["Vary"], "Accept-Encoding") && !httpguts.HeaderValuesContainsToken(h["Vary"], "*") {
		h.Add("Vary", "Accept-Encoding")
	}
	if w.enc == encIdentity {
		return
	}
	delete(h, "Content-Length")
	h["Content-Encoding"] = []string{w.enc.String()}
	if et := first(h["Etag"]); et != "" && !strings.HasPrefix(et, "W/") {
		h["Etag"] = []string{"W/" + et} // the bytes differ: a weak validator, as nginx makes it
	}
	w.zw = w.pools.get(w.enc, w.ResponseWriter)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// WriteHeader decides on a final status whether the body is compressed.
func (w *compressWriter) WriteHeader(code int) {
	if !w.decided && code >= 200 {
		w.decide(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write compresses p, or passes it on.
func (w *compressWriter) Write(p []byte) (int, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	if w.zw == nil {
		return w.ResponseWriter.Write(p)
	}
	if _, err := w.zw.Write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// FlushError sends what the encoder holds, then what the connection
// holds, so a flushed stream reaches the client as written.
func (w *compressWriter) FlushError() error {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	if w.zw != nil {
		if err := w.zw.Flush(); err != nil {
			return err
		}
	}
	return flushFunc(w.ResponseWriter)()
}

// Flush is FlushError for http.Flusher.
func (w *compressWriter) Flush() { _ = w.FlushError() }

// Unwrap lets http.ResponseController reach the connection (Hijack, for
// a 101 answer, which is never compressed).
func (w *compressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WriteRaw passes a body relayed through a pipe on (h1.RawWriter) when it
// is not compressed.
func (w *compressWriter) WriteRaw(n int64, send func(net.Conn) (int64, error)) (bool, int64, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	rw, ok := w.ResponseWriter.(h1.RawWriter)
	if w.zw != nil || !ok {
		return false, 0, nil
	}
	return rw.WriteRaw(n, send)
}

// finish ends the compressed stream and returns the encoder to its pool.
func (w *compressWriter) finish() {
	if w.zw == nil {
		return
	}
	w.zw.Close()
	w.pools.put(w.zw)
	w.zw = nil
}

var (
	_ http.Flusher = (*compressWriter)(nil)
	_ encoder      = (*gzip.Writer)(nil)
	_ encoder      = (*zstd.Encoder)(nil)
)
