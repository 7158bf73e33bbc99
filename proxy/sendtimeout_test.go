package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// smallWindowDial connects to addr with a 4 KiB receive buffer, so that a
// client that does not read stops the server's writes soon.
func smallWindowDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// bigFile writes n random (incompressible) bytes to dir/big.
func bigFile(t *testing.T, dir string, n int) {
	t.Helper()
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{})
	r.Read(b)
	if err := os.WriteFile(filepath.Join(dir, "big"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSendTimeout: a client that stops reading a large static file is cut
// after the send timeout, over plain HTTP (piku's server, or net/http's
// with PIKU_TEST_NETHTTP1=1), HTTPS with HTTP/1.1, and HTTP/2 (where the
// stream, stalled by flow control, is reset and the connection kept).
// Before the send timeout the connection was held for as long as the
// client stayed.
func TestSendTimeout(t *testing.T) {
	const size = 32 << 20
	dir := t.TempDir()
	bigFile(t, dir, size)
	cert := selfSigned(t)
	for _, tc := range []string{"http", "https", "h2"} {
		t.Run(tc, func(t *testing.T) {
			rec := newRecorder()
			rec.conns = make(chan int, 1000)
			s, _ := startProxy(t, Options{Observer: rec, SendTimeout: 200 * time.Millisecond, HTTPSAddr: "127.0.0.1:0",
				TLSConfig: &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }}},
				Route{App: "app", Hosts: []string{"app.test"}, StaticPaths: []StaticPath{{"/static", dir}}})
			plain, secure := s.Addrs()
			var body io.Reader
			switch tc {
			case "http", "https":
				addr := plain
				var c net.Conn = smallWindowDial(t, addr)
				if tc == "https" {
					c = smallWindowDial(t, secure)
					tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "app.test", NextProtos: []string{"http/1.1"}})
					if err := tc.Handshake(); err != nil {
						t.Fatal(err)
					}
					c = tc
				}
				if _, err := io.WriteString(c, "GET /static/big HTTP/1.1\r\nHost: app.test\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				// The proxy closes the connection by itself.
				for d := range rec.conns {
					if d < 0 {
						break
					}
				}
				body = bufio.NewReader(c)
			case "h2":
				tr := &http.Transport{ForceAttemptHTTP2: true, DisableCompression: true,
					TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "app.test"},
					DialContext: func(context.Context, string, string) (net.Conn, error) {
						return smallWindowDial(t, secure), nil
					}}
				t.Cleanup(tr.CloseIdleConnections)
				req, _ := http.NewRequest("GET", "https://app.test/static/big", nil)
				res, err := (&http.Client{Transport: tr}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				if res.ProtoMajor != 2 {
					t.Fatalf("%s, want HTTP/2", res.Proto)
				}
				// The proxy ends the request by itself.
				rec.take(1)
				body = res.Body
			}
			n, err := io.Copy(io.Discard, body)
			t.Logf("read %d bytes of %d after the cut (%v)", n, size, err)
			if n >= size {
				t.Errorf("read the whole body (%d bytes) after the cut", n)
			}
		})
	}
}
