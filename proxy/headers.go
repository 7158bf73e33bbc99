package proxy

// spoofable are request headers a client could forge to pose as another
// address or scheme; they are dropped and, for the first ones, set again
// from what the proxy saw. The rest are names some frameworks read the
// scheme or the client's address from (Rails, Django, PHP, Akamai and
// Cloudflare's True-Client-IP); piku never sets them.
var spoofable = []string{
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
	"X-Forwarded-Ssl", "X-Forwarded-Scheme", "X-Real-Ip", "X-Remote-Address",
	"X-Request-Start", "X-Client-Ip", "Forwarded",
	"X-Forwarded-Protocol", "X-Scheme", "X-Url-Scheme", "Front-End-Https", "True-Client-Ip",
}

// spoofableSet is spoofable as a set.
var spoofableSet = func() map[string]bool {
	m := make(map[string]bool, len(spoofable))
	for _, k := range spoofable {
		m[k] = true
	}
	return m
}()

// isSpoofable reports whether the canonical name k is one of spoofable.
// Those fields, and every one whose name has an underscore, are not
// forwarded (writeRequestHead): CGI-style servers (uWSGI, PHP, Rack) turn
// both "-" and "_" into "_", so "X_Forwarded_For" would reach the app as
// the forwarded address; nginx drops such names by default
// (underscores_in_headers off), and so does piku unless the app sets
// NGINX_UNDERSCORES_IN_HEADERS.
func isSpoofable(k string) bool { return spoofableSet[k] }
