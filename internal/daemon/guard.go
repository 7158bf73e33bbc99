package daemon

import (
	"cmp"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/piku/piku/procfile"
	"github.com/piku/piku/proxy"
)

// keyBindAddress is where an app's instances listen; see bindAddress.
const keyBindAddress = "BIND_ADDRESS"

// checkStaticDirs refuses static folders of app (NGINX_STATIC_PATHS, the
// `static` entry) that lie under PIKU_ROOT outside the app's own folders:
// served as files, they would hand out other apps' code and every app's
// secrets. Symbolic links are followed, so a link in the checkout does not
// get around it.
func (d *Daemon) checkStaticDirs(app string, route proxy.Route, static string) error {
	root := resolve(d.root.Dir())
	var own []string
	for _, f := range d.root.AppFolders(app) {
		own = append(own, resolve(f))
	}
	check := func(what, dir string) error {
		p := resolve(dir)
		if !within(p, root) {
			return nil
		}
		for _, f := range own {
			if within(p, f) {
				return nil
			}
		}
		return fmt.Errorf("app %q: %s: %s is inside PIKU_ROOT but outside the app's own folders", app, what, dir)
	}
	for _, sp := range route.StaticPaths {
		if err := check("NGINX_STATIC_PATHS "+sp.Prefix, sp.Dir); err != nil {
			return err
		}
	}
	if static != "" {
		if err := check("Procfile static entry", static); err != nil {
			return err
		}
	}
	return nil
}

// resolve returns p absolute with its symbolic links followed, as far as
// they exist.
func resolve(p string) string {
	p = filepath.Clean(p)
	rest := ""
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest)
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// checkPinnedPort refuses an app's PORT pin on one of piku's own
// listeners: the readiness check would reach the proxy and succeed, and
// the proxy would then forward every request to itself.
func (d *Daemon) checkPinnedPort(app string, port int) error {
	addrs := []string{d.cfg.HTTPAddr, d.cfg.HTTPSAddr}
	if d.proxy != nil {
		httpAddr, httpsAddr := d.proxy.Addrs()
		addrs = append(addrs, httpAddr, httpsAddr)
	}
	for _, a := range addrs {
		if a == "" {
			continue
		}
		if _, p, err := net.SplitHostPort(a); err == nil && p == strconv.Itoa(port) {
			return fmt.Errorf("app %q: PORT=%d is piku's own listener (%s); pick another port or leave PORT unset", app, port, a)
		}
	}
	return nil
}

// checkHosts refuses host names another app already serves: the app that
// has them keeps them, whatever the names sort like.
func (d *Daemon) checkHosts(app string, hosts []string) error {
	if owner, host := d.table.HostOwner(app, hosts); owner != "" {
		return hostTakenError(app, host, owner)
	}
	return nil
}

// bindAddress makes the app's BIND_ADDRESS agree with the address the
// daemon probes and proxies its instances on (--bind): unset or piku's
// default 127.0.0.1 becomes that address; the address itself and an
// unspecified one (0.0.0.0, ::) are kept; anything else could never be
// reached, and is refused.
func (d *Daemon) bindAddress(app string, env *procfile.Env) error {
	bind := cmp.Or(d.cfg.Bind, "127.0.0.1")
	v, _ := env.Get(keyBindAddress)
	v = strings.TrimSpace(v)
	ip := net.ParseIP(strings.Trim(v, "[]"))
	switch {
	case v == "" || v == "127.0.0.1" || v == bind:
		env.Set(keyBindAddress, bind)
	case ip != nil && (ip.IsUnspecified() || ip.Equal(net.ParseIP(bind))):
	default:
		return fmt.Errorf("app %q: BIND_ADDRESS=%q: the daemon reaches instances on %s (--bind); leave BIND_ADDRESS unset, or set it to %s or 0.0.0.0",
			app, v, bind, bind)
	}
	return nil
}
