package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/deploy"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/service"
	"github.com/piku/piku/proxy"
)

// letsEncrypt is the ACME directory the daemon uses unless told another.
const letsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// systemdUnit is where `piku service install` puts the unit.
const systemdUnit = "/etc/systemd/system/piku.service"

// resolver looks host names up; net.DefaultResolver, or a fake in tests.
type resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// appChecks are the checks of each deployed app that users lose hours on
// (piku#401): its host names resolve to this machine, the programs its
// runtime's build runs are installed; and, when an app has host names
// (so the daemon asks for certificates), the ACME directory answers.
func appChecks(root layout.Root, res resolver, local []net.IP) []DoctorCheck {
	apps, err := root.Apps()
	if err != nil {
		return []DoctorCheck{{Name: "apps", Detail: err.Error()}}
	}
	var out []DoctorCheck
	certs := false
	for _, app := range apps {
		a, err := appconfig.Load(root, app)
		if err != nil {
			out = append(out, DoctorCheck{Name: "app " + app, Detail: err.Error()})
			continue
		}
		names, _ := a.Env.Get("NGINX_SERVER_NAME")
		hosts, err := proxy.ParseHosts(names)
		if err != nil {
			out = append(out, DoctorCheck{Name: "app " + app + ": NGINX_SERVER_NAME", Detail: err.Error()})
		}
		for _, h := range hosts {
			if strings.HasPrefix(h, "*") {
				continue // a wildcard names no one host to look up
			}
			certs = true
			out = append(out, hostCheck(app, h, res, local))
		}
		rt := deploy.Detect(a.Dir, a.Procfile)
		for _, tool := range rt.Tools() {
			ch := DoctorCheck{Name: "app " + app + ": " + tool}
			if p, err := exec.LookPath(tool); err == nil {
				ch.OK, ch.Detail = true, p
			} else {
				ch.Detail = fmt.Sprintf("not installed: its %s app (%s) is built with it", rt.Name, rt.Trigger)
			}
			out = append(out, ch)
		}
	}
	if certs {
		out = append(out, acmeCheck())
	}
	return out
}

// hostCheck says whether host resolves to an address of this machine.
func hostCheck(app, host string, res resolver, local []net.IP) DoctorCheck {
	ch := DoctorCheck{Name: "app " + app + ": host " + host}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := res.LookupHost(ctx, host)
	if err != nil {
		ch.Detail = "does not resolve: point its DNS at this server (" + err.Error() + ")"
		return ch
	}
	for _, a := range addrs {
		ip := net.ParseIP(a)
		if ip != nil && slices.ContainsFunc(local, ip.Equal) {
			ch.OK, ch.Detail = true, "resolves to "+a+", an address of this machine"
			return ch
		}
	}
	ch.Detail = "resolves to " + strings.Join(addrs, ", ") + ", none of them an address of this machine: its requests go elsewhere, and no certificate can be had for it"
	return ch
}

// localAddrs are this machine's addresses.
func localAddrs() []net.IP {
	addrs, _ := net.InterfaceAddrs()
	var out []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, n.IP)
		}
	}
	return out
}

// acmeCheck says whether the ACME directory the daemon uses answers,
// unless ACME is off (PIKU_ACME=false).
func acmeCheck() DoctorCheck {
	ch := DoctorCheck{Name: "ACME directory"}
	switch strings.ToLower(os.Getenv("PIKU_ACME")) {
	case "false", "0", "no", "off":
		ch.OK, ch.Detail = true, "off (PIKU_ACME=false): apps' certificates are not asked for"
		return ch
	}
	url := letsEncrypt
	for _, k := range []string{"PIKU_ACME_CA", "ACME_ROOT_CA"} {
		if v := os.Getenv(k); v != "" {
			url = v
			break
		}
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		ch.Detail = url + ": " + err.Error()
		return ch
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		ch.Detail = fmt.Sprintf("%s: %s", url, resp.Status)
		return ch
	}
	ch.OK, ch.Detail = true, url+" answers"
	return ch
}

// unitCheck says whether the service unit installed at path is the one
// `piku service install` would write now for this binary and root.
func unitCheck(path, rootDir string) DoctorCheck {
	ch := DoctorCheck{Name: "service unit"}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		ch.OK, ch.Detail = true, "not installed (the daemon is run by hand; `piku service install` makes it a system service)"
		return ch
	}
	if err != nil {
		ch.Detail = err.Error()
		return ch
	}
	user := "piku"
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "User="); ok {
			user = v
		}
	}
	exe, err := os.Executable()
	if err == nil {
		if p, err := filepath.EvalSymlinks(exe); err == nil {
			exe = p
		}
	}
	want, err := service.Unit(service.Config{Executable: exe, User: user, Root: rootDir})
	if err != nil {
		ch.Detail = err.Error()
		return ch
	}
	if string(b) != want {
		ch.Detail = path + " differs from what this piku installs (a newer binary's settings, or edited by hand): run `piku service install` again"
		return ch
	}
	ch.OK, ch.Detail = true, path+" is current"
	return ch
}
