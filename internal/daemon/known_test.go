package daemon

import (
	"slices"
	"testing"
)

// TestHoldKnownApps: a daemon that starts publishes, held, the route of
// each app that will serve web requests on a host before the proxy
// accepts, and ends each hold once that app's start-up rollout is over;
// apps that serve no host, run no web kind or are stopped are left alone.
func TestHoldKnownApps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"web app with a host", appFiles, []string{"hold", "route app.test", "release"}},
		{"uwsgi app with a host", map[string]string{
			"Procfile": "wsgi: app:application\n",
			"ENV":      "NGINX_SERVER_NAME=app.test\n",
		}, []string{"hold", "route app.test", "release"}},
		{"no host", map[string]string{"Procfile": "web: python3 server.py\n"}, nil},
		{"no web kind", map[string]string{
			"Procfile": "worker: sleep 100\n",
			"ENV":      "NGINX_SERVER_NAME=app.test\n",
		}, nil},
		{"web scaled to 0", map[string]string{
			"Procfile":         "web: python3 server.py\nworker: sleep 100\n",
			"ENV":              "NGINX_SERVER_NAME=app.test\n",
			"envs/app/SCALING": "web=0\nworker=1\n",
		}, nil},
		{"stopped", map[string]string{
			"Procfile":         "web: python3 server.py\n",
			"ENV":              "NGINX_SERVER_NAME=app.test\n",
			"envs/app/STOPPED": "",
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.files)
			w.d.holdKnownApps()
			w.d.releaseStartHold("app")
			w.d.releaseStartHold("app") // once only
			if !slices.Equal(w.calls, tc.want) {
				t.Errorf("calls %q, want %q", w.calls, tc.want)
			}
		})
	}
}
