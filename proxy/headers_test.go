package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestClientSpoofHeadersDropped sends the headers a client could use to
// pose as another address or scheme, spelt every way a backend (uWSGI,
// Rack, PHP) would read them, and checks none reaches the backend.
func TestClientSpoofHeadersDropped(t *testing.T) {
	echo := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(r.Header)
	})
	_, addr := startProxy(t, Options{}, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{echo}})
	tests := []struct {
		name   string
		header string // as the client sends it
		gone   string // the canonical name that must not arrive
	}{
		{"underscore for", "X_Forwarded_For: 6.6.6.6", "X_forwarded_for"},
		{"underscore proto", "X_Forwarded_Proto: https", "X_forwarded_proto"},
		{"underscore real ip", "X_Real_IP: 6.6.6.6", "X_real_ip"},
		{"protocol", "X-Forwarded-Protocol: https", "X-Forwarded-Protocol"},
		{"scheme", "X-Scheme: https", "X-Scheme"},
		{"url scheme", "X-Url-Scheme: https", "X-Url-Scheme"},
		{"front end https", "Front-End-Https: on", "Front-End-Https"},
		{"true client ip", "True-Client-IP: 6.6.6.6", "True-Client-Ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := rawRequest(t, addr, "GET / HTTP/1.1\r\nHost: app.test\r\n"+tt.header+"\r\nConnection: close\r\n\r\n")
			if !strings.HasPrefix(statusOf(raw), "HTTP/1.1 200 ") {
				t.Fatalf("status: %q", raw)
			}
			_, body, _ := strings.Cut(raw, "\r\n\r\n")
			var got map[string][]string
			if err := json.Unmarshal([]byte(body[strings.Index(body, "{"):]), &got); err != nil {
				t.Fatal(err, body)
			}
			if v, ok := got[tt.gone]; ok {
				t.Errorf("backend got %s: %q", tt.gone, v)
			}
			if v := got["X-Forwarded-Proto"]; len(v) != 1 || v[0] != "http" {
				t.Errorf("X-Forwarded-Proto = %q, want [http]", v)
			}
			if v := got["X-Forwarded-For"]; len(v) != 1 || v[0] != "127.0.0.1" {
				t.Errorf("X-Forwarded-For = %q, want [127.0.0.1]", v)
			}
		})
	}
}

// TestUnderscoresInHeadersAllowed checks NGINX_UNDERSCORES_IN_HEADERS lets
// an app receive its own underscore headers, and still not the spoofable
// ones.
func TestUnderscoresInHeadersAllowed(t *testing.T) {
	echo := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(r.Header)
	})
	rt, err := RouteFromEnv("app", t.TempDir(), map[string]string{
		"NGINX_SERVER_NAME": "app.test", "NGINX_UNDERSCORES_IN_HEADERS": "on"})
	if err != nil {
		t.Fatal(err)
	}
	rt.Backends = []string{echo}
	_, addr := startProxy(t, Options{}, rt)
	raw := rawRequest(t, addr, "GET / HTTP/1.1\r\nHost: app.test\r\nApi_Key: k\r\nX-Scheme: https\r\nConnection: close\r\n\r\n")
	_, body, _ := strings.Cut(raw, "\r\n\r\n")
	var got map[string][]string
	if err := json.Unmarshal([]byte(body[strings.Index(body, "{"):]), &got); err != nil {
		t.Fatal(err, raw)
	}
	if v := got["Api_key"]; len(v) != 1 || v[0] != "k" {
		t.Errorf("Api_key = %q, want [k]", v)
	}
	if v, ok := got["X-Scheme"]; ok {
		t.Errorf("X-Scheme = %q, want it dropped", v)
	}
}
