package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// reqInfo is what the handler learnt of a request, handed to the
// forwarder, the upstream client and the error page.
type reqInfo struct {
	route  *route
	start  time.Time
	client string // the client's address: the peer, or CF-Connecting-IP behind Cloudflare
	peer   string // the TCP peer's address
	secure bool
	port   string      // the port the request arrived on
	err    error       // the last dial error, for the error page
	obs    AppObserver // nil without an Observer
	held   bool        // the request waited in the hold queue (hold.go)
	// heldFor is how long the request waited in the hold queue, for the
	// access log (its app starting, waking, or paused).
	heldFor time.Duration
	// lw and cw are the request's log and compression writers, made with
	// reqInfo in one allocation (when the route logs or is observed, and
	// when it compresses).
	lw logWriter
	cw compressWriter
}

// deployedBy is the X-Deployed-By header's value, shared by every
// response (a header that is added to gets a slice of its own).
var deployedBy = []string{"Piku"}

// acmePrefix is the path of ACME HTTP-01 challenges, never redirected.
const acmePrefix = "/.well-known/acme-challenge/"

func (s *Server) handler(secure bool, port string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, secure, port)
	})
}

// localIP is the address of piku the request arrived on.
func localIP(r *http.Request) net.IP {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		return a.IP
	}
	return nil
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, secure bool, port string) {
	start := time.Now()
	w.Header()["X-Deployed-By"] = deployedBy
	rt := s.table.Load().lookup(r.Host)
	if rt != nil && !rt.servesOn(localIP(r)) {
		rt = nil
	}
	if rt == nil {
		http.Error(w, "404 not found: no app answers this host name", http.StatusNotFound)
		return
	}
	if rt.activity != nil && !strings.HasPrefix(r.URL.Path, acmePrefix) {
		rt.activity.begin()
		defer rt.activity.end()
	}
	peer := hostOf(r.RemoteAddr)
	info := &reqInfo{route: rt, start: start, client: peer, peer: peer, secure: secure, port: port}
	if rt.log != nil || s.o.Observer != nil {
		info.lw.ResponseWriter = w
		w = &info.lw
	}
	if rt.log != nil {
		defer func() { rt.log.write(r, &info.lw, info, time.Since(start)) }()
	}
	if ao, body := s.observe(r, rt); ao != nil {
		info.obs = ao
		defer func() { observed(ao, r, &info.lw, body, time.Since(start)) }()
	}
	if rt.CloudflareACL {
		ip := net.ParseIP(peer)
		if !rt.allowed(ip, s.isCloudflare) {
			if info.obs != nil {
				info.obs.ACLRefused()
			}
			page(w, http.StatusForbidden)
			return
		}
		if s.isCloudflare(ip) {
			if cf := net.ParseIP(strings.TrimSpace(r.Header.Get("CF-Connecting-IP"))); cf != nil {
				info.client = cf.String()
			}
		}
	}
	if rt.Maintenance != nil {
		serveMaintenance(w, r, rt.Maintenance)
		return
	}
	if rt.HTTPSOnly && !secure && !strings.HasPrefix(r.URL.Path, acmePrefix) {
		http.Redirect(w, r, s.httpsURL(r), http.StatusMovedPermanently)
		return
	}
	if !rt.AllowGit && hasGitSegment(r.URL.Path) {
		page(w, http.StatusForbidden)
		return
	}
	if rt.serveStatic(w, r) {
		return
	}
	if rt.hold != nil && (len(rt.backends) == 0 || rt.hold.paused.Load()) && !strings.HasPrefix(r.URL.Path, acmePrefix) {
		held, done, ok := s.hold(w, r, rt)
		info.heldFor = time.Since(start)
		if !ok {
			return
		}
		defer done()
		rt, info.route, info.held = held, held, true
	}
	if rt.cache != nil && rt.cache.applies(r) {
		hit := rt.cache.serve(w, r, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.forwardCompressed(w, r, info) }))
		if info.obs != nil {
			info.obs.CacheLookup(hit)
		}
		return
	}
	s.forwardCompressed(w, r, info)
}

// forwardCompressed is forward with the answer compressed when the route
// and the response allow it (compress.go). An answer cut short (forward
// panics) is not ended as a compressed stream: the client must not take
// it for a whole one.
func (s *Server) forwardCompressed(w http.ResponseWriter, r *http.Request, info *reqInfo) {
	if !info.route.Compress {
		s.forward(w, r, info)
		return
	}
	if r.Method == http.MethodHead {
		s.forward(w, r, info)
		return
	}
	cw := &info.cw
	s.compressing(cw, w, r)
	s.forward(cw, r, info)
	cw.finish()
}

// httpsURL is r's URL on the HTTPS listener.
func (s *Server) httpsURL(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	p := portOf(s.addrs[1])
	if p == "" {
		p = portOf(s.o.HTTPSAddr)
	}
	if p != "" && p != "443" {
		host += ":" + p
	}
	return "https://" + host + r.URL.RequestURI()
}

// hasGitSegment reports whether p has a segment starting with ".git", as
// nginx's `location ~ /\.git` matched.
func hasGitSegment(p string) bool {
	return strings.Contains(p, "/.git")
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// StatusClientClosed is logged when the client went away before the
// backend answered, as nginx does.
const StatusClientClosed = 499

func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, info *reqInfo, err error) {
	var ne net.Error
	switch {
	case r.Context().Err() != nil:
		w.WriteHeader(StatusClientClosed)
		return
	case info.held && (errors.Is(err, errNoBackend) || isDialError(err)):
		// The app the request waited for did not come up (a wake that
		// failed): unavailable, as when a hold bound runs out.
		s.log.Warn("held request: the app did not come up", "app", info.route.App, "err", err)
		if info.obs != nil {
			info.obs.UpstreamFailed(UpstreamRefused)
		}
		unavailable(w, holdRetryAfter)
	case errors.Is(err, errNoBackend):
		s.log.Warn("no backend", "app", info.route.App, "host", r.Host)
		if info.obs != nil {
			info.obs.UpstreamFailed(UpstreamRefused)
		}
		page(w, http.StatusBadGateway)
	case errors.As(err, &ne) && ne.Timeout() && !isDialError(err):
		s.log.Warn("backend timed out", "app", info.route.App, "err", err)
		if info.obs != nil {
			info.obs.UpstreamFailed(UpstreamTimeout)
		}
		page(w, http.StatusGatewayTimeout)
	default:
		s.log.Warn("backend failed", "app", info.route.App, "err", err)
		if info.obs != nil && isDialError(err) {
			info.obs.UpstreamFailed(UpstreamRefused)
		}
		page(w, http.StatusBadGateway)
	}
}

// page writes a short HTML error page.
func page(w http.ResponseWriter, code int) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(code)
	text := fmt.Sprintf("%d %s", code, http.StatusText(code))
	fmt.Fprintf(w, "<!doctype html>\n<html><head><title>%s</title></head><body><h1>%s</h1><hr><p>piku</p></body></html>\n", text, text)
}
