package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func newManager(t *testing.T, o Options) *Manager {
	t.Helper()
	if o.Dir == "" {
		o.Dir = filepath.Join(t.TempDir(), "certs")
	}
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// serveTLS serves h over TLS with cfg on a loopback port and returns the
// address.
func serveTLS(t *testing.T, cfg *tls.Config, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(tls.NewListener(l, cfg)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

// handshake connects to addr with SNI serverName (none when "") and returns
// the certificate chain the server presented.
func handshake(t *testing.T, addr, serverName string) []*x509.Certificate {
	t.Helper()
	d := &net.Dialer{Timeout: 30 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake with %q: %v", serverName, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates
}

func checkSelfSigned(t *testing.T, leaf *x509.Certificate, san string) {
	t.Helper()
	if !bytes.Equal(leaf.RawIssuer, leaf.RawSubject) {
		t.Errorf("certificate for %q issued by %s", san, leaf.Issuer)
	}
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		t.Errorf("certificate for %q is not self-signed: %v", san, err)
	}
	if san == "" {
		if len(leaf.DNSNames) != 0 {
			t.Errorf("generic certificate has names %v", leaf.DNSNames)
		}
	} else if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != san {
		t.Errorf("certificate names %v, want [%s]", leaf.DNSNames, san)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	if life := time.Until(leaf.NotAfter); life < 360*24*time.Hour || life > 366*24*time.Hour {
		t.Errorf("certificate valid for %v more, want about a year", life)
	}
}

func TestSelfSignedWhenACMEOff(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	m := newManager(t, Options{Dir: dir, ACME: false})
	m.SetHosts("web", []string{"App.Example.com."}, true) // ACME is off globally
	addr := serveTLS(t, m.TLSConfig(), http.NotFoundHandler())

	chain := handshake(t, addr, "app.example.com")
	checkSelfSigned(t, chain[0], "app.example.com")
	// a client that trusts this certificate accepts it for the host
	pool := x509.NewCertPool()
	pool.AddCert(chain[0])
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: "app.example.com"}); err != nil {
		t.Errorf("verify: %v", err)
	}

	file := filepath.Join(dir, "selfsigned", "app.example.com.pem")
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, want 0600", file, fi.Mode().Perm())
	}
	for _, d := range []string{dir, filepath.Join(dir, "selfsigned")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want mode 0700", d, fi.Mode().Perm(), err)
		}
	}

	// a new manager on the same directory serves the stored certificate
	m2 := newManager(t, Options{Dir: dir})
	m2.SetHosts("web", []string{"app.example.com"}, false)
	chain2 := handshake(t, serveTLS(t, m2.TLSConfig(), http.NotFoundHandler()), "app.example.com")
	if !chain2[0].Equal(chain[0]) {
		t.Error("the certificate stored on disk was not reused")
	}
}

func TestSelfSignedUnknownAndWildcard(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	m := newManager(t, Options{Dir: dir})
	m.SetHosts("web", []string{"*.example.org", ".example.net", "~^re[0-9]+\\.example\\.com$"}, false)
	addr := serveTLS(t, m.TLSConfig(), http.NotFoundHandler())

	noSNI := handshake(t, addr, "")
	checkSelfSigned(t, noSNI[0], "")
	unknown := handshake(t, addr, "unknown.example.com")
	if !unknown[0].Equal(noSNI[0]) {
		t.Error("an unknown name did not get the generic certificate")
	}
	regex := handshake(t, addr, "re1.example.com")
	if !regex[0].Equal(noSNI[0]) {
		t.Error("a name matching a regular expression did not get the generic certificate")
	}
	checkSelfSigned(t, handshake(t, addr, "a.example.org")[0], "*.example.org")
	checkSelfSigned(t, handshake(t, addr, "a.b.example.org")[0], "*.example.org")
	checkSelfSigned(t, handshake(t, addr, "example.net")[0], "example.net")
	checkSelfSigned(t, handshake(t, addr, "www.example.net")[0], "*.example.net")

	entries, err := os.ReadDir(filepath.Join(dir, "selfsigned"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"_default.pem", "_wildcard.example.net.pem", "_wildcard.example.org.pem", "example.net.pem"}
	if len(names) != len(want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("files %v, want %v", names, want)
		}
	}
}

