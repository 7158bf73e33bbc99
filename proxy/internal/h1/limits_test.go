package h1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// limitsConfig is the proxy's default: 32 KiB, 100 fields, 8 KiB a line.
var limitsConfig = Config{ReadHeaderTimeout: time.Second, IdleTimeout: time.Second,
	MaxHeaderBytes: 32 << 10, MaxHeaderFields: 100, MaxHeaderLineBytes: 8 << 10}

// request returns a GET request with the given fields after Host.
func request(uri string, fields ...string) string {
	return "GET " + uri + " HTTP/1.1\r\nHost: a\r\n" + strings.Join(fields, "") + "\r\n"
}

// fieldsOf returns n fields "X-I: value" of size bytes each, with CRLF.
func fieldsOf(n, size int) []string {
	f := make([]string, n)
	for i := range f {
		name := fmt.Sprintf("X-%d: ", i)
		f[i] = name + strings.Repeat("v", max(0, size-len(name)-2)) + "\r\n"
	}
	return f
}

// TestRequestHeaderLimits: the header section is bounded in bytes, in
// bytes a line and in fields, with nginx's answers (431, 414 for the
// request line, 400 for a field line); a trailer section is bounded in
// fields too.
func TestRequestHeaderLimits(t *testing.T) {
	for _, tt := range []struct {
		name string
		data string
		want int // 0: read
	}{
		{"small", request("/", "Accept: */*\r\n"), 0},
		{"100 fields with Host", request("/", fieldsOf(99, 12)...), 0},
		{"101 fields with Host", request("/", fieldsOf(100, 12)...), 431},
		{"empty lines before, 100 fields", "\r\n\r\n" + request("/", fieldsOf(99, 12)...), 0},
		{"32 KiB", request("/", fieldsOf(8, 4000)...), 0},
		{"past 32 KiB", request("/", fieldsOf(9, 4000)...), 431},
		{"an 8 KiB line", request("/", fieldsOf(1, 8<<10+2)...), 0},
		{"a longer line", request("/", fieldsOf(1, 8<<10+3)...), 400},
		{"a long request line", request("/" + strings.Repeat("u", 8<<10)), 414},
		{"64 KiB of tiny fields", request("/", fieldsOf(64<<10/8, 8)...), 431},
		{"101 trailer fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + strings.Join(fieldsOf(101, 10), "") + "\r\n", 400},
		{"100 trailer fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + strings.Join(fieldsOf(100, 10), "") + "\r\n", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer(http.NotFoundHandler(), limitsConfig, context.Background(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			c := s.newConn(&fuzzConn{r: strings.NewReader(tt.data)})
			req, body, err := c.readRequest()
			if err == nil && body != nil {
				body.req = req
				_, err = io.ReadAll(body)
			}
			var he *h1Error
			switch {
			case tt.want == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != 0 && !errors.As(err, &he):
				t.Fatalf("got %v, want %d", err, tt.want)
			case tt.want != 0 && he.code != tt.want:
				t.Fatalf("got %d (%v), want %d", he.code, err, tt.want)
			}
		})
	}
}

// TestHeaderMemory: reading a request's header costs a small multiple of
// the bytes received, however the bytes are split into fields: a flood of
// tiny distinct fields, the shape that cost 12 bytes of map a byte, is
// refused before a map is made. Measured in bytes allocated (MemStats),
// never in time.
func TestHeaderMemory(t *testing.T) {
	for _, tt := range []struct {
		name     string
		data     string
		maxRatio float64 // bytes allocated per byte received
	}{
		{"a browser's request", request("/index.html", "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n",
			"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n", "Accept-Language: en-US,en;q=0.5\r\n",
			"Accept-Encoding: gzip, deflate, br\r\n", "Connection: keep-alive\r\n", "Cookie: "+strings.Repeat("c", 400)+"\r\n"), 3},
		{"32 KiB in 99 fields", request("/", fieldsOf(99, 32<<10/100)...), 3},
		{"100 fields of 40 bytes", request("/", fieldsOf(99, 40)...), 4},
		{"a flood of 64 KiB of tiny fields (refused)", request("/", fieldsOf(64<<10/8, 8)...), 1.5},
		{"a flood of 64 KiB in 90 fields (refused)", request("/", fieldsOf(90, 64<<10/90)...), 1.5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer(http.NotFoundHandler(), limitsConfig, context.Background(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			fc := &fuzzConn{r: strings.NewReader(tt.data)}
			c := s.newConn(fc)
			read := func() {
				fc.r.Reset(tt.data)
				c.br.Reset(fc)
				c.readRequest()
			}
			read() // warm up the pools
			const runs = 200
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for range runs {
				read()
			}
			runtime.ReadMemStats(&after)
			perByte := float64(after.TotalAlloc-before.TotalAlloc) / runs / float64(len(tt.data))
			t.Logf("%d bytes received, %.2f bytes allocated a byte", len(tt.data), perByte)
			if perByte > tt.maxRatio {
				t.Errorf("%.2f bytes allocated a byte received, want at most %.1f", perByte, tt.maxRatio)
			}
		})
	}
}
