package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/piku/piku/internal/layout"
)

const (
	// selfSignedValidity is the lifetime of a self-signed certificate.
	selfSignedValidity = 365 * 24 * time.Hour
	// selfSignedRenewBefore: a self-signed certificate this close to its
	// end is replaced by a new one.
	selfSignedRenewBefore = 7 * 24 * time.Hour
	// genericKey is the file key of the certificate for unknown names and
	// handshakes without SNI. Host names cannot start with "_default".
	genericKey  = ""
	genericFile = "_default.pem"
)

// selfSignedFor returns the self-signed certificate for the TLS server
// name: the host's own when name is a host of some app, the certificate of
// the wildcard pattern it falls under, or the generic one.
func (m *Manager) selfSignedFor(name string) (*tls.Certificate, error) {
	san := m.selfSignedName(name)
	m.selfMu.Lock()
	defer m.selfMu.Unlock()
	now := m.now()
	if c := m.self[san]; c != nil && fresh(c, now) {
		return c, nil
	}
	path := m.selfSignedPath(san)
	if c, err := loadPEM(path); err == nil && fresh(c, now) && matches(c, san) {
		m.self[san] = c
		return c, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Warn("unreadable self-signed certificate, making a new one", "file", path, "err", err)
	}
	pemData, err := generate(san, now)
	if err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(pemData, pemData)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	if err := layout.WriteFile(path, pemData, 0o600); err != nil {
		// still serve it; the next start makes another one
		m.log.Warn("cannot store self-signed certificate", "file", path, "err", err)
	}
	m.log.Info("self-signed certificate created", "name", displayName(san), "expires", c.Leaf.NotAfter.Format(time.DateOnly))
	m.self[san] = &c
	return &c, nil
}

// selfSignedName maps a TLS server name to the name the self-signed
// certificate is made for: name itself for a known host, the wildcard
// pattern covering it, or genericKey.
func (m *Manager) selfSignedName(name string) string {
	if name == "" {
		return genericKey
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.exact[name] {
		return name
	}
	// nginx wildcards match any depth: a.b.example.com matches *.example.com;
	// the most specific pattern wins
	for i := strings.IndexByte(name, '.'); i >= 0; {
		if p := "*" + name[i:]; m.wildcards[p] {
			return p
		}
		j := strings.IndexByte(name[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return genericKey
}

func (m *Manager) selfSignedPath(san string) string {
	if san == genericKey {
		return filepath.Join(m.selfDir, genericFile)
	}
	// names are validated: letters, digits, '-', '_', '.', and a leading "*"
	return filepath.Join(m.selfDir, strings.Replace(san, "*", "_wildcard", 1)+".pem")
}

func displayName(san string) string {
	if san == genericKey {
		return "(default)"
	}
	return san
}

func fresh(c *tls.Certificate, now time.Time) bool {
	return c.Leaf != nil && now.Before(c.Leaf.NotAfter.Add(-selfSignedRenewBefore)) && !now.Before(c.Leaf.NotBefore)
}

func matches(c *tls.Certificate, san string) bool {
	if san == genericKey {
		return len(c.Leaf.DNSNames) == 0
	}
	return len(c.Leaf.DNSNames) == 1 && c.Leaf.DNSNames[0] == san
}

func loadPEM(path string) (*tls.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(data, data)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// generate makes an ECDSA P-256 key and a self-signed certificate for san
// (none for the generic one), valid for selfSignedValidity, and returns
// both PEM-encoded in one block of text.
func generate(san string, now time.Time) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "piku self-signed", Organization: []string{"piku"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if san != genericKey {
		tmpl.Subject.CommonName = san
		tmpl.DNSNames = []string{san}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	return out, nil
}
