package proxy

import (
	"fmt"
	"net"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Route is what the proxy knows about one app: the host names it answers,
// the web instances behind them and the nginx-like settings piku reads from
// the app's ENV (NGINX_* keys).
type Route struct {
	// App is the app's name; it identifies the route.
	App string
	// Hosts are the host names the app answers, lower case, from
	// NGINX_SERVER_NAME. "*.example.com" matches every subdomain of
	// example.com (not example.com itself).
	Hosts []string
	// Backends are the addresses of the app's web instances
	// ("127.0.0.1:20001"), balanced round robin.
	Backends []string
	// StaticSite is the directory of the app's `static` Procfile entry:
	// the whole site is served from it. "" = none.
	StaticSite string
	// StaticPaths map URL prefixes to directories (NGINX_STATIC_PATHS).
	StaticPaths []StaticPath
	// CatchAll is the URL path served when a static lookup finds nothing
	// (NGINX_CATCH_ALL), such as "/index.html" for single-page apps.
	CatchAll string
	// HTTPSOnly redirects plain HTTP to HTTPS with a 301, except ACME
	// HTTP-01 challenges (NGINX_HTTPS_ONLY).
	HTTPSOnly bool
	// CloudflareACL lets in only Cloudflare's addresses, loopback and
	// AllowIPs (NGINX_CLOUDFLARE_ACL); the client address is then taken
	// from CF-Connecting-IP.
	CloudflareACL bool
	// AllowIPs are further addresses or CIDR prefixes let in with
	// CloudflareACL.
	AllowIPs []string
	// AllowGit serves paths containing "/.git" (NGINX_ALLOW_GIT_FOLDERS);
	// by default they get 403.
	AllowGit bool
	// UnderscoresInHeaders passes request headers whose names contain an
	// underscore to the backends (NGINX_UNDERSCORES_IN_HEADERS); by
	// default they are dropped, as nginx does, since CGI-style servers
	// read "X_Forwarded_For" as X-Forwarded-For.
	UnderscoresInHeaders bool
	// Compress compresses proxied responses with gzip or zstd by nginx's
	// rules (compress.go); RouteFromEnv turns it on unless NGINX_GZIP is
	// false.
	Compress bool
	// NoAccessLog is set by NGINX_ACCESS_LOG=off: the caller leaves
	// AccessLog empty.
	NoAccessLog bool
	// Cache is non-nil when NGINX_CACHE_PREFIXES is set.
	Cache *CacheConfig
	// AccessLog is the path of the app's access log; "" = none.
	AccessLog string
	// IPv4Address and IPv6Address restrict the local addresses the app is
	// served on, as piku's nginx `listen` lines did (NGINX_IPV4_ADDRESS,
	// NGINX_IPV6_ADDRESS). Unset or unspecified (0.0.0.0, ::) = any.
	IPv4Address, IPv6Address net.IP
	// Maintenance, when set, answers every request with a 503
	// (maintenance.go): the app is in maintenance.
	Maintenance *Maintenance
	// TrackActivity records the time of the app's last request, for
	// Server.LastRequest (an app that sleeps when idle).
	TrackActivity bool
	// Hold bounds the requests held while the app is held and has no
	// backend (hold.go; PIKU_HOLD_*).
	Hold HoldConfig
	// DisableIPv6 stops serving the app to requests that reach piku over
	// IPv6 (DISABLE_IPV6).
	DisableIPv6 bool
	// MaxBodySize bounds a request body (NGINX_CLIENT_MAX_BODY_SIZE,
	// nginx's client_max_body_size); a larger one gets 413. RouteFromEnv
	// sets DefaultMaxBodySize when the key is unset; 0 is no bound.
	MaxBodySize int64
	// StreamRequests sends request bodies to the app as they arrive
	// (NGINX_PROXY_REQUEST_BUFFERING=off); by default a body is read
	// whole before the app is called (spool.go).
	StreamRequests bool
	// StreamResponses writes the app's responses to the client only as
	// fast as the client reads them (NGINX_PROXY_BUFFERING=off); by
	// default a response is read from the app as fast as it sends it
	// (spool.go).
	StreamResponses bool
}

// DefaultMaxBodySize is the request body bound of an app that does not
// set NGINX_CLIENT_MAX_BODY_SIZE: 100 MiB, where nginx has 1 MiB (docs/PROXY.md
// says why).
const DefaultMaxBodySize = 100 << 20

// servesOn reports whether the route answers requests that arrived on the
// local address local (nil: unknown, answered).
func (r *Route) servesOn(local net.IP) bool {
	if local == nil {
		return true
	}
	if v4 := local.To4(); v4 != nil {
		return r.IPv4Address == nil || r.IPv4Address.IsUnspecified() || r.IPv4Address.Equal(v4)
	}
	if r.DisableIPv6 {
		return false
	}
	return r.IPv6Address == nil || r.IPv6Address.IsUnspecified() || r.IPv6Address.Equal(local)
}

// parseListenIP reads NGINX_IPV4_ADDRESS or NGINX_IPV6_ADDRESS: an address
// of the family, IPv6 with or without brackets.
func parseListenIP(env map[string]string, key string, v6 bool) (net.IP, error) {
	v := strings.TrimSpace(env[key])
	if v == "" {
		return nil, nil
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(v, "["), "]"))
	if ip == nil || (ip.To4() != nil) == v6 {
		family := "an IPv4"
		if v6 {
			family = "an IPv6"
		}
		return nil, fmt.Errorf("%s: %q is not %s address", key, v, family)
	}
	return ip, nil
}