func TestSelfSignedRenewedBeforeExpiry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	m := newManager(t, Options{Dir: dir})
	m.SetHosts("web", []string{"app.example.com"}, false)
	first, err := m.selfSignedFor("app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := m.selfSignedFor("app.example.com")
	if again != first {
		t.Error("certificate not kept in memory")
	}
	// 360 days later the certificate is within a week of its end
	m.now = func() time.Time { return time.Now().Add(360 * 24 * time.Hour) }
	renewed, err := m.selfSignedFor("app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Fatal("certificate not renewed")
	}
	if !renewed.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Error("renewed certificate does not last longer")
	}
	stored, err := loadPEM(filepath.Join(dir, "selfsigned", "app.example.com.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if stored.Leaf.SerialNumber.Cmp(renewed.Leaf.SerialNumber) != 0 {
		t.Error("renewed certificate not stored")
	}

	// a corrupt file is replaced
	if err := os.WriteFile(filepath.Join(dir, "selfsigned", "_default.pem"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	m2 := newManager(t, Options{Dir: dir})
	c, err := m2.selfSignedFor("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadPEM(filepath.Join(dir, "selfsigned", "_default.pem")); err != nil {
		t.Errorf("corrupt file not replaced: %v", err)
	}
	checkSelfSigned(t, c.Leaf, "")
}

func TestHostPolicy(t *testing.T) {
	m := newManager(t, Options{ACME: true, DirectoryURL: "http://127.0.0.1:1/dir"})
	m.SetHosts("a", []string{"app.example.com", "WWW.Example.com.", "*.w.example.com", "~^re$", "10.0.0.1", "localhost", ".dot.example.com"}, true)
	m.SetHosts("b", []string{"b.example.com"}, false)
	ctx := context.Background()
	for _, h := range []string{"app.example.com", "www.example.com", "dot.example.com", "app.example.com:80"} {
		if err := m.acme.HostPolicy(ctx, h); err != nil {
			t.Errorf("policy rejects %s: %v", h, err)
		}
	}
	for _, h := range []string{"b.example.com", "unknown.example.com", "x.w.example.com", "*.w.example.com", "re", "10.0.0.1", "localhost", "x.dot.example.com"} {
		if err := m.acme.HostPolicy(ctx, h); err == nil {
			t.Errorf("policy accepts %s", h)
		}
	}
	m.SetHosts("a", nil, false)
	if err := m.acme.HostPolicy(ctx, "app.example.com"); err == nil {
		t.Error("policy accepts the host of a removed app")
	}

	// with ACME off globally no host is for ACME, whatever the app asks
	off := newManager(t, Options{})
	off.SetHosts("a", []string{"app.example.com"}, true)
	if off.acme != nil || len(off.acmeHosts) != 0 {
		t.Error("ACME hosts with ACME off")
	}
}

func TestHTTPHandlerPassesThrough(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Next", "yes")
		_, _ = io.WriteString(w, "app "+r.URL.Path)
	})
	for _, acmeOn := range []bool{false, true} {
		m := newManager(t, Options{ACME: acmeOn, DirectoryURL: "http://127.0.0.1:1/dir"})
		m.SetHosts("web", []string{"app.example.com"}, true)
		srv := httptest.NewServer(m.HTTPHandler(next))
		req, _ := http.NewRequest("GET", srv.URL+"/some/page", nil)
		req.Host = "app.example.com"
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(body) != "app /some/page" {
			t.Errorf("acme=%v: got %d %q, want the next handler's answer", acmeOn, res.StatusCode, body)
		}
		if acmeOn {
			// an unknown challenge token is answered by the ACME handler
			req, _ := http.NewRequest("GET", srv.URL+"/.well-known/acme-challenge/nosuchtoken", nil)
			req.Host = "app.example.com"
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusNotFound || res.Header.Get("X-Next") != "" {
				t.Errorf("challenge path: status %d, next handler %q", res.StatusCode, res.Header.Get("X-Next"))
			}
		}
		srv.Close()
	}
}

// A host whose ACME certificate cannot be had gets the self-signed one, and
// the CA is not asked again before the backoff has passed.
func TestACMEFailureBacksOff(t *testing.T) {
	var hits atomic.Int32
	ca := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "no directory here", http.StatusForbidden)
	}))
	defer ca.Close()
	m := newManager(t, Options{ACME: true, DirectoryURL: ca.URL + "/dir"})
	m.SetHosts("web", []string{"app.example.com"}, true)
	hello := &tls.ClientHelloInfo{
		ServerName:       "app.example.com",
		SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	}
	c, err := m.getCertificate(hello)
	if err != nil {
		t.Fatal(err)
	}
	checkSelfSigned(t, c.Leaf, "app.example.com")
	n := hits.Load()
	if n == 0 {
		t.Fatal("the CA was not asked")
	}
	for range 3 {
		if _, err := m.getCertificate(hello); err != nil {
			t.Fatal(err)
		}
	}
	if hits.Load() != n {
		t.Errorf("the CA was asked %d more times during the backoff", hits.Load()-n)
	}
	m.now = func() time.Time { return time.Now().Add(backoffMin + time.Second) }
	// after the backoff the host goes to autocert again (which itself
	// waits a minute after a failure before it asks the CA again)
	if _, err := m.getCertificate(hello); err != nil {
		t.Fatal(err)
	}
	if f := m.failures["app.example.com"]; f.n != 2 {
		t.Errorf("%d failures recorded, want 2", f.n)
	}
}

func TestBackoffGrows(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 10 * time.Minute, 2: 20 * time.Minute, 3: 40 * time.Minute, 6: 320 * time.Minute, 7: backoffMax, 50: backoffMax} {
		if got := defaultBackoff(n); got != want {
			t.Errorf("backoff after %d failures = %v, want %v", n, got, want)
		}
	}
}
