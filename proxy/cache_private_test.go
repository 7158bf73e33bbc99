package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestCacheKeepsPrivateResponsesPrivate checks the shared cache follows
// RFC 9111: what one client got with its credentials, or what the app
// marked private, is never served to another client.
func TestCacheKeepsPrivateResponsesPrivate(t *testing.T) {
	var n atomic.Int64
	backend := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if v := q.Get("cc"); v != "" {
			w.Header().Set("Cache-Control", v)
		}
		if q.Get("cookie") != "" {
			w.Header().Set("Set-Cookie", "session=secret")
		}
		who := "anonymous"
		if a := r.Header.Get("Authorization"); a != "" {
			who = "user " + a
		} else if c := r.Header.Get("Cookie"); c != "" {
			who = "user " + c
		}
		fmt.Fprintf(w, "%s #%d", who, n.Add(1))
	})
	_, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend},
		Cache: &CacheConfig{Prefixes: []string{"/"}, Size: 1 << 20, Time: time.Hour, Control: time.Minute, Expiry: time.Hour}})
	tests := []struct {
		name   string
		path   string
		header []string // of the first, private request
		shared bool     // may the second, anonymous client get the first answer
	}{
		{"authorization", "/a", []string{"Authorization", "Bearer alice"}, false},
		{"cookie", "/b", []string{"Cookie", "session=alice"}, false},
		{"set-cookie", "/c?cookie=1", nil, false},
		{"private", "/d?cc=private", nil, false},
		{"private with max-age", "/e?cc=private,+max-age=600", nil, false},
		{"no-store", "/f?cc=no-store", nil, false},
		{"no-store upper case", "/g?cc=No-Store", nil, false},
		{"authorization with public", "/h?cc=public,+max-age=60", []string{"Authorization", "Bearer alice"}, true},
		{"authorization with s-maxage", "/i?cc=s-maxage=60", []string{"Authorization", "Bearer alice"}, true},
		{"plain", "/j", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := do(t, nil, addr, "GET", "app.test", tt.path, nil, tt.header...)
			second := do(t, nil, addr, "GET", "app.test", tt.path, nil)
			if got := second.body == first.body; got != tt.shared {
				t.Errorf("first %q, then anonymous %q (X-Cache %s): shared = %v, want %v",
					first.body, second.body, second.header.Get("X-Cache"), got, tt.shared)
			}
			if !tt.shared && strings.Contains(second.body, "user") {
				t.Errorf("anonymous client got %q", second.body)
			}
		})
	}
	// A request with credentials is not answered from the cache either:
	// the app decides what this user sees.
	do(t, nil, addr, "GET", "app.test", "/k", nil)
	if r := do(t, nil, addr, "GET", "app.test", "/k", nil, "Cookie", "session=bob"); !strings.HasPrefix(r.body, "user session=bob") {
		t.Errorf("client with a cookie got %q from the cache", r.body)
	}
}
