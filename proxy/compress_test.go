package proxy

import (
	"bufio"
	"cmp"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func TestNegotiate(t *testing.T) {
	tests := []struct {
		accept []string
		want   encoding
	}{
		{nil, encIdentity},
		{[]string{""}, encIdentity},
		{[]string{"gzip"}, encGzip},
		{[]string{"x-gzip"}, encGzip},
		{[]string{"GZIP"}, encGzip},
		{[]string{"gzip, deflate, br, zstd"}, encZstd}, // a tie goes to zstd
		{[]string{"zstd;q=0.5, gzip"}, encGzip},
		{[]string{"gzip;q=0.5", "zstd;q=0.6"}, encZstd},
		{[]string{"gzip;q=0"}, encIdentity},
		{[]string{"gzip; q=0.000, zstd;q=0"}, encIdentity},
		{[]string{"*"}, encZstd},
		{[]string{"*;q=0.1, zstd;q=0"}, encGzip},
		{[]string{"gzip;q=0, *"}, encZstd},
		{[]string{"identity"}, encIdentity},
		{[]string{"br"}, encIdentity},
		{[]string{"gzip;q=x"}, encIdentity}, // an unreadable q-value refuses
		{[]string{"gzip;level=1;q=0.8"}, encGzip},
	}
	for _, tt := range tests {
		if got := negotiate(tt.accept); got != tt.want {
			t.Errorf("negotiate(%q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

// text is a compressible body of n bytes.
func text(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "<p>line %d of a page that compresses well</p>\n", i)
	}
	return b.String()[:n]
}

// decode undoes the Content-Encoding of a response body.
func decode(t *testing.T, enc, body string) string {
	t.Helper()
	var r io.Reader = strings.NewReader(body)
	switch enc {
	case "":
		return body
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unknown encoding %q", enc)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", enc, err)
	}
	return string(b)
}

func TestCompressRules(t *testing.T) {
	big := text(10 << 10)
	tests := []struct {
		name    string
		method  string
		accept  string
		status  int
		header  []string // the backend's fields
		body    string
		chunked bool // the backend streams without Content-Length
		off     bool // NGINX_GZIP=off
		want    string
		vary    bool
	}{
		{name: "html", accept: "gzip", header: []string{"Content-Type", "text/html; charset=utf-8"}, body: big, want: "gzip", vary: true},
		{name: "chunked html", accept: "gzip", header: []string{"Content-Type", "text/html"}, body: big, chunked: true, want: "gzip", vary: true},
		{name: "json zstd", accept: "gzip;q=0.5, zstd", header: []string{"Content-Type", "application/json"}, body: big, want: "zstd", vary: true},
		{name: "chunked zstd", accept: "zstd", header: []string{"Content-Type", "application/javascript"}, body: big, chunked: true, want: "zstd", vary: true},
		{name: "svg", accept: "gzip", header: []string{"Content-Type", "image/svg+xml"}, body: big, want: "gzip", vary: true},
		{name: "404", accept: "gzip", status: 404, header: []string{"Content-Type", "text/html"}, body: big, want: "gzip", vary: true},
		{name: "just under the minimum", accept: "gzip", header: []string{"Content-Type", "text/plain"}, body: big[:2047]},
		{name: "the minimum", accept: "gzip", header: []string{"Content-Type", "text/plain"}, body: big[:2048], want: "gzip", vary: true},
		{name: "small chunked", accept: "gzip", header: []string{"Content-Type", "text/plain"}, body: "short", chunked: true, want: "gzip", vary: true},
		{name: "client refuses", accept: "gzip;q=0", header: []string{"Content-Type", "text/html"}, body: big, vary: true},
		{name: "client accepts none", header: []string{"Content-Type", "text/html"}, body: big, vary: true},
		{name: "image", accept: "gzip", header: []string{"Content-Type", "image/png"}, body: big},
		{name: "binary", accept: "gzip", header: []string{"Content-Type", "application/octet-stream"}, body: big},
		{name: "app encoded", accept: "gzip", header: []string{"Content-Type", "text/html", "Content-Encoding", "br"}, body: big, want: "br"},
		{name: "no-transform", accept: "gzip", header: []string{"Content-Type", "text/html", "Cache-Control", "public, no-transform"}, body: big},
		{name: "range", accept: "gzip", status: 206, header: []string{"Content-Type", "text/html", "Content-Range", "bytes 0-9999/20000"}, body: big[:10000]},
		{name: "500", accept: "gzip", status: 500, header: []string{"Content-Type", "text/html"}, body: big},
		{name: "head", method: "HEAD", accept: "gzip", header: []string{"Content-Type", "text/html"}, body: big},
		{name: "204", accept: "gzip", status: 204, header: []string{"Content-Type", "text/html"}},
		{name: "304", accept: "gzip", status: 304, header: []string{"Content-Type", "text/html", "Etag", `"x"`}},
		{name: "turned off", accept: "gzip", header: []string{"Content-Type", "text/html"}, body: big, off: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i+1 < len(tt.header); i += 2 {
					w.Header().Set(tt.header[i], tt.header[i+1])
				}
				if !tt.chunked && tt.status != 204 && tt.status != 304 {
					w.Header().Set("Content-Length", strconv.Itoa(len(tt.body)))
				}
				w.Header().Set("Etag", `"v1"`)
				w.WriteHeader(max(tt.status, 200))
				if r.Method == "HEAD" {
					return
				}
				if tt.chunked {
					io.WriteString(w, tt.body[:len(tt.body)/2])
					w.(http.Flusher).Flush()
					io.WriteString(w, tt.body[len(tt.body)/2:])
					return
				}
				io.WriteString(w, tt.body)
			})
			_, addr := startProxy(t, Options{}, Route{App: "a", Hosts: []string{"a.test"}, Backends: []string{be}, Compress: !tt.off})
			var hdr []string
			if tt.accept != "" {
				hdr = []string{"Accept-Encoding", tt.accept}
			}
			res := do(t, nil, addr, cmp.Or(tt.method, "GET"), "a.test", "/", nil, hdr...)
			if got := res.header.Get("Content-Encoding"); got != tt.want {
				t.Fatalf("Content-Encoding %q, want %q", got, tt.want)
			}
			if got := strings.Contains(res.header.Get("Vary"), "Accept-Encoding"); got != tt.vary {
				t.Errorf("Vary %q, want Accept-Encoding: %v", res.header.Get("Vary"), tt.vary)
			}
			if tt.want == "gzip" || tt.want == "zstd" {
				if res.header.Get("Content-Length") != "" && res.header.Get("Content-Length") != strconv.Itoa(len(res.body)) {
					t.Errorf("Content-Length %s for %d bytes", res.header.Get("Content-Length"), len(res.body))
				}
				if got := res.header.Get("Etag"); got != `W/"v1"` {
					t.Errorf("Etag %s, want the weak W/\"v1\"", got)
				}
				if len(tt.body) > compressMin && len(res.body) >= len(tt.body)/2 {
					t.Errorf("compressed %d bytes into %d", len(tt.body), len(res.body))
				}
				res.body = decode(t, tt.want, res.body)
			}
			if tt.method == "HEAD" {
				if res.header.Get("Content-Length") != strconv.Itoa(len(tt.body)) {
					t.Errorf("HEAD: Content-Length %q, want %d", res.header.Get("Content-Length"), len(tt.body))
				}
				return
			}
			if res.body != tt.body {
				t.Errorf("body of %d bytes differs from the %d sent", len(res.body), len(tt.body))
			}
		})
	}
}

