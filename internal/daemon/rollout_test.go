package daemon

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/cron"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/metrics"
	"github.com/piku/piku/internal/supervisor"
	"github.com/piku/piku/internal/testdeps"
	"github.com/piku/piku/proxy"
)

// world is a daemon over fakes of the supervisor, the proxy, the
// certificate manager and the cron runner; every call they get is noted
// in calls, with what the files showed at that moment.
type world struct {
	d     *Daemon
	root  layout.Root
	calls []string

	outcomes []supervisor.Outcome // what Apply reports
	applyErr error                // what Apply returns
	cronErr  error                // what the cron runner's Set returns
}

func newWorld(t *testing.T, files map[string]string) *world {
	t.Helper()
	root, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Init(); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		p := filepath.Join(root.App("app"), name)
		if strings.HasPrefix(name, "envs/") || strings.HasPrefix(name, "uwsgi-") {
			p = filepath.Join(root.Dir(), name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w := &world{root: root}
	w.d = &Daemon{
		root: root, cfg: Config{Bind: "127.0.0.1"}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		metrics: metrics.New(metrics.Sources{}),
		apps:    map[string]*appState{}, locks: map[string]*sync.Mutex{},
		table: fakeTable{w}, procs: fakeProcs{w}, certHosts: fakeCerts{w}, jobs: fakeCron{w},
	}
	w.d.sleeper = newSleeper(w.d)
	return w
}

// note records a call, and whether LIVE_ENV exists when it is made.
func (w *world) note(call string) {
	if _, err := os.Stat(w.root.LiveEnvFile("app")); err == nil {
		call += " (LIVE_ENV written)"
	}
	if st := w.d.apps["app"]; st != nil && st.revision != "" {
		call += " (status published)"
	}
	w.calls = append(w.calls, call)
}

func (w *world) deploy(req control.DeployRequest) (string, error) {
	var out bytes.Buffer
	err := w.d.rollout(context.Background(), "app", req, reporter{w: &out, log: w.d.log, app: "app"})
	return out.String(), err
}

// state is what the daemon remembers of the app.
func (w *world) state() appState {
	if st := w.d.apps["app"]; st != nil {
		return *st
	}
	return appState{}
}

type fakeProcs struct{ w *world }

func (f fakeProcs) Apply(ctx context.Context, spec supervisor.AppSpec) error {
	f.w.note("apply")
	for _, o := range f.w.outcomes {
		spec.Report(o)
	}
	return f.w.applyErr
}

func (f fakeProcs) Stop(ctx context.Context, app string) error {
	f.w.note("stop")
	return nil
}

func (f fakeProcs) Status(app string) []supervisor.InstanceStatus {
	return []supervisor.InstanceStatus{{Kind: "web", N: 1, Port: 20001, Addr: "127.0.0.1:20001"}}
}

type fakeTable struct{ w *world }

func (f fakeTable) SetRouteConfig(r proxy.Route) error {
	f.w.note("route " + strings.Join(r.Hosts, ","))
	return nil
}
func (f fakeTable) RemoveRouteConfig(app string)                  { f.w.note("route removed") }
func (f fakeTable) SetBackends(app string, addrs []string)        { f.w.note("backends") }
func (f fakeTable) RemoveRoute(app string)                        { f.w.note("route forgotten") }
func (f fakeTable) Route(app string) (proxy.Route, bool)          { return proxy.Route{}, false }
func (f fakeTable) HostOwner(string, []string) (string, string)   { return "", "" }
func (f fakeTable) Drain(ctx context.Context, addrs []string) int { return 0 }
func (f fakeTable) Hold(app string)                               { f.w.note("hold") }
func (f fakeTable) Release(app string)                            { f.w.note("release") }
func (f fakeTable) Pause(app string)                              { f.w.note("pause") }
func (f fakeTable) Resume(app string)                             { f.w.note("resume") }
func (f fakeTable) Held(app string) (bool, int)                   { return false, 0 }
func (f fakeTable) MarkActive(app string)                         { f.w.note("active") }

type fakeCerts struct{ w *world }

func (f fakeCerts) SetHosts(app string, hosts []string, acme bool) {
	f.w.note("certificates " + strings.Join(hosts, ","))
}

type fakeCron struct{ w *world }

func (f fakeCron) Remove(app string) error {
	f.w.note("cron removed")
	return nil
}

func (f fakeCron) Set(app string, jobs []cron.Job) error {
	f.w.note("cron")
	return f.w.cronErr
}

var appFiles = map[string]string{
	"Procfile": "web: python3 server.py\n",
	"ENV":      "NGINX_SERVER_NAME=app.test\n",
}

// TestRolloutCommitted: a committed rollout publishes the route, the
// certificate hosts, LIVE_ENV, the cron jobs and the status, in that order,
// after the supervisor applied it, and says so.
func TestRolloutCommitted(t *testing.T) {
	w := newWorld(t, appFiles)
	w.outcomes = []supervisor.Outcome{{Kind: "web", Result: supervisor.ResultReady}}
	out, err := w.deploy(control.DeployRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"apply", "route app.test", "certificates app.test", "cron (LIVE_ENV written)"}
	if !slices.Equal(w.calls, want) {
		t.Errorf("calls:\n%q\nwant\n%q", w.calls, want)
	}
	if st := w.state(); st.lastErr != "" || !slices.Equal(st.hosts, []string{"app.test"}) {
		t.Errorf("status %+v", st)
	}
	wantOut := "-----> Rolling out 'app' (web:1)\n" +
		"       web: ready\n" +
		"       web.1 listening on 127.0.0.1:20001\n" +
		"-----> 'app' is live on app.test\n"
	if out != wantOut {
		t.Errorf("output:\n%s\nwant\n%s", out, wantOut)
	}
}

// TestRolloutRefused: a kind that kept its old instances, or a rollout
// the supervisor refused before deciding anything, publishes nothing, and
// the vassal files staged for it are put back as they were.
func TestRolloutRefused(t *testing.T) {
	testdeps.Require(t, "uwsgi", "apt-get install uwsgi-core uwsgi-plugin-python3") // the plan of a wsgi app checks it
	for _, tc := range []struct {
		name     string
		outcomes []supervisor.Outcome
	}{
		{"kept", []supervisor.Outcome{{Kind: "wsgi", Result: supervisor.ResultKept, Err: errors.New("no answer")}}},
		{"nothing decided", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{
				"Procfile":                       "wsgi: app:application\n",
				"ENV":                            "NGINX_SERVER_NAME=app.test\n",
				"uwsgi-available/app_wsgi.1.ini": "old vassal\n",
			}
			w := newWorld(t, files)
			vassal := w.root.VassalAvailable("app", "wsgi", 1)
			if vassal != filepath.Join(w.root.Dir(), "uwsgi-available/app_wsgi.1.ini") {
				t.Fatalf("the vassal is at %s; the test writes the old one elsewhere", vassal)
			}
			w.outcomes = tc.outcomes
			w.applyErr = errors.New(`app "app": wsgi: the new instances did not come up`)
			_, err := w.deploy(control.DeployRequest{})
			if !errors.Is(err, w.applyErr) {
				t.Fatalf("err = %v, want the supervisor's", err)
			}
			if want := []string{"apply"}; !slices.Equal(w.calls, want) {
				t.Errorf("calls %q, want %q: nothing published", w.calls, want)
			}
			if b, err := os.ReadFile(vassal); err != nil || string(b) != "old vassal\n" {
				t.Errorf("vassal after the refused rollout: %q, %v; want the old one back", b, err)
			}
			if st := w.state(); st.lastErr != err.Error() || st.revision != "" {
				t.Errorf("status %+v", st)
			}
		})
	}
}

// TestRolloutPublisherFails: when a publisher fails, the ones before it
// have taken effect (the new processes serve on the new route, LIVE_ENV
// says what they run), the ones after it have not, and the rollout
// reports the publisher's error: the app's status shows it, and the next
// rollout publishes again.
func TestRolloutPublisherFails(t *testing.T) {
	w := newWorld(t, appFiles)
	w.outcomes = []supervisor.Outcome{{Kind: "web", Result: supervisor.ResultReady}}
	w.cronErr = errors.New("no room")
	out, err := w.deploy(control.DeployRequest{})
	want := `app "app": cron: no room`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if wantCalls := []string{"apply", "route app.test", "certificates app.test", "cron (LIVE_ENV written)"}; !slices.Equal(w.calls, wantCalls) {
		t.Errorf("calls %q, want %q", w.calls, wantCalls)
	}
	st := w.state()
	if st.lastErr != want || st.hosts != nil {
		t.Errorf("status %+v: the status publisher after cron must not have run", st)
	}
	if strings.Contains(out, "is live") {
		t.Errorf("output says the app is live:\n%s", out)
	}

	w.calls, w.cronErr = nil, nil
	if _, err := w.deploy(control.DeployRequest{}); err != nil {
		t.Fatal(err)
	}
	if st := w.state(); st.lastErr != "" || !slices.Equal(st.hosts, []string{"app.test"}) {
		t.Errorf("status after the next rollout %+v", st)
	}
}

// TestRolloutGuard: a plan the guard refuses reaches neither the
// supervisor nor any publisher.
func TestRolloutGuard(t *testing.T) {
	w := newWorld(t, appFiles)
	w.d.table = takenTable{fakeTable{w}}
	_, err := w.deploy(control.DeployRequest{})
	want := `app "app": ENV line 1: NGINX_SERVER_NAME: app.test is already served by app "other"; remove it there first`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if len(w.calls) != 0 {
		t.Errorf("calls %q, want none", w.calls)
	}
}

// takenTable is a table where another app serves every host.
type takenTable struct{ fakeTable }

func (takenTable) HostOwner(app string, hosts []string) (string, string) { return "other", hosts[0] }

// TestRolloutRecreate: PIKU_ROLLOUT=recreate (or a pinned PORT) makes the
// kinds stop-then-start, and the proxy holds the app's requests from
// before the supervisor applies the plan until it is done; the output and
// the status say which strategy ran. A rolling rollout holds nothing.
func TestRolloutRecreate(t *testing.T) {
	for _, tc := range []struct {
		env       string
		recreate  bool
		wantCalls []string
	}{
		{"", false, []string{"apply"}},
		{"PIKU_ROLLOUT=rolling\n", false, []string{"apply"}},
		{"PIKU_ROLLOUT=recreate\n", true, []string{"hold", "apply", "release"}},
		{"PORT=8123\n", false, []string{"hold", "apply", "release"}},
	} {
		files := map[string]string{"Procfile": "web: serve\n", "ENV": tc.env}
		w := newWorld(t, files)
		strategy := supervisor.StrategyRolling
		if tc.recreate || strings.Contains(tc.env, "PORT") {
			strategy = supervisor.StrategyRecreate
		}
		w.outcomes = []supervisor.Outcome{{Kind: "web", Result: supervisor.ResultReady, Strategy: strategy}}
		var recreate []bool
		w.d.procs = specProcs{fakeProcs{w}, &recreate}
		out, err := w.deploy(control.DeployRequest{})
		if err != nil {
			t.Fatalf("%q: %v", tc.env, err)
		}
		calls := slices.DeleteFunc(w.calls, func(c string) bool {
			return strings.HasPrefix(c, "route") || strings.HasPrefix(c, "cert") || strings.HasPrefix(c, "cron")
		})
		if !slices.Equal(calls, tc.wantCalls) {
			t.Errorf("%q: calls %q, want %q", tc.env, calls, tc.wantCalls)
		}
		if !slices.Equal(recreate, []bool{tc.recreate}) {
			t.Errorf("%q: Recreate of the web spec = %v, want %v", tc.env, recreate, tc.recreate)
		}
		said := strings.Contains(out, "web: replaced stop-then-start (recreate)")
		if said != (strategy == supervisor.StrategyRecreate) {
			t.Errorf("%q: output says recreate: %v; output:\n%s", tc.env, said, out)
		}
		if st := w.state(); st.strategies["web"] != strategy {
			t.Errorf("%q: strategies %v, want web: %s", tc.env, st.strategies, strategy)
		}
	}
	w := newWorld(t, map[string]string{"Procfile": "web: serve\n", "ENV": "PIKU_ROLLOUT=sometimes\n"})
	if _, err := w.deploy(control.DeployRequest{}); err == nil || !strings.Contains(err.Error(), "PIKU_ROLLOUT") {
		t.Errorf("bad PIKU_ROLLOUT: %v, want an error naming it", err)
	}
}

// specProcs records the Recreate of each web spec applied.
type specProcs struct {
	fakeProcs
	recreate *[]bool
}

func (p specProcs) Apply(ctx context.Context, spec supervisor.AppSpec) error {
	for _, ps := range spec.Processes {
		if ps.Web {
			*p.recreate = append(*p.recreate, ps.Recreate)
		}
	}
	return p.fakeProcs.Apply(ctx, spec)
}

// TestRolloutAfterDestroy: a rollout that waited for the app's lock while
// a destroy held it finds no app, and touches nothing (it used to go on
// against the removed files).
func TestRolloutAfterDestroy(t *testing.T) {
	w := newWorld(t, appFiles)
	unlock := w.d.lock("app")
	done := make(chan error, 1)
	go func() {
		_, err := w.deploy(control.DeployRequest{})
		done <- err
	}()
	if err := os.RemoveAll(w.root.App("app")); err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := <-done; !errors.Is(err, control.ErrUnknownApp) {
		t.Errorf("rollout after destroy: %v, want ErrUnknownApp", err)
	}
	if len(w.calls) != 0 {
		t.Errorf("calls %q, want none", w.calls)
	}
}

// TestRolloutRefusesBadProxyKeys: a proxy key the proxy cannot read fails
// the rollout (and so the push) before anything is started, naming the
// key and what it accepts.
func TestRolloutRefusesBadProxyKeys(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"NGINX_CLIENT_MAX_BODY_SIZE=lots", `app "app": ENV line 2: NGINX_CLIENT_MAX_BODY_SIZE: "lots" is not a size (bytes, or a number with k, m or g, as 10m; 0 = no limit)`},
		{"NGINX_PROXY_REQUEST_BUFFERING=sometimes", `app "app": ENV line 2: NGINX_PROXY_REQUEST_BUFFERING: `},
		{"NGINX_PROXY_BUFFERING=2", `app "app": ENV line 2: NGINX_PROXY_BUFFERING: `},
	} {
		t.Run(tc.env, func(t *testing.T) {
			w := newWorld(t, map[string]string{
				"Procfile": "web: python3 server.py\n",
				"ENV":      "NGINX_SERVER_NAME=app.test\n" + tc.env + "\n",
			})
			_, err := w.deploy(control.DeployRequest{})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("deploy: %v, want %s...", err, tc.want)
			}
			if len(w.calls) != 0 {
				t.Errorf("calls %q, want none: nothing is started or published", w.calls)
			}
		})
	}
}
