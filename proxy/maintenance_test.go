package proxy

import (
	"strings"
	"testing"
)

func TestMaintenance(t *testing.T) {
	be := backendServer(t, named("web"))
	page := []byte("<html>our own page</html>")
	s, addr := startProxy(t, Options{},
		Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{be}, Maintenance: &Maintenance{Message: "Back at <5>"}},
		Route{App: "own", Hosts: []string{"own.test"}, Backends: []string{be}, Maintenance: &Maintenance{Page: page}},
		Route{App: "other", Hosts: []string{"other.test"}, Backends: []string{be}})
	for _, tc := range []struct {
		host, accept string
		ctype, body  string
	}{
		{"app.test", "text/html,application/xhtml+xml,*/*;q=0.8", "text/html; charset=utf-8", "<p>Back at &lt;5&gt;</p>"},
		{"app.test", "application/json", "application/json", `{"status":503,"error":"maintenance","message":"Back at \u003c5\u003e"}`},
		{"app.test", "", "text/plain; charset=utf-8", "503 Service Unavailable: Back at <5>\n"},
		{"app.test", "*/*", "text/plain; charset=utf-8", "503 Service Unavailable: Back at <5>\n"},
		{"app.test", "text/html;q=0, application/json", "application/json", `"error":"maintenance"`},
		{"own.test", "text/html", "text/html; charset=utf-8", string(page)},
		{"own.test", "", "text/plain; charset=utf-8", "down for maintenance"},
	} {
		r := do(t, nil, addr, "GET", tc.host, "/x", nil, "Accept", tc.accept)
		if r.code != 503 || r.header.Get("Retry-After") != "60" || r.header.Get("Content-Type") != tc.ctype || !strings.Contains(r.body, tc.body) {
			t.Errorf("%s Accept %q: %d Retry-After %q %q %q; want 503, 60, %q, %q",
				tc.host, tc.accept, r.code, r.header.Get("Retry-After"), r.header.Get("Content-Type"), r.body, tc.ctype, tc.body)
		}
	}
	if r := do(t, nil, addr, "GET", "other.test", "/", nil); r.code != 200 || r.body != "web" {
		t.Errorf("other app: %d %q", r.code, r.body)
	}
	// Maintenance ends with the route settings that set it.
	rt, _ := s.Route("app")
	rt.Maintenance = nil
	if err := s.SetRouteConfig(rt); err != nil {
		t.Fatal(err)
	}
	if r := do(t, nil, addr, "GET", "app.test", "/", nil); r.code != 200 || r.body != "web" {
		t.Errorf("after maintenance: %d %q", r.code, r.body)
	}
}
