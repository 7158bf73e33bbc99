// Package certs provides the TLS certificates of the proxy: certificates from
// an ACME CA (Let's Encrypt by default) for the host names of apps that want
// them, obtained with the TLS-ALPN-01 or HTTP-01 challenge through
// golang.org/x/crypto/acme/autocert, and self-signed certificates for
// everything else, so that HTTPS always answers.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// Options configures a Manager.
type Options struct {
	// Dir holds the ACME account key and certificates (Dir/acme) and the
	// self-signed certificates (Dir/selfsigned). It is created 0700.
	Dir string
	// Email is the contact address of the ACME account; may be empty.
	Email string
	// DirectoryURL is the ACME directory; "" means Let's Encrypt production.
	DirectoryURL string
	// ACME turns on certificates from the ACME CA. When false every host
	// gets a self-signed certificate.
	ACME bool
	// Logger receives ACME failures and issuances; nil discards.
	Logger *slog.Logger
	// HTTPClient talks to the ACME CA; nil means a client that trusts
	// RootCAs (or the system roots when RootCAs is nil).
	HTTPClient *http.Client
	// RootCAs are the roots trusted for the ACME directory's HTTPS, for a
	// private or test CA; ignored when HTTPClient is set.
	RootCAs *x509.CertPool
}

// Backoff after a failed ACME attempt for a host: the first retry waits
// backoffMin, each further failure doubles the wait up to backoffMax. In
// the meantime the host gets its self-signed certificate. Let's Encrypt
// allows 5 failed validations per host and hour; this stays well below.
const (
	backoffMin = 10 * time.Minute
	backoffMax = 6 * time.Hour
	// prefetchEvery is how often Run makes sure that every ACME host has a
	// certificate loaded (which also arms autocert's renewal timer) and
	// retries hosts whose backoff has run out.
	prefetchEvery = time.Minute
)

// Manager hands out certificates. Its methods are safe for concurrent use.
type Manager struct {
	log       *slog.Logger
	acme      *autocert.Manager // nil when ACME is off
	selfDir   string
	backoff   func(n int) time.Duration
	changed   chan struct{} // a token when the ACME hosts changed
	now       func() time.Time
	mu        sync.RWMutex
	apps      map[string]appHosts
	acmeHosts map[string]bool // union of the ACME-eligible hosts of apps with ACME on
	exact     map[string]bool // every concrete host name of every app
	wildcards map[string]bool // "*.example.com" patterns of every app

	failMu   sync.Mutex
	failures map[string]failure

	selfMu sync.Mutex
	self   map[string]*tls.Certificate // by file key; "" is the generic one
}

type appHosts struct {
	hosts []string
	acme  bool
}

type failure struct {
	n     int
	until time.Time
	err   error
}

// New creates the directories under o.Dir and returns a Manager.
func New(o Options) (*Manager, error) {
	if o.Dir == "" {
		return nil, errors.New("certs: no directory")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		log:       log,
		selfDir:   filepath.Join(o.Dir, "selfsigned"),
		backoff:   defaultBackoff,
		changed:   make(chan struct{}, 1),
		now:       time.Now,
		apps:      map[string]appHosts{},
		acmeHosts: map[string]bool{},
		exact:     map[string]bool{},
		wildcards: map[string]bool{},
		failures:  map[string]failure{},
		self:      map[string]*tls.Certificate{},
	}
	for _, d := range []string{o.Dir, m.selfDir, filepath.Join(o.Dir, "acme")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("certs: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("certs: %w", err)
		}
	}
	if o.ACME {
		hc := o.HTTPClient
		if hc == nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			if o.RootCAs != nil {
				tr.TLSClientConfig = &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12}
			}
			hc = &http.Client{Transport: tr, Timeout: 2 * time.Minute}
		}
		dirURL := o.DirectoryURL
		if dirURL == "" {
			dirURL = autocert.DefaultACMEDirectory
		}
		m.acme = &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Cache:      autocert.DirCache(filepath.Join(o.Dir, "acme")),
			HostPolicy: m.hostPolicy,
			Email:      o.Email,
			Client:     &acme.Client{DirectoryURL: dirURL, HTTPClient: hc},
		}
	}
	return m, nil
}

