package certs

import (
	"bytes"
	"context"
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
	"log"
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
	"golang.org/x/crypto/acme"
)

const pebbleVersion = "v2.10.1"

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

// testCA is a CA of the test's own for pebble's HTTPS API.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
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
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// serverFiles writes a certificate for 127.0.0.1 and localhost signed by
// the CA, and its key, to dir and returns their paths.
func (ca *testCA) serverFiles(t *testing.T, dir string) (certFile, keyFile string) {
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
func freePort(t *testing.T) int {
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
func start(t *testing.T, name string, env []string, args ...string) {
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

// pebbleEnv is a running pebble with its DNS (pebble-challtestsrv), whose
// validations go to the test's HTTP and TLS listeners on 127.0.0.1.
type pebbleEnv struct {
	dirURL  string
	apiCAs  *x509.CertPool // trusts pebble's API
	roots   *x509.CertPool // pebble's issuing root
	httpL   net.Listener   // pebble validates HTTP-01 here
	tlsL    net.Listener   // pebble validates TLS-ALPN-01 here
	tempDir string
}

func startPebble(t *testing.T) *pebbleEnv {
	t.Helper()
	dirs := goBinDirs()
	pebble := testdeps.Require(t, "pebble", "go install github.com/letsencrypt/pebble/v2/cmd/pebble@"+pebbleVersion, dirs...)
	challsrv := testdeps.Require(t, "pebble-challtestsrv", "go install github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@"+pebbleVersion, dirs...)

	e := &pebbleEnv{tempDir: t.TempDir()}
	var err error
	if e.httpL, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if e.tlsL, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.httpL.Close(); e.tlsL.Close() })

	ca := newTestCA(t)
	e.apiCAs = ca.pool
	certFile, keyFile := ca.serverFiles(t, e.tempDir)

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
		"httpPort":                e.httpL.Addr().(*net.TCPAddr).Port,
		"tlsPort":                 e.tlsL.Addr().(*net.TCPAddr).Port,
		"keyAlgorithm":            "ecdsa",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
	}}
	data, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(e.tempDir, "pebble-config.json")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, pebble, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"},
		"-config", cfgFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))

	e.dirURL = fmt.Sprintf("https://127.0.0.1:%d/dir", apiPort)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := client.Get(e.dirURL)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
			err = errors.New(res.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble does not answer at %s: %v", e.dirURL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmtPort))
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := io.ReadAll(res.Body)
	res.Body.Close()
	e.roots = x509.NewCertPool()
	if !e.roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble's root: %q", rootPEM)
	}
	return e
}

// verifyIssued checks that chain is a certificate for host issued by
// pebble.
func (e *pebbleEnv) verifyIssued(t *testing.T, chain []*x509.Certificate, host string) {
	t.Helper()
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: e.roots, Intermediates: inter, DNSName: host}); err != nil {
		t.Errorf("certificate for %s (issuer %s) not from pebble: %v", host, chain[0].Issuer, err)
	}
	if bytes.Equal(chain[0].RawIssuer, chain[0].RawSubject) {
		t.Errorf("certificate for %s is self-signed", host)
	}
}

func TestACMEWithPebble(t *testing.T) {
	e := startPebble(t)
	dir := filepath.Join(t.TempDir(), "certs")
	m := newManager(t, Options{Dir: dir, ACME: true, DirectoryURL: e.dirURL, RootCAs: e.apiCAs, Email: "admin@app.test"})

	// HTTP on pebble's httpPort: count the challenges answered per host
	var mu sync.Mutex
	httpChallenges := map[string]int{}
	alpnChallenges := map[string]int{}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "app") })
	acmeHandler := m.HTTPHandler(app)
	httpSrv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		acmeHandler.ServeHTTP(rec, r)
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") && rec.status == http.StatusOK {
			host, _, _ := net.SplitHostPort(r.Host)
			mu.Lock()
			httpChallenges[host]++
			mu.Unlock()
		}
	})}
	go func() { _ = httpSrv.Serve(e.httpL) }()
	t.Cleanup(func() { _ = httpSrv.Close() })

	// TLS on pebble's tlsPort. For http01.test the TLS-ALPN-01 validation
	// is refused, which makes autocert turn to HTTP-01.
	tlsCfg := m.TLSConfig()
	getCert := tlsCfg.GetCertificate
	tlsCfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto {
			mu.Lock()
			alpnChallenges[hello.ServerName]++
			mu.Unlock()
			if hello.ServerName == "http01.test" {
				return nil, errors.New("no TLS-ALPN-01 for this host in this test")
			}
		}
		return getCert(hello)
	}
	tlsSrv := &http.Server{Handler: app, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = tlsSrv.Serve(tls.NewListener(e.tlsL, tlsCfg)) }()
	t.Cleanup(func() { _ = tlsSrv.Close() })
	addr := e.tlsL.Addr().String()

	m.SetHosts("app", []string{"app.test", "http01.test", "*.wild.test"}, true)

	t0 := time.Now()
	chain := handshake(t, addr, "app.test")
	t.Logf("app.test issued in %v", time.Since(t0))
	e.verifyIssued(t, chain, "app.test")
	mu.Lock()
	if alpnChallenges["app.test"] == 0 {
		t.Error("app.test was not validated with TLS-ALPN-01")
	}
	mu.Unlock()
	if _, err := os.Stat(filepath.Join(dir, "acme", "app.test")); err != nil {
		t.Errorf("certificate not cached: %v", err)
	}

	t0 = time.Now()
	chain = handshake(t, addr, "http01.test")
	t.Logf("http01.test issued in %v", time.Since(t0))
	e.verifyIssued(t, chain, "http01.test")
	mu.Lock()
	if httpChallenges["http01.test"] == 0 {
		t.Error("http01.test was not validated with HTTP-01")
	}
	mu.Unlock()

	// a wildcard host cannot be validated: it gets a self-signed certificate
	checkSelfSigned(t, handshake(t, addr, "x.wild.test")[0], "*.wild.test")

	// the proxy's requests still reach the app through the wrapped handler
	res, err := http.Get("http://" + e.httpL.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "app" {
		t.Errorf("plain HTTP answered %q", body)
	}

	// Run obtains certificates of new hosts before anybody asks
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(ctx) }()
	m.SetHosts("other", []string{"pre.test"}, true)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "acme", "pre.test")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not obtain the certificate of pre.test")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-runDone:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Run did not return after its context ended")
	}

	// after a restart the certificates come from the cache in Dir, without
	// asking the CA (whose DNS answers are switched off by a wrong URL)
	m2 := newManager(t, Options{Dir: dir, ACME: true, DirectoryURL: "https://127.0.0.1:1/dir", RootCAs: e.apiCAs})
	m2.SetHosts("app", []string{"app.test"}, true)
	m2.SetHosts("other", []string{"pre.test"}, true)
	addr2 := serveTLS(t, m2.TLSConfig(), app)
	again := handshake(t, addr2, "app.test")
	if !again[0].Equal(handshake(t, addr, "app.test")[0]) {
		t.Error("the restarted manager serves another certificate for app.test")
	}
	e.verifyIssued(t, again, "app.test")
	e.verifyIssued(t, handshake(t, addr2, "pre.test"), "pre.test")
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}
