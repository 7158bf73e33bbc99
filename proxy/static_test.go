package proxy

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStaticFiles(t *testing.T) {
	base := t.TempDir()
	app := filepath.Join(base, "app")
	big := strings.Repeat("hello static world\n", 100)
	writeFiles(t, base, map[string]string{
		"secret.txt":                "SECRET",
		"app/public/a.txt":          "alpha",
		"app/public/page.html":      "<p>page</p>",
		"app/public/dir/index.html": "<p>dir</p>",
		"app/public/big.txt":        big,
		"app/public/.git/config":    "[core]",
		"app/spa/index.html":        "<p>spa</p>",
		"app/spa/app.js":            "js()",
	})
	if err := os.Symlink(filepath.Join(base, "secret.txt"), filepath.Join(app, "public", "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(app, "public", "inside.txt")); err != nil {
		t.Fatal(err)
	}
	backend := backendServer(t, named("backend"))
	routes := []Route{
		{App: "st", Hosts: []string{"st.test"}, Backends: []string{backend}, Compress: true,
			StaticPaths: []StaticPath{{"/static", filepath.Join(app, "public")}}},
		{App: "spa", Hosts: []string{"spa.test"}, StaticSite: filepath.Join(app, "spa"), CatchAll: "/index.html"},
		{App: "git", Hosts: []string{"git.test"}, AllowGit: true,
			StaticPaths: []StaticPath{{"/static", filepath.Join(app, "public")}}},
	}
	_, addr := startProxy(t, Options{}, routes...)
	tests := []struct {
		host, path string
		code       int
		body       string
	}{
		{"st.test", "/static/a.txt", 200, "alpha"},
		{"st.test", "/static/page", 200, "<p>page</p>"}, // $uri.html
		{"st.test", "/static/dir/", 200, "<p>dir</p>"},  // $uri/index.html
		{"st.test", "/static/dir", 200, "<p>dir</p>"},
		{"st.test", "/static/inside.txt", 200, "alpha"}, // a link within the dir
		{"st.test", "/static/missing", 404, ""},
		{"st.test", "/staticky", 200, "backend"}, // not under the prefix
		{"st.test", "/other", 200, "backend"},
		{"st.test", "/static/link.txt", 404, ""}, // a link leading out
		{"st.test", "/static/.git/config", 403, ""},
		{"st.test", "/app/.git/HEAD", 403, ""},             // proxied paths too
		{"git.test", "/static/.git/config", 200, "[core]"}, // NGINX_ALLOW_GIT_FOLDERS
		{"spa.test", "/", 200, "<p>spa</p>"},
		{"spa.test", "/app.js", 200, "js()"},
		{"spa.test", "/some/client/route", 200, "<p>spa</p>"}, // catch-all
	}
	for _, tt := range tests {
		t.Run(tt.host+tt.path, func(t *testing.T) {
			r := do(t, nil, addr, "GET", tt.host, tt.path, nil)
			if r.code != tt.code || tt.body != "" && r.body != tt.body || strings.Contains(r.body, "SECRET") {
				t.Errorf("%d %q, want %d %q", r.code, r.body, tt.code, tt.body)
			}
		})
	}
	// Traversal attempts, sent raw so that no client cleans them.
	for _, p := range []string{
		"/static/../../secret.txt", "/static/%2e%2e/%2e%2e/secret.txt", "/static/..%2f..%2fsecret.txt",
		"/static/%2e%2e%2f%2e%2e%2fsecret.txt", "/../secret.txt", "/static/./../../secret.txt",
	} {
		for _, host := range []string{"st.test", "spa.test"} {
			raw := rawRequest(t, addr, "GET "+p+" HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n")
			if strings.Contains(raw, "SECRET") {
				t.Errorf("%s%s escaped: %s", host, p, statusOf(raw))
			}
		}
	}
	if r := do(t, nil, addr, "POST", "st.test", "/static/a.txt", nil); r.code != 405 {
		t.Errorf("POST to a static path: %d", r.code)
	}

	t.Run("conditional and ranges", func(t *testing.T) {
		r := do(t, nil, addr, "GET", "st.test", "/static/a.txt", nil)
		etag := r.header.Get("ETag")
		if etag == "" || r.header.Get("Last-Modified") == "" {
			t.Fatalf("no validators: %v", r.header)
		}
		if r := do(t, nil, addr, "GET", "st.test", "/static/a.txt", nil, "If-None-Match", etag); r.code != 304 {
			t.Errorf("If-None-Match: %d", r.code)
		}
		if r := do(t, nil, addr, "GET", "st.test", "/static/a.txt", nil, "Range", "bytes=1-3"); r.code != 206 || r.body != "lph" {
			t.Errorf("Range: %d %q", r.code, r.body)
		}
	})
	t.Run("gzip", func(t *testing.T) {
		r := do(t, nil, addr, "GET", "st.test", "/static/big.txt", nil, "Accept-Encoding", "br, gzip")
		if r.header.Get("Content-Encoding") != "gzip" || !strings.Contains(r.header.Get("Vary"), "Accept-Encoding") {
			t.Fatalf("headers %v", r.header)
		}
		zr, err := gzip.NewReader(bytes.NewReader([]byte(r.body)))
		if err != nil {
			t.Fatal(err)
		}
		plain, _ := io.ReadAll(zr)
		if string(plain) != big || len(r.body) >= len(big) {
			t.Errorf("gunzipped %d bytes from %d", len(plain), len(r.body))
		}
		if r := do(t, nil, addr, "GET", "st.test", "/static/big.txt", nil, "Accept-Encoding", "gzip;q=0"); r.header.Get("Content-Encoding") != "" || r.body != big {
			t.Errorf("gzip;q=0 got %q", r.header.Get("Content-Encoding"))
		}
		if r := do(t, nil, addr, "GET", "st.test", "/static/a.txt", nil, "Accept-Encoding", "gzip"); r.body != "alpha" {
			t.Errorf("small file compressed: %q", r.body)
		}
		// NGINX_GZIP=off (Compress false): static files are not compressed either.
		if r := do(t, nil, addr, "GET", "git.test", "/static/big.txt", nil, "Accept-Encoding", "gzip"); r.header.Get("Content-Encoding") != "" || r.body != big {
			t.Errorf("compression off: Content-Encoding %q", r.header.Get("Content-Encoding"))
		}
	})
}
