package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piku/piku/internal/pebbletest"
	"github.com/piku/piku/internal/testdeps"
	"golang.org/x/crypto/acme"
)

// pebbleEnv is a running pebble whose validations go to the test's HTTP
// and TLS listeners on 127.0.0.1.
type pebbleEnv struct {
	*pebbletest.Pebble
	httpL net.Listener // pebble validates HTTP-01 here
	tlsL  net.Listener // pebble validates TLS-ALPN-01 here
}

func startPebble(t *testing.T) *pebbleEnv {
	t.Helper()
	e := &pebbleEnv{}
	var err error
	if e.httpL, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if e.tlsL, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.httpL.Close(); e.tlsL.Close() })
	e.Pebble = pebbletest.Start(t, e.httpL.Addr().(*net.TCPAddr).Port, e.tlsL.Addr().(*net.TCPAddr).Port)
	return e
}

// verifyIssued checks that chain is a certificate for host issued by
// pebble.
func (e *pebbleEnv) verifyIssued(t *testing.T, chain []*x509.Certificate, host string) {
	t.Helper()
	if err := e.Verify(chain, host); err != nil {
		t.Error(err)
	}
}

func TestACMEWithPebble(t *testing.T) {
	e := startPebble(t)
	dir := filepath.Join(t.TempDir(), "certs")
	m := newManager(t, Options{Dir: dir, ACME: true, DirectoryURL: e.DirectoryURL, RootCAs: e.APIRoots, Email: "admin@app.test"})

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
	wait := testdeps.Waiting(t) // every wait ends just before the test's timeout
	for {
		if _, err := os.Stat(filepath.Join(dir, "acme", "pre.test")); err == nil {
			break
		}
		select {
		case <-wait.Done():
			t.Fatal("Run did not obtain the certificate of pre.test")
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-runDone:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-wait.Done():
		t.Error("Run did not return after its context ended")
	}

	// after a restart the certificates come from the cache in Dir, without
	// asking the CA (whose DNS answers are switched off by a wrong URL)
	m2 := newManager(t, Options{Dir: dir, ACME: true, DirectoryURL: "https://127.0.0.1:1/dir", RootCAs: e.APIRoots})
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
