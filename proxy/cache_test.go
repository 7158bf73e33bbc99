package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	var hits atomic.Int64
	backend := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/big"):
			w.Write([]byte(strings.Repeat("x", 300<<10)))
		case r.URL.Path == "/api/private":
			w.Header().Set("Cache-Control", "private")
			fmt.Fprint(w, n)
		case r.URL.Path == "/api/cookie":
			http.SetCookie(w, &http.Cookie{Name: "a", Value: "b"})
			fmt.Fprint(w, n)
		case r.URL.Path == "/api/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case r.URL.Path == "/api/missing":
			http.NotFound(w, r)
		default:
			fmt.Fprint(w, n)
		}
	})
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend},
		Cache: &CacheConfig{Prefixes: []string{"/api"}, Size: 1 << 20, Time: time.Hour, Control: time.Minute, Expiry: time.Hour}})
	get := func(path string) resp { return do(t, nil, addr, "GET", "app.test", path, nil) }

	first := get("/api/a")
	if first.header.Get("X-Cache") != "MISS" || first.header.Get("Cache-Control") != "public, max-age=60" {
		t.Fatalf("first: %v", first.header)
	}
	second := get("/api/a")
	if second.header.Get("X-Cache") != "HIT" || second.body != first.body || second.header.Get("Cache-Control") != "public, max-age=60" {
		t.Fatalf("second: %v %q, want HIT %q", second.header, second.body, first.body)
	}
	if r := do(t, nil, addr, "HEAD", "app.test", "/api/a", nil); r.header.Get("X-Cache") != "HIT" || r.body != "" {
		t.Errorf("HEAD: %v", r.header)
	}
	if r := get("/api/a?v=2"); r.header.Get("X-Cache") != "MISS" || r.body == first.body {
		t.Errorf("query string shares an entry: %v %q", r.header, r.body)
	}
	if r := get("/other"); r.header.Get("X-Cache") != "" {
		t.Errorf("outside the prefixes: X-Cache %q", r.header.Get("X-Cache"))
	}
	for _, p := range []string{"/api/private", "/api/cookie", "/api/moved", "/api/missing"} {
		a, b := get(p), get(p)
		if b.header.Get("X-Cache") != "MISS" || a.code == 200 && a.body == b.body {
			t.Errorf("%s cached: %v", p, b.header)
		}
	}

	// The size bound: four 300 KiB bodies do not fit in 1 MiB.
	for i := range 4 {
		get(fmt.Sprintf("/api/big%d", i))
	}
	c := s.table.Load().apps["app"].cache
	n, size := c.Len()
	if size > 1<<20 || n == 0 {
		t.Errorf("cache holds %d entries of %d bytes, bound 1 MiB", n, size)
	}
	if r := get("/api/big0"); r.header.Get("X-Cache") != "MISS" {
		t.Errorf("the least recently used entry was kept: %v", r.header.Get("X-Cache"))
	}
	if r := get("/api/big3"); r.header.Get("X-Cache") != "HIT" {
		t.Errorf("the newest entry was dropped: %v", r.header.Get("X-Cache"))
	}
}

func TestCacheRedirectsAndAny(t *testing.T) {
	backend := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/x", http.StatusMovedPermanently)
			return
		}
		http.NotFound(w, r)
	})
	_, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend},
		Cache: &CacheConfig{Prefixes: []string{"/"}, Size: 1 << 20, Time: time.Hour, Redirects: time.Hour, Any: time.Hour}})
	for _, p := range []string{"/moved", "/missing"} {
		do(t, nil, addr, "GET", "app.test", p, nil)
		if r := do(t, nil, addr, "GET", "app.test", p, nil); r.header.Get("X-Cache") != "HIT" {
			t.Errorf("%s: %v", p, r.header)
		}
	}
}

func TestCacheExpires(t *testing.T) {
	c := newCache(CacheConfig{Size: 1 << 20, Time: time.Minute, Expiry: time.Hour})
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	c.put(&entry{key: "k", status: 200, stored: now, used: now, expires: now.Add(time.Minute), size: 10})
	if c.get("k") == nil {
		t.Fatal("fresh entry missing")
	}
	now = now.Add(2 * time.Minute)
	if c.get("k") != nil {
		t.Fatal("stale entry served")
	}
	if n, size := c.Len(); n != 0 || size != 0 {
		t.Errorf("stale entry kept: %d, %d bytes", n, size)
	}
}
