// Package pebbletest runs pebble, Let's Encrypt's test ACME server, for
// tests: a real CA whose validations go to ports of the test's choosing on
// 127.0.0.1, with pebble-challtestsrv as its DNS server answering
// 127.0.0.1 for every name.
//
// Pebble's HTTPS API is served with a certificate signed by a CA that
// Start generates; its PEM is in Pebble.CAFile and its pool in
// Pebble.APIRoots. The certificates pebble issues chain to Pebble.Roots.
//
// A missing pebble or pebble-challtestsrv fails the test (see
// internal/testdeps) with the command that installs it.
package pebbletest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piku/piku/internal/testdeps"
)

// Version is the pebble release the install hints name.
const Version = "v2.10.1"

// Pebble is a running pebble with its DNS server. Both stop when the test
// that started them ends.
type Pebble struct {
	// DirectoryURL is the ACME directory, https://127.0.0.1:PORT/dir.
	DirectoryURL string
	// CAFile is a PEM file holding the certificate of the CA that signed
	// pebble's API certificate (for SSL_CERT_FILE of another process).
	CAFile string
	// APIRoots trusts pebble's API: the CA in CAFile.
	APIRoots *x509.CertPool
	// Roots holds pebble's issuing root; see RefreshRoots.
	Roots *x509.CertPool
	// HTTPPort and TLSPort are where pebble validates HTTP-01 and
	// TLS-ALPN-01 challenges on 127.0.0.1.
	HTTPPort, TLSPort int

	rootsURL string
	client   *http.Client
}

// Start runs pebble-challtestsrv and pebble and waits until pebble
// answers. Pebble validates HTTP-01 challenges on 127.0.0.1:httpPort and
// TLS-ALPN-01 challenges on 127.0.0.1:tlsPort, for every host name.
func Start(t testing.TB, httpPort, tlsPort int) *Pebble {
	t.Helper()
	dirs := goBinDirs()
	pebble := testdeps.Require(t, "pebble", "go install github.com/letsencrypt/pebble/v2/cmd/pebble@"+Version, dirs...)
	challsrv := testdeps.Require(t, "pebble-challtestsrv", "go install github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@"+Version, dirs...)

	tempDir := t.TempDir()
	ca := newCA(t)
	p := &Pebble{
		CAFile:   filepath.Join(tempDir, "api-ca.pem"),
		APIRoots: x509.NewCertPool(),
		HTTPPort: httpPort,
		TLSPort:  tlsPort,
	}
	p.APIRoots.AddCert(ca.cert)
	if err := os.WriteFile(p.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := ca.serverFiles(t, tempDir)

	dnsPort := freePort(t)
	start(t, challsrv, nil,
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort),
		"-management", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")

	apiPort, mgmtPort := freePort(t), freePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           fmt.Sprintf("127.0.0.1:%d", apiPort),
		"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                httpPort,
		"tlsPort":                 tlsPort,
		"keyAlgorithm":            "ecdsa",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
	}}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(tempDir, "pebble-config.json")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, pebble, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"},
		"-config", cfgFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))

	p.DirectoryURL = fmt.Sprintf("https://127.0.0.1:%d/dir", apiPort)
	p.rootsURL = fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmtPort)
	p.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.APIRoots, MinVersion: tls.VersionTLS12},
	}}
	t.Cleanup(p.client.CloseIdleConnections)
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := p.client.Get(p.DirectoryURL)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
			err = errors.New(res.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble does not answer at %s: %v", p.DirectoryURL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.RefreshRoots(t)
	return p
}

// FetchRoots returns pebble's issuing root, read from its management API.
func (p *Pebble) FetchRoots() (*x509.CertPool, error) {
	res, err := p.client.Get(p.rootsURL)
	if err != nil {
		return nil, fmt.Errorf("pebble's root: %w", err)
	}
	defer res.Body.Close()
	rootPEM, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("pebble's root: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("pebble's root: %s: %q", res.Status, rootPEM)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(rootPEM) {
		return nil, fmt.Errorf("pebble's root: no certificate in %q", rootPEM)
	}
	return pool, nil
}

// RefreshRoots reads pebble's issuing root again into p.Roots and returns
// it; a failure fails the test.
func (p *Pebble) RefreshRoots(t testing.TB) *x509.CertPool {
	t.Helper()
	pool, err := p.FetchRoots()
	if err != nil {
		t.Fatal(err)
	}
	p.Roots = pool
	return pool
}

// Verify checks that chain (leaf first, as a TLS peer sends it) is a
// certificate for host issued by pebble, not a self-signed one.
func (p *Pebble) Verify(chain []*x509.Certificate, host string) error {
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	if bytes.Equal(chain[0].RawIssuer, chain[0].RawSubject) {
		return fmt.Errorf("certificate for %s is self-signed (issuer %s)", host, chain[0].Issuer)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: p.Roots, Intermediates: inter, DNSName: host}); err != nil {
		return fmt.Errorf("certificate for %s (issuer %s) not from pebble: %w", host, chain[0].Issuer, err)
	}
	return nil
}

// goBinDirs are where `go install` puts programs.
func goBinDirs() []string {
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for p := range strings.SplitSeq(strings.TrimSpace(string(out)), string(os.PathListSeparator)) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	return dirs
}

// testCA is a CA for pebble's HTTPS API.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "piku test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// serverFiles writes a certificate for 127.0.0.1 and localhost signed by
// the CA, and its key, to dir and returns their paths.
func (ca *testCA) serverFiles(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// freePort returns a loopback port that is free for TCP and UDP now.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a program until the test ends; its output is logged when the
// test fails.
func start(t testing.TB, name string, env []string, args ...string) {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), out.String())
		}
	})
}