// StaticPath maps the URL prefix Prefix ("/static") to the directory Dir.
type StaticPath struct {
	Prefix string
	Dir    string
}

// CacheConfig configures the response cache of a route. The cache is kept
// in memory; Path is accepted for compatibility with piku's
// NGINX_CACHE_PATH and is not written to.
type CacheConfig struct {
	// Path is NGINX_CACHE_PATH; unused by the in-memory cache.
	Path string
	// Prefixes are the URL prefixes whose responses are cached, each
	// starting with "/" (NGINX_CACHE_PREFIXES).
	Prefixes []string
	// Size bounds the bytes held (NGINX_CACHE_SIZE, in MiB; default 1 MiB).
	Size int64
	// Time is how long a 200 response is kept (NGINX_CACHE_TIME;
	// default 3600s).
	Time time.Duration
	// Redirects is how long 301, 302, 303, 307 and 308 responses are kept
	// (NGINX_CACHE_REDIRECTS); 0, the default, does not cache them.
	Redirects time.Duration
	// Any is how long responses with any other status are kept
	// (NGINX_CACHE_ANY); 0, the default, does not cache them.
	Any time.Duration
	// Control is the max-age of the "Cache-Control: public, max-age=N"
	// header added to cacheable responses that carry none
	// (NGINX_CACHE_CONTROL; default 3600s; 0 adds nothing).
	Control time.Duration
	// Expiry drops entries not used for that long (NGINX_CACHE_EXPIRY;
	// default 86400s).
	Expiry time.Duration
}

// RouteFromEnv reads piku's NGINX_* keys of app, whose checkout is dir,
// into a Route. Backends, StaticSite and AccessLog are left for the caller.
// The error names the key at fault.
func RouteFromEnv(app, dir string, env map[string]string) (Route, error) {
	r := Route{App: app}
	hosts, err := ParseHosts(env["NGINX_SERVER_NAME"])
	if err != nil {
		return Route{}, fmt.Errorf("NGINX_SERVER_NAME: %w", err)
	}
	r.Hosts = hosts
	for key, dst := range map[string]*bool{
		"NGINX_HTTPS_ONLY":             &r.HTTPSOnly,
		"NGINX_CLOUDFLARE_ACL":         &r.CloudflareACL,
		"NGINX_ALLOW_GIT_FOLDERS":      &r.AllowGit,
		"DISABLE_IPV6":                 &r.DisableIPv6,
		"NGINX_UNDERSCORES_IN_HEADERS": &r.UnderscoresInHeaders,
	} {
		if *dst, err = parseBool(env[key]); err != nil {
			return Route{}, fmt.Errorf("%s: %w", key, err)
		}
	}
	if r.Compress, err = parseBoolOn(env["NGINX_GZIP"]); err != nil {
		return Route{}, fmt.Errorf("NGINX_GZIP: %w", err)
	}
	logs, err := parseBoolOn(env["NGINX_ACCESS_LOG"])
	if err != nil {
		return Route{}, fmt.Errorf("NGINX_ACCESS_LOG: %w", err)
	}
	r.NoAccessLog = !logs
	if r.IPv4Address, err = parseListenIP(env, "NGINX_IPV4_ADDRESS", false); err != nil {
		return Route{}, err
	}
	if r.IPv6Address, err = parseListenIP(env, "NGINX_IPV6_ADDRESS", true); err != nil {
		return Route{}, err
	}
	if r.StaticPaths, err = ParseStaticPaths(env["NGINX_STATIC_PATHS"], dir); err != nil {
		return Route{}, fmt.Errorf("NGINX_STATIC_PATHS: %w", err)
	}
	if c := strings.TrimSpace(env["NGINX_CATCH_ALL"]); c != "" {
		if strings.ContainsAny(c, " \t\n\x00") {
			return Route{}, fmt.Errorf("NGINX_CATCH_ALL: %q is not a URL path", c)
		}
		r.CatchAll = path.Clean("/" + c)
	}
	if r.MaxBodySize, err = parseSize(env, "NGINX_CLIENT_MAX_BODY_SIZE", DefaultMaxBodySize); err != nil {
		return Route{}, err
	}
	for key, dst := range map[string]*bool{
		"NGINX_PROXY_REQUEST_BUFFERING": &r.StreamRequests,
		"NGINX_PROXY_BUFFERING":         &r.StreamResponses,
	} {
		on, err := parseBoolOn(env[key])
		if err != nil {
			return Route{}, fmt.Errorf("%s: %w", key, err)
		}
		*dst = !on
	}
	if r.Hold, err = holdFromEnv(env); err != nil {
		return Route{}, err
	}
	if p := strings.TrimSpace(env["NGINX_CACHE_PREFIXES"]); p != "" {
		c := &CacheConfig{Path: env["NGINX_CACHE_PATH"]}
		for _, item := range strings.Split(p, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			if strings.ContainsAny(item, " \t\n\x00") {
				return Route{}, fmt.Errorf("NGINX_CACHE_PREFIXES: %q is not a URL prefix", item)
			}
			c.Prefixes = append(c.Prefixes, "/"+strings.TrimPrefix(item, "/"))
		}
		mb, err := parseInt(env, "NGINX_CACHE_SIZE", 1)
		if err != nil {
			return Route{}, err
		}
		if mb == 0 {
			return Route{}, fmt.Errorf("NGINX_CACHE_SIZE: must be at least 1")
		}
		c.Size = mb << 20
		for _, d := range []struct {
			key string
			def int64
			dst *time.Duration
		}{
			{"NGINX_CACHE_TIME", 3600, &c.Time},
			{"NGINX_CACHE_REDIRECTS", 0, &c.Redirects},
			{"NGINX_CACHE_ANY", 0, &c.Any},
			{"NGINX_CACHE_CONTROL", 3600, &c.Control},
			{"NGINX_CACHE_EXPIRY", 86400, &c.Expiry},
		} {
			n, err := parseInt(env, d.key, d.def)
			if err != nil {
				return Route{}, err
			}
			*d.dst = time.Duration(n) * time.Second
		}
		if len(c.Prefixes) > 0 {
			r.Cache = c
		}
	}
	return r, nil
}