// TestCompressGoClient checks the differential property with the client
// most Go programs use: net/http asks for gzip itself and undoes it, and
// gets exactly the bytes the app sent, with and without Content-Length.
func TestCompressGoClient(t *testing.T) {
	for _, size := range []int{3000, 100 << 10, 1 << 20} {
		for _, chunked := range []bool{false, true} {
			body := text(size)
			be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				if !chunked {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				}
				for p := body; p != ""; {
					n := min(len(p), 7000)
					io.WriteString(w, p[:n])
					p = p[n:]
					if chunked {
						w.(http.Flusher).Flush()
					}
				}
			})
			_, addr := startProxy(t, Options{}, Route{App: "a", Hosts: []string{"a.test"}, Backends: []string{be}, Compress: true})
			c := &http.Client{Transport: &http.Transport{}}
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			req.Host = "a.test"
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(res.Body)
			res.Body.Close()
			c.CloseIdleConnections()
			if err != nil {
				t.Fatal(err)
			}
			if !res.Uncompressed {
				t.Errorf("%d bytes, chunked %v: the client got no gzip", size, chunked)
			}
			if string(got) != body {
				t.Errorf("%d bytes, chunked %v: got %d bytes that differ", size, chunked, len(got))
			}
		}
	}
}

// TestCompressEventStream checks that a compressed event stream is not
// held back: each event can be decoded before the app sends the next.
func TestCompressEventStream(t *testing.T) {
	for _, enc := range []string{"gzip", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			next := make(chan struct{})
			be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				for i := range 3 {
					fmt.Fprintf(w, "data: event %d\n\n", i)
					w.(http.Flusher).Flush()
					select {
					case <-next:
					case <-r.Context().Done():
						return
					}
				}
			})
			_, addr := startProxy(t, Options{}, Route{App: "a", Hosts: []string{"a.test"}, Backends: []string{be}, Compress: true})
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			req.Host = "a.test"
			req.Header.Set("Accept-Encoding", enc)
			c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			defer c.CloseIdleConnections()
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if got := res.Header.Get("Content-Encoding"); got != enc {
				t.Fatalf("Content-Encoding %q, want %s", got, enc)
			}
			var zr io.Reader
			if enc == "gzip" {
				if zr, err = gzip.NewReader(res.Body); err != nil {
					t.Fatal(err)
				}
			} else {
				d, err := zstd.NewReader(res.Body)
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				zr = d
			}
			br := bufio.NewReader(zr)
			for i := range 3 {
				// The app waits for next before it sends event i+1: a
				// stream held in the encoder would block here for ever.
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				if want := fmt.Sprintf("data: event %d\n", i); line != want {
					t.Fatalf("read %q, want %q", line, want)
				}
				br.ReadString('\n')
				next <- struct{}{}
			}
		})
	}
}

