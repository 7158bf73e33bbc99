package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/pebbletest"
	"github.com/piku/piku/internal/testdeps"
)

// TestACMEEndToEnd runs the real piku daemon against a real ACME CA
// (pebble): an app with NGINX_SERVER_NAME gets a certificate from the CA
// in the background, validated through the daemon's own HTTP and HTTPS
// listeners, and HTTPS then serves the app with it.
func TestACMEEndToEnd(t *testing.T) {
	testdeps.Require(t, "python3", "apt-get install python3")
	const host = "secure.test"
	const index = "<h1>secure app</h1>\n"

	dir := t.TempDir()
	root, err := layout.New(filepath.Join(dir, "root"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"Procfile":   "web: python3 -m http.server --bind 127.0.0.1 $PORT\n",
		"index.html": index,
		"ENV":        "NGINX_SERVER_NAME=" + host + "\n",
	} {
		p := filepath.Join(root.App("secure"), name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	bin := buildPiku(t, dir)

	// pebble validates HTTP-01 and TLS-ALPN-01 on the daemon's listeners
	httpPort, httpsPort := freePort(t), freePort(t)
	for httpsPort == httpPort {
		httpsPort = freePort(t)
	}
	pb := pebbletest.Start(t, httpPort, httpsPort)

	startDaemon(t, bin, root, dir,
		"PIKU_HTTP=127.0.0.1:"+strconv.Itoa(httpPort),
		"PIKU_HTTPS=127.0.0.1:"+strconv.Itoa(httpsPort),
		"PIKU_ACME=true",
		"PIKU_ACME_CA="+pb.DirectoryURL,
		"PIKU_ACME_EMAIL=test@example.com",
		portRange(testdeps.PortsACME, 500),
		"PIKU_SHUTDOWN_TIMEOUT=20s",
		"PIKU_LOG_LEVEL=debug",
		// the daemon trusts pebble's API through the system roots
		"SSL_CERT_FILE="+pb.CAFile,
	)

	httpURL := fmt.Sprintf("http://127.0.0.1:%d/", httpPort)
	waitFor(t, host+" over HTTP", func() (bool, string) {
		code, body, err := httpGet(httpURL, host)
		return err == nil && code == 200 && body == index, fmt.Sprint(code, " ", body, " ", err)
	})

	// The certificate is obtained in the background: until it is there
	// the handshakes get the self-signed fallback, which does not verify.
	httpsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpsPort))
	t0 := time.Now()
	var chain []*x509.Certificate
	waitFor(t, "a certificate from pebble for "+host, func() (bool, string) {
		c, err := acmeHandshake(httpsAddr, &tls.Config{ServerName: host, RootCAs: pb.Roots, MinVersion: tls.VersionTLS12})
		if err != nil {
			return false, err.Error()
		}
		chain = c
		return true, ""
	})
	t.Logf("%s got its certificate in %v (after the daemon answered)", host, time.Since(t0).Round(time.Millisecond))
	if err := pb.Verify(chain, host); err != nil {
		t.Error(err)
	}

	t.Run("HTTPS serves the app", func(t *testing.T) {
		client := &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, httpsAddr)
				},
				TLSClientConfig:   &tls.Config{RootCAs: pb.Roots, MinVersion: tls.VersionTLS12},
				ForceAttemptHTTP2: true,
			},
		}
		defer client.CloseIdleConnections()
		res, err := client.Get("https://" + host + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK || string(body) != index {
			t.Errorf("GET https://%s/: %s %q", host, res.Status, body)
		}
		if res.TLS == nil || len(res.TLS.PeerCertificates) == 0 || !res.TLS.PeerCertificates[0].Equal(chain[0]) {
			t.Error("the request was not served with the certificate from pebble")
		}
		t.Logf("served over %s", res.Proto)
	})

	t.Run("certificate stored", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(root.CertsDir(), "acme", host))
		if err != nil {
			t.Fatal(err)
		}
		var stored *x509.Certificate
		for rest := b; ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
			if block.Type == "CERTIFICATE" {
				if stored, err = x509.ParseCertificate(block.Bytes); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		if stored == nil {
			t.Fatalf("no certificate in the stored %s", host)
		}
		if !stored.Equal(chain[0]) {
			t.Errorf("the stored certificate (serial %s) is not the one served (serial %s)", stored.SerialNumber, chain[0].SerialNumber)
		}
	})

	t.Run("plain HTTP still serves", func(t *testing.T) {
		code, body, err := httpGet(httpURL, host)
		if err != nil || code != 200 || body != index {
			t.Errorf("GET %s (Host %s): %d %q %v", httpURL, host, code, body, err)
		}
	})

	t.Run("unknown names get a self-signed certificate", func(t *testing.T) {
		for _, name := range []string{"unknown.test", ""} {
			c, err := acmeHandshake(httpsAddr, &tls.Config{ServerName: name, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
			if err != nil {
				t.Errorf("handshake with server name %q: %v", name, err)
				continue
			}
			if !bytes.Equal(c[0].RawIssuer, c[0].RawSubject) {
				t.Errorf("server name %q: certificate issued by %s, want a self-signed one", name, c[0].Issuer)
			}
			if pb.Verify(c, "unknown.test") == nil {
				t.Errorf("server name %q got a certificate from pebble", name)
			}
		}
	})
}

// acmeHandshake does a TLS handshake with addr and returns the server's
// certificates.
func acmeHandshake(addr string, cfg *tls.Config) ([]*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates, nil
}
