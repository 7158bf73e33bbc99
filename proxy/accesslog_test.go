package proxy

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestAccessLog(t *testing.T) {
	backend := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		w.Write([]byte("created"))
	})
	path := filepath.Join(t.TempDir(), "logs", "app", "access.log")
	s, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend}, AccessLog: path})
	do(t, nil, addr, "POST", "app.test", "/items?x=1", strings.NewReader("a"), "Referer", "http://ref/", "User-Agent", `ua "quoted"`)
	do(t, nil, addr, "GET", "app.test", "/.git/config", nil)
	s.RemoveRoute("app") // closes the file
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []*regexp.Regexp{
		regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "POST /items\?x=1 HTTP/1\.1" 201 7 "http://ref/" "ua \\x22quoted\\x22" \d+\.\d{3}$`),
		regexp.MustCompile(`^127\.0\.0\.1 - - \[.+\] "GET /\.git/config HTTP/1\.1" 403 \d+ "-" "Go-http-client/1\.1" \d+\.\d{3}$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("log:\n%s", b)
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d = %q, want %v", i, lines[i], re)
		}
	}
}