// ParseHosts splits NGINX_SERVER_NAME on commas and spaces into lower-case
// host names. A name may start with "*." to match every subdomain.
func ParseHosts(s string) ([]string, error) {
	var hosts []string
	seen := map[string]bool{}
	for _, h := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		h = strings.TrimSuffix(strings.ToLower(h), ".")
		name := strings.TrimPrefix(h, "*.")
		if name == "" || len(h) > 253 {
			return nil, fmt.Errorf("%q is not a host name", h)
		}
		for _, label := range strings.Split(name, ".") {
			if label == "" || len(label) > 63 {
				return nil, fmt.Errorf("%q is not a host name", h)
			}
			for _, c := range label {
				if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
					return nil, fmt.Errorf("%q is not a host name", h)
				}
			}
		}
		if !seen[h] {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	return hosts, nil
}

// ParseStaticPaths reads NGINX_STATIC_PATHS, "/url:path,/url2:path2", where
// each path is relative to dir (and may not lead out of it with "..") or
// absolute.
func ParseStaticPaths(s, dir string) ([]StaticPath, error) {
	var out []StaticPath
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		prefix, p, ok := strings.Cut(item, ":")
		if !ok || p == "" {
			return nil, fmt.Errorf("%q: want /url:path", item)
		}
		if !strings.HasPrefix(prefix, "/") || strings.ContainsAny(prefix, " \t\x00") {
			return nil, fmt.Errorf("%q: URL prefix must start with /", item)
		}
		if strings.ContainsRune(p, 0) {
			return nil, fmt.Errorf("%q: bad path", item)
		}
		prefix = path.Clean(prefix)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
			if rel, err := filepath.Rel(dir, p); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
				return nil, fmt.Errorf("%q: a relative path must stay inside the app's folder", item)
			}
		}
		out = append(out, StaticPath{Prefix: prefix, Dir: filepath.Clean(p)})
	}
	return out, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "0", "false", "no", "off":
		return false, nil
	case "1", "true", "yes", "on":
		return true, nil
	}
	return false, fmt.Errorf("%q is not true or false", s)
}

// parseBoolOn is parseBool for a setting that is on when unset.
func parseBoolOn(s string) (bool, error) {
	if strings.TrimSpace(s) == "" {
		return true, nil
	}
	return parseBool(s)
}

// parseSize reads a size in nginx's syntax: bytes, or a number with k or
// m (KiB, MiB; any case), or g (GiB), as nginx's client_max_body_size.
func parseSize(env map[string]string, key string, def int64) (int64, error) {
	s := strings.TrimSpace(env[key])
	if s == "" {
		return def, nil
	}
	num, shift := s, 0
	switch s[len(s)-1] {
	case 'k', 'K':
		num, shift = s[:len(s)-1], 10
	case 'm', 'M':
		num, shift = s[:len(s)-1], 20
	case 'g', 'G':
		num, shift = s[:len(s)-1], 30
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > 1<<(62-shift) || num != strings.TrimLeft(num, "+") {
		return 0, fmt.Errorf("%s: %q is not a size (bytes, or a number with k, m or g, as 10m; 0 = no limit)", key, s)
	}
	return n << shift, nil
}

func parseInt(env map[string]string, key string, def int64) (int64, error) {
	s := strings.TrimSpace(env[key])
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 1<<31 {
		return 0, fmt.Errorf("%s: %q is not a number of the right size", key, s)
	}
	return n, nil
}
