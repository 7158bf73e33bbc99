package proxy

import (
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRouteFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Route
		wantErr string // a key the error must name
	}{
		{name: "empty", env: nil, want: Route{App: "a", Compress: true, MaxBodySize: DefaultMaxBodySize}},
		{
			name: "compression and access log off",
			env:  map[string]string{"NGINX_GZIP": "off", "NGINX_ACCESS_LOG": "0"},
			want: Route{App: "a", NoAccessLog: true, MaxBodySize: DefaultMaxBodySize},
		},
		{name: "bad gzip", env: map[string]string{"NGINX_GZIP": "maybe"}, wantErr: "NGINX_GZIP"},
		{name: "bad access log", env: map[string]string{"NGINX_ACCESS_LOG": "some"}, wantErr: "NGINX_ACCESS_LOG"},
		{
			name: "full",
			env: map[string]string{
				"NGINX_SERVER_NAME":       "Example.com, www.example.com *.apps.example.com",
				"NGINX_HTTPS_ONLY":        "true",
				"NGINX_CLOUDFLARE_ACL":    "1",
				"NGINX_ALLOW_GIT_FOLDERS": "no",
				"NGINX_STATIC_PATHS":      "/static:public,/media:/srv/media/",
				"NGINX_CATCH_ALL":         "index.html",
				"NGINX_CACHE_PREFIXES":    "/api, static/",
				"NGINX_CACHE_SIZE":        "2",
				"NGINX_CACHE_TIME":        "60",
				"NGINX_CACHE_REDIRECTS":   "30",
			},
			want: Route{
				App:           "a",
				Hosts:         []string{"example.com", "www.example.com", "*.apps.example.com"},
				HTTPSOnly:     true,
				CloudflareACL: true,
				Compress:      true,
				StaticPaths:   []StaticPath{{"/static", "/app/public"}, {"/media", "/srv/media"}},
				CatchAll:      "/index.html",
				Cache: &CacheConfig{Prefixes: []string{"/api", "/static/"}, Size: 2 << 20, Time: time.Minute,
					Redirects: 30 * time.Second, Control: time.Hour, Expiry: 24 * time.Hour},
				MaxBodySize: DefaultMaxBodySize,
			},
		},
		{name: "bad host", env: map[string]string{"NGINX_SERVER_NAME": "exa mple.com foo..bar"}, wantErr: "NGINX_SERVER_NAME"},
		{name: "bad wildcard", env: map[string]string{"NGINX_SERVER_NAME": "foo.*.com"}, wantErr: "NGINX_SERVER_NAME"},
		{name: "bad bool", env: map[string]string{"NGINX_HTTPS_ONLY": "sure"}, wantErr: "NGINX_HTTPS_ONLY"},
		{name: "static without colon", env: map[string]string{"NGINX_STATIC_PATHS": "/static"}, wantErr: "NGINX_STATIC_PATHS"},
		{name: "static without slash", env: map[string]string{"NGINX_STATIC_PATHS": "static:public"}, wantErr: "NGINX_STATIC_PATHS"},
		{name: "cache size", env: map[string]string{"NGINX_CACHE_PREFIXES": "/a", "NGINX_CACHE_SIZE": "lots"}, wantErr: "NGINX_CACHE_SIZE"},
		{name: "cache time", env: map[string]string{"NGINX_CACHE_PREFIXES": "/a", "NGINX_CACHE_TIME": "-1"}, wantErr: "NGINX_CACHE_TIME"},
		{name: "body size", env: map[string]string{"NGINX_CLIENT_MAX_BODY_SIZE": "lots"}, wantErr: "NGINX_CLIENT_MAX_BODY_SIZE"},
		{name: "negative body size", env: map[string]string{"NGINX_CLIENT_MAX_BODY_SIZE": "-1m"}, wantErr: "NGINX_CLIENT_MAX_BODY_SIZE"},
		{name: "body size unit", env: map[string]string{"NGINX_CLIENT_MAX_BODY_SIZE": "10x"}, wantErr: "NGINX_CLIENT_MAX_BODY_SIZE"},
		{name: "request buffering", env: map[string]string{"NGINX_PROXY_REQUEST_BUFFERING": "sometimes"}, wantErr: "NGINX_PROXY_REQUEST_BUFFERING"},
		{name: "response buffering", env: map[string]string{"NGINX_PROXY_BUFFERING": "2"}, wantErr: "NGINX_PROXY_BUFFERING"},
		{name: "buffering off, 10m", env: map[string]string{"NGINX_CLIENT_MAX_BODY_SIZE": "10m", "NGINX_PROXY_REQUEST_BUFFERING": "off", "NGINX_PROXY_BUFFERING": "off"},
			want: Route{App: "a", Compress: true, MaxBodySize: 10 << 20, StreamRequests: true, StreamResponses: true}},
		{name: "no body bound", env: map[string]string{"NGINX_CLIENT_MAX_BODY_SIZE": "0"}, want: Route{App: "a", Compress: true}},
		{name: "body size in bytes and k", env: map[string]string{"NGINX_CLIENT_MAX_BODY_SIZE": "512K"}, want: Route{App: "a", Compress: true, MaxBodySize: 512 << 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RouteFromEnv("a", "/app", tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
				if got.Cache != nil && tt.want.Cache != nil {
					t.Errorf("cache %+v, want %+v", *got.Cache, *tt.want.Cache)
				}
			}
		})
	}
}