// TestCompressCached checks that the cache keeps one answer per coding.
func TestCompressCached(t *testing.T) {
	body := text(8000)
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, body)
	})
	_, addr := startProxy(t, Options{}, Route{App: "a", Hosts: []string{"a.test"}, Backends: []string{be}, Compress: true,
		Cache: &CacheConfig{Prefixes: []string{"/"}, Size: 1 << 20, Time: 3600e9, Expiry: 3600e9}})
	for _, round := range []string{"MISS", "HIT"} {
		for _, enc := range []string{"", "gzip", "zstd"} {
			res := do(t, nil, addr, "GET", "a.test", "/", nil, "Accept-Encoding", cmp.Or(enc, "identity"))
			if res.header.Get("X-Cache") != round || res.header.Get("Content-Encoding") != enc {
				t.Fatalf("%s, Accept-Encoding %q: X-Cache %q, Content-Encoding %q", round, enc, res.header.Get("X-Cache"), res.header.Get("Content-Encoding"))
			}
			if decode(t, enc, res.body) != body {
				t.Errorf("%s %s: body differs", round, enc)
			}
		}
	}
}

// TestCompressHTTP2 checks compression over HTTPS with HTTP/2 (net/http's
// server), with and without Content-Length, against the bytes the app sent.
func TestCompressHTTP2(t *testing.T) {
	body := text(50_000)
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/cl" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		io.WriteString(w, body[:20_000])
		w.(http.Flusher).Flush()
		io.WriteString(w, body[20_000:])
	})
	cert := selfSigned(t)
	s, _ := startProxy(t, Options{HTTPSAddr: "127.0.0.1:0", TLSConfig: &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }}},
		Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{be}, Compress: true})
	_, addr := s.Addrs()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "app.test"},
		ForceAttemptHTTP2: true, DisableCompression: true}
	defer tr.CloseIdleConnections()
	for _, path := range []string{"/cl", "/chunked"} {
		for _, enc := range []string{"gzip", "zstd"} {
			req, _ := http.NewRequest("GET", "https://"+addr+path, nil)
			req.Host = "app.test"
			req.Header.Set("Accept-Encoding", enc)
			res, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if res.ProtoMajor != 2 || res.Header.Get("Content-Encoding") != enc {
				t.Fatalf("%s %s: %s, Content-Encoding %q", path, enc, res.Proto, res.Header.Get("Content-Encoding"))
			}
			if decode(t, enc, string(b)) != body {
				t.Errorf("%s %s: body differs", path, enc)
			}
		}
	}
}