func defaultBackoff(n int) time.Duration {
	d := backoffMin
	for i := 1; i < n && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

// SetHosts records the host names of app, replacing earlier ones; nil
// hosts forget the app. With acme false (or ACME off in Options) the
// hosts get self-signed certificates only. Wildcard and regular-expression
// names never get ACME certificates: HTTP-01 and TLS-ALPN-01 cannot
// validate them.
func (m *Manager) SetHosts(app string, hosts []string, acme bool) {
	m.mu.Lock()
	if len(hosts) == 0 {
		delete(m.apps, app)
	} else {
		m.apps[app] = appHosts{hosts: slices.Clone(hosts), acme: acme && m.acme != nil}
	}
	before := m.acmeHosts
	m.acmeHosts = map[string]bool{}
	m.exact = map[string]bool{}
	m.wildcards = map[string]bool{}
	for _, a := range m.apps {
		for _, h := range a.hosts {
			h = normalize(h)
			switch {
			case h == "" || strings.HasPrefix(h, "~") || !validName(strings.TrimPrefix(strings.TrimPrefix(h, "*"), ".")):
				// a regular expression or something that is no host name:
				// unknown names get the generic certificate
			case strings.HasPrefix(h, "*."):
				m.wildcards[h] = true
			case strings.HasPrefix(h, "."):
				// nginx: ".example.com" is example.com and *.example.com
				m.wildcards["*"+h] = true
				m.exact[h[1:]] = true
				if a.acme && acmeEligible(h[1:]) {
					m.acmeHosts[h[1:]] = true
				}
			case strings.Contains(h, "*"):
				// "www.example.*" and the like
			default:
				m.exact[h] = true
				if a.acme && acmeEligible(h) {
					m.acmeHosts[h] = true
				}
			}
		}
	}
	grew := false
	for h := range m.acmeHosts {
		if !before[h] {
			grew = true
		}
	}
	m.mu.Unlock()
	if grew {
		select {
		case m.changed <- struct{}{}:
		default:
		}
	}
}

// normalize lower-cases h and drops a trailing dot.
func normalize(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// validName reports whether h is made of DNS labels (letters, digits,
// hyphens, underscores) separated by dots.
func validName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for l := range strings.SplitSeq(h, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// acmeEligible reports whether an ACME CA could issue for h with HTTP-01 or
// TLS-ALPN-01: a name with at least two labels that is not an IP address.
func acmeEligible(h string) bool {
	return strings.Contains(h, ".") && net.ParseIP(h) == nil && !strings.Contains(h, "_")
}

// hostPolicy is autocert's HostPolicy: only the hosts of apps with ACME on.
// autocert's HTTP-01 handler passes the Host header, which may carry a port.
func (m *Manager) hostPolicy(_ context.Context, host string) error {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	m.mu.RLock()
	ok := m.acmeHosts[normalize(host)]
	m.mu.RUnlock()
	if !ok {
		return fmt.Errorf("certs: host %q is not configured for ACME", host)
	}
	return nil
}

// TLSConfig returns the server configuration of the proxy's HTTPS listener.
// Its GetCertificate answers TLS-ALPN-01 challenges, serves ACME
// certificates for the hosts of apps with ACME on (obtaining them on first
// use) and self-signed certificates for everything else, including hosts
// whose ACME certificate could not be obtained.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: m.getCertificate,
		NextProtos:     []string{"h2", "http/1.1", acme.ALPNProto},
		MinVersion:     tls.VersionTLS12,
	}
}

// HTTPHandler returns a handler that answers ACME HTTP-01 challenges under
// /.well-known/acme-challenge/ and passes every other request to h (a nil
// h answers 404).
func (m *Manager) HTTPHandler(h http.Handler) http.Handler {
	if h == nil {
		h = http.NotFoundHandler()
	}
	if m.acme == nil {
		return h
	}
	return m.acme.HTTPHandler(h)
}

func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := normalize(hello.ServerName)
	if m.acme != nil && len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto {
		// a TLS-ALPN-01 validation by the CA
		return m.acme.GetCertificate(hello)
	}
	if c, ok := m.acmeCert(name, hello); ok {
		return c, nil
	}
	return m.selfSignedFor(name)
}

// acmeCert returns the ACME certificate of name when name is an ACME host,
// not in backoff after a failure, and autocert has or gets a certificate.
func (m *Manager) acmeCert(name string, hello *tls.ClientHelloInfo) (*tls.Certificate, bool) {
	if m.acme == nil || name == "" {
		return nil, false
	}
	m.mu.RLock()
	ok := m.acmeHosts[name]
	m.mu.RUnlock()
	if !ok {
		return nil, false
	}
	m.failMu.Lock()
	f, failed := m.failures[name]
	m.failMu.Unlock()
	if failed && m.now().Before(f.until) {
		return nil, false
	}
	c, err := m.acme.GetCertificate(hello)
	m.failMu.Lock()
	defer m.failMu.Unlock()
	if err != nil {
		f = m.failures[name]
		f.n++
		wait := m.backoff(f.n)
		f.until = m.now().Add(wait)
		f.err = err
		m.failures[name] = f
		m.log.Warn("no ACME certificate, serving a self-signed one", "host", name, "err", err,
			"failures", f.n, "retry_in", wait.String())
		return nil, false
	}
	if failed {
		m.log.Info("ACME certificate obtained", "host", name, "after_failures", f.n)
		delete(m.failures, name)
	}
	return c, true
}

// Run keeps a certificate loaded for every ACME host: at start, when hosts
// are added and every minute it asks autocert for the certificate of each
// host that is not in backoff, which reads it from the cache (arming
// autocert's renewal) or obtains it. It returns nil when ctx ends; an
// issuance in flight at that moment finishes in the background.
func (m *Manager) Run(ctx context.Context) error {
	if m.acme == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(prefetchEvery)
	defer t.Stop()
	var running atomic.Bool
	for {
		if running.CompareAndSwap(false, true) {
			go func() {
				defer running.Store(false)
				m.prefetch(ctx)
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.changed:
		}
	}
}

func (m *Manager) prefetch(ctx context.Context) {
	m.mu.RLock()
	hosts := make([]string, 0, len(m.acmeHosts))
	for h := range m.acmeHosts {
		hosts = append(hosts, h)
	}
	m.mu.RUnlock()
	slices.Sort(hosts)
	for _, h := range hosts {
		if ctx.Err() != nil {
			return
		}
		m.acmeCert(h, &tls.ClientHelloInfo{
			ServerName:        h,
			SupportedProtos:   []string{"h2", "http/1.1"},
			SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
			SupportedCurves:   []tls.CurveID{tls.CurveP256},
			CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
			SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
		})
	}
}