func FuzzRouteFromEnv(f *testing.F) {
	f.Add("example.com *.example.org", "/static:public,/m:/srv/m", "/api,/x", "3", "index.html")
	f.Add("", "", "", "", "")
	f.Fuzz(func(t *testing.T, names, static, prefixes, size, catchAll string) {
		env := map[string]string{"NGINX_SERVER_NAME": names, "NGINX_STATIC_PATHS": static,
			"NGINX_CACHE_PREFIXES": prefixes, "NGINX_CACHE_SIZE": size, "NGINX_CATCH_ALL": catchAll}
		r, err := RouteFromEnv("app", "/app", env)
		if err != nil {
			if !strings.Contains(err.Error(), "NGINX_") {
				t.Fatalf("error names no key: %v", err)
			}
			return
		}
		for _, h := range r.Hosts {
			if h == "" || h != strings.ToLower(h) || strings.ContainsAny(h, " ,") || strings.Count(h, "*") > 1 ||
				strings.Contains(h, "*") && !strings.HasPrefix(h, "*.") {
				t.Fatalf("bad host %q", h)
			}
		}
		for _, sp := range r.StaticPaths {
			if !strings.HasPrefix(sp.Prefix, "/") || !strings.HasPrefix(sp.Dir, "/") {
				t.Fatalf("bad static path %+v", sp)
			}
		}
		if r.Cache != nil {
			if r.Cache.Size < 1<<20 || len(r.Cache.Prefixes) == 0 {
				t.Fatalf("bad cache %+v", *r.Cache)
			}
			for _, p := range r.Cache.Prefixes {
				if !strings.HasPrefix(p, "/") {
					t.Fatalf("bad prefix %q", p)
				}
			}
		}
		if r.CatchAll != "" && !strings.HasPrefix(r.CatchAll, "/") {
			t.Fatalf("bad catch-all %q", r.CatchAll)
		}
	})
}

func FuzzStaticLookup(f *testing.F) {
	f.Add("/static/a.txt", "/static")
	f.Add("/static/../etc/passwd", "/")
	f.Add("/x%2e%2e/y", "/x")
	f.Fuzz(func(t *testing.T, p, prefix string) {
		rel, ok := underPrefix(p, prefix)
		if !ok {
			return
		}
		if prefix != "/" && !strings.HasPrefix(p, prefix) {
			t.Fatalf("underPrefix(%q, %q) matched", p, prefix)
		}
		if strings.HasPrefix(rel, "/") {
			t.Fatalf("rel %q starts with /", rel)
		}
	})
}

// TestListenAddresses: NGINX_IPV4_ADDRESS, NGINX_IPV6_ADDRESS and
// DISABLE_IPV6 restrict the local addresses an app answers on; elsewhere
// its host is unknown.
func TestListenAddresses(t *testing.T) {
	back := backendServer(t, named("app"))
	tests := []struct {
		name string
		env  map[string]string
		want int
	}{
		{"any", map[string]string{}, http.StatusOK},
		{"this address", map[string]string{"NGINX_IPV4_ADDRESS": "127.0.0.1"}, http.StatusOK},
		{"unspecified", map[string]string{"NGINX_IPV4_ADDRESS": "0.0.0.0"}, http.StatusOK},
		{"another address", map[string]string{"NGINX_IPV4_ADDRESS": "192.0.2.1"}, http.StatusNotFound},
		{"ipv6 off, ipv4 request", map[string]string{"DISABLE_IPV6": "true"}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"NGINX_SERVER_NAME": "app.test"}
			for k, v := range tt.env {
				env[k] = v
			}
			rt, err := RouteFromEnv("app", t.TempDir(), env)
			if err != nil {
				t.Fatal(err)
			}
			rt.Backends = []string{back}
			_, addr := startProxy(t, Options{}, rt)
			if got := do(t, http.DefaultClient, addr, "GET", "app.test", "/", nil); got.code != tt.want {
				t.Errorf("status %d, want %d (%s)", got.code, tt.want, got.body)
			}
		})
	}
	for _, env := range []map[string]string{
		{"NGINX_IPV4_ADDRESS": "::1"},
		{"NGINX_IPV6_ADDRESS": "127.0.0.1"},
		{"NGINX_IPV4_ADDRESS": "nope"},
	} {
		if _, err := RouteFromEnv("app", "/srv", env); err == nil {
			t.Errorf("RouteFromEnv(%v) accepted a bad address", env)
		}
	}
	r := Route{DisableIPv6: true}
	if r.servesOn(net.ParseIP("::1")) {
		t.Error("DISABLE_IPV6 route answers on ::1")
	}
	r = Route{IPv6Address: net.ParseIP("2001:db8::1")}
	if r.servesOn(net.ParseIP("::1")) || !r.servesOn(net.ParseIP("2001:db8::1")) {
		t.Error("NGINX_IPV6_ADDRESS not honoured")
	}
}

func TestParseHosts(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{"", nil, true},
		{"a.example.com, b.example.com\t*.c.example.com,,d", []string{"a.example.com", "b.example.com", "*.c.example.com", "d"}, true},
		{"A.Example.COM.\nb.example.com", []string{"a.example.com", "b.example.com"}, true},
		{"a.example.com a.example.com", []string{"a.example.com"}, true},
		{"a..b", nil, false},
		{"a/b", nil, false},
		{"*.", nil, false},
	} {
		got, err := ParseHosts(tt.in)
		if (err == nil) != tt.ok || strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("ParseHosts(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
