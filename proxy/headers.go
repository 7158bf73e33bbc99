package proxy

import (
	"net/http"
	"strings"
)

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

// dropClientHeaders removes from h what a client must not be able to say
// to a backend: the spoofable headers, and every header whose name has an
// underscore. CGI-style servers (uWSGI, PHP, Rack) turn both "-" and "_"
// into "_", so "X_Forwarded_For" would reach the app as the forwarded
// address; nginx drops such names by default (underscores_in_headers off),
// and so does piku unless the app sets NGINX_UNDERSCORES_IN_HEADERS.
func dropClientHeaders(h http.Header, underscores bool) {
	for _, k := range spoofable {
		h.Del(k)
	}
	if underscores {
		return
	}
	for k := range h {
		if strings.IndexByte(k, '_') >= 0 {
			delete(h, k)
		}
	}
}
