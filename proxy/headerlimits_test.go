package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// headerCase is a request's header: its URI and its fields but Host.
type headerCase struct {
	name   string
	uri    string
	fields [][2]string
	want   int
}

// tinyFields returns n distinct fields of about 10 bytes a line.
func tinyFields(n int) [][2]string {
	f := make([][2]string, n)
	for i := range f {
		f[i] = [2]string{fmt.Sprintf("X-%d", i), "v"}
	}
	return f
}

// sizedFields returns n distinct fields of size bytes a line (with the
// line's CRLF).
func sizedFields(n, size int) [][2]string {
	f := make([][2]string, n)
	for i := range f {
		name := fmt.Sprintf("X-F%d", i)
		f[i] = [2]string{name, strings.Repeat("v", size-len(name)-4)}
	}
	return f
}

func headerCases() []headerCase {
	browser := [][2]string{
		{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
		{"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		{"Accept-Language", "en-US,en;q=0.5"},
		{"Cookie", strings.Repeat("c", 7000)},
		{"X-Case", "browser"},
	}
	return []headerCase{
		{"a browser's request with a 7 KB cookie", "/", browser, 200},
		{"100 fields with Host", "/", tinyFields(99), 200},
		{"101 fields with Host", "/", tinyFields(100), 431},
		{"64 KiB of tiny fields", "/", tinyFields(64 << 10 / 10), 431},
		{"64 KiB in 90 fields", "/", sizedFields(90, 64<<10/90), 431},
		{"30 KiB in 90 fields", "/", sizedFields(90, 30<<10/90), 200},
		{"an 8 KiB field line", "/", sizedFields(1, 8<<10), 200},
		{"a field line over 8 KiB", "/", sizedFields(1, 8<<10+3), 400},
		{"a request line over 8 KiB", "/" + strings.Repeat("u", 8<<10), nil, 414},
	}
}

// headerBackend answers 200 and counts the requests it got.
func headerBackend(t *testing.T) (addr string, hits func() int) {
	var mu sync.Mutex
	n := 0
	addr = backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		io.WriteString(w, "app")
	})
	return addr, func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// TestHeaderLimits: a request's header is bounded as nginx bounds it (32
// KiB in all, 8 KiB a line) and in fields (100, as gunicorn), on piku's
// HTTP/1.1 server and on net/http's (PIKU_TEST_NETHTTP1=1); what is
// refused never reaches the app. Before the limits, every request here
// but the one with a 64 KiB flood of tiny fields (which a 64 KiB limit
// took too) reached the app.
func TestHeaderLimits(t *testing.T) {
	back, hits := headerBackend(t)
	_, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{back}})
	for _, tc := range headerCases() {
		t.Run(tc.name, func(t *testing.T) {
			before := hits()
			var b strings.Builder
			fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: app.test\r\n", tc.uri)
			for _, f := range tc.fields {
				fmt.Fprintf(&b, "%s: %s\r\n", f[0], f[1])
			}
			b.WriteString("\r\n")
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go io.WriteString(c, b.String()) // the server may answer before it read all
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			res.Body.Close()
			if res.StatusCode != tc.want {
				t.Errorf("status %d, want %d", res.StatusCode, tc.want)
			}
			if reached := hits() > before; reached != (tc.want == 200) {
				t.Errorf("the app got the request: %v", reached)
			}
		})
	}
}

// TestHeaderLimitsHTTPS: the same limits over HTTPS, with HTTP/1.1 and
// with HTTP/2 (where the client itself refuses to send a header list
// longer than the server's SETTINGS_MAX_HEADER_LIST_SIZE).
func TestHeaderLimitsHTTPS(t *testing.T) {
	back, hits := headerBackend(t)
	cert := selfSigned(t)
	s, _ := startProxy(t, Options{HTTPSAddr: "127.0.0.1:0", TLSConfig: &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }}},
		Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{back}})
	_, addr := s.Addrs()
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "app.test"},
			ForceAttemptHTTP2: h2, DisableCompression: true}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		t.Cleanup(tr.CloseIdleConnections)
		for _, tc := range headerCases() {
			t.Run(fmt.Sprintf("h2=%v/%s", h2, tc.name), func(t *testing.T) {
				before := hits()
				req, _ := http.NewRequest("GET", "https://"+addr+tc.uri, nil)
				req.Host = "app.test"
				req.Header["User-Agent"] = []string{""} // no field but the case's
				for _, f := range tc.fields {
					req.Header.Add(f[0], f[1])
				}
				res, err := (&http.Client{Transport: tr}).Do(req)
				switch {
				case err != nil && h2 && tc.want == 431 && (strings.Contains(err.Error(), "header list larger than peer's advertised limit") || strings.Contains(err.Error(), "GOAWAY")):
					// Refused before the handler: by the client, which
					// knew the server's limit, or by the server.
				case err != nil:
					t.Fatal(err)
				default:
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != tc.want {
						t.Errorf("%s: status %d, want %d", res.Proto, res.StatusCode, tc.want)
					}
				}
				if reached := hits() > before; reached != (tc.want == 200) {
					t.Errorf("the app got the request: %v", reached)
				}
			})
		}
	}
}
