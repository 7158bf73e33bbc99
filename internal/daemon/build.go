package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/piku/piku/internal/certs"
	"github.com/piku/piku/internal/cron"
	"github.com/piku/piku/proxy"
	"github.com/piku/piku/supervisor"
)

// build creates the daemon's parts.
func (d *Daemon) build() error {
	var err error
	d.sup, err = supervisor.New(supervisor.Options{
		Logger:    d.log.With("part", "supervisor"),
		Router:    router{d},
		Ports:     supervisor.PortRange{Bind: d.cfg.Bind, Min: d.cfg.PortMin, Max: d.cfg.PortMax},
		StateFile: filepath.Join(d.root.RunDir(), "processes.json"),
	})
	if err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	d.certs, err = certs.New(certs.Options{
		Dir:          d.root.CertsDir(),
		Email:        d.cfg.ACMEEmail,
		DirectoryURL: d.cfg.ACMEDirectory,
		ACME:         d.cfg.ACME,
		Logger:       d.log.With("part", "certs"),
	})
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	d.proxy = proxy.New(proxy.Options{
		Logger:    d.log.With("part", "proxy"),
		HTTPAddr:  d.cfg.HTTPAddr,
		HTTPSAddr: d.cfg.HTTPSAddr,
		TLSConfig: d.certs.TLSConfig(),
		HTTPWrap:  d.certs.HTTPHandler,
	})
	d.cron = cron.New(cron.Options{})
	return nil
}

// revision returns the git revision checked out in dir, or "" when dir is
// not a git checkout.
func revision(dir string) string {
	gitDir := filepath.Join(dir, ".git")
	head, err := os.ReadFile(filepath.Join(gitDir, "HEAD"))
	if err != nil {
		return ""
	}
	h := strings.TrimSpace(string(head))
	ref, ok := strings.CutPrefix(h, "ref: ")
	if !ok {
		return h
	}
	if b, err := os.ReadFile(filepath.Join(gitDir, filepath.FromSlash(ref))); err == nil {
		return strings.TrimSpace(string(b))
	}
	packed, err := os.ReadFile(filepath.Join(gitDir, "packed-refs"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(packed), "\n") {
		if sha, name, ok := strings.Cut(line, " "); ok && name == ref {
			return sha
		}
	}
	return ""
}
