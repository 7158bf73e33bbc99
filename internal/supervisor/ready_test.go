package supervisor

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
)

// TestReadyAnswers: a check that fails says what was checked and what
// answered, so a boot that times out can tell the user.
func TestReadyAnswers(t *testing.T) {
	status := func(code int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Host != "app.test" {
				code = http.StatusTeapot // below 500: the test would see ready
			}
			w.WriteHeader(code)
		}))
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	sick, well := status(http.StatusServiceUnavailable), status(http.StatusOK)

	tests := []struct {
		name, addr, path string
		ready            bool
		answer           string // regexp
	}{
		{"nothing listens", closed, "", false,
			`^nothing accepted a connection on ` + regexp.QuoteMeta(closed) + ` \(connect: connection refused\)$`},
		{"health path fails", sick, "/health", false,
			`^GET http://` + regexp.QuoteMeta(sick) + `/health \(Host: app\.test\) answered 503 Service Unavailable$`},
		{"health path without slash", well, "health", true, `^$`},
		{"TCP accepts", well, "", true, `^$`},
		{"no answer on the health path", closed, "/health", false,
			`^GET http://` + regexp.QuoteMeta(closed) + `/health \(Host: app\.test\): no answer \(connect: connection refused\)$`},
	}
	client := &http.Client{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answer, ok := ready(context.Background(), client, tt.addr, tt.path, "app.test")
			if ok != tt.ready || !regexp.MustCompile(tt.answer).MatchString(answer) {
				t.Errorf("ready = %v, %q; want %v, %s", ok, answer, tt.ready, tt.answer)
			}
		})
	}
}
