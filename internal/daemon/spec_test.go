package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/supervisor"
	"github.com/piku/piku/internal/testdeps"
	"github.com/piku/piku/procfile"
)

// planFor writes an app's files under a fresh root and derives its plan.
func planFor(t *testing.T, files map[string]string) (*plan, layout.Root, error) {
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
		if strings.HasPrefix(name, "envs/") {
			p = filepath.Join(root.Dir(), name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, err := appconfig.Load(root, "app")
	if err != nil {
		return nil, root, err
	}
	d := &Daemon{root: root, cfg: Config{Bind: "127.0.0.1"}}
	p, err := d.makePlan(a, nil)
	return p, root, err
}

func process(t *testing.T, p *plan, kind string) supervisor.ProcessSpec {
	t.Helper()
	for _, ps := range p.spec.Processes {
		if ps.Kind == kind {
			return ps
		}
	}
	t.Fatalf("no %s in %+v", kind, p.spec.Processes)
	return supervisor.ProcessSpec{}
}

func envOf(ps supervisor.ProcessSpec, key string) (string, bool) {
	for _, kv := range ps.Env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

func TestPlan(t *testing.T) {
	p, root, err := planFor(t, map[string]string{
		"Procfile": "web: python3 server.py\nworker: python3 work.py\ncron1: */5 * * * * echo hi\nstatic: public\nrelease: echo done\n",
		"ENV": "GREETING=hello\nNGINX_SERVER_NAME=app.example.com,*.app.example.com\nPIKU_HEALTHCHECK_PATH=/health\n" +
			"PIKU_STOP_TIMEOUT=3\nPIKU_BOOT_TIMEOUT=1m\nPIKU_RESTART_DELAY=250ms\nPIKU_LOG_MAX_SIZE=2\nPORT=8123\n",
		"envs/app/ENV":     "GREETING=overridden\n",
		"envs/app/SCALING": "worker:3\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.spec.Processes) != 2 {
		t.Fatalf("processes %+v: release, static and cron entries are not long-running", p.spec.Processes)
	}
	web, worker := process(t, p, "web"), process(t, p, "worker")
	if !web.Web || web.Count != 1 || web.FixedPort != 8123 || web.HealthPath != "/health" || web.HealthHost != "app.example.com" {
		t.Errorf("web: %+v", web)
	}
	if worker.Web || worker.Count != 3 {
		t.Errorf("worker: %+v", worker)
	}
	if v, _ := envOf(worker, "GREETING"); v != "overridden" {
		t.Errorf("GREETING=%q: envs/APP/ENV must win over the app's ENV", v)
	}
	if _, ok := envOf(web, "PORT"); ok {
		t.Error("PORT is in the shared env; the supervisor sets it per instance")
	}
	if v, _ := envOf(web, "APP"); v != "app" {
		t.Errorf("APP=%q", v)
	}
	pol := p.spec.Policy
	if pol.StopTimeout != 3*time.Second || pol.BootTimeout != time.Minute || pol.BackoffInitial != 250*time.Millisecond || pol.BackoffMax != 0 {
		t.Errorf("policy %+v", pol)
	}
	if p.spec.Logs.MaxSizeMB != 2 || p.spec.Logs.Dir != root.Logs("app") {
		t.Errorf("logs %+v", p.spec.Logs)
	}
	if p.static != filepath.Join(root.App("app"), "public") {
		t.Errorf("static dir %q", p.static)
	}
	if len(p.jobs) != 1 || p.jobs[0].Name != "cron1" || p.jobs[0].Log != filepath.Join(root.Logs("app"), "cron1.log") {
		t.Errorf("cron jobs %+v", p.jobs)
	}
}

// TestPlanVassals: a wsgi entry runs uWSGI with one vassal per instance,
// named as piku names them.
func TestPlanVassals(t *testing.T) {
	testdeps.Require(t, "uwsgi", "apt-get install uwsgi-core uwsgi-plugin-python3")
	p, root, err := planFor(t, map[string]string{
		"Procfile":         "wsgi: app:application\n",
		"ENV":              "UWSGI_PROCESSES=2\n",
		"envs/app/SCALING": "wsgi:2\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	ps := process(t, p, "wsgi")
	if !ps.Web || !strings.Contains(ps.Command, "uwsgi --ini") || !strings.Contains(ps.Command, "$PIKU_INSTANCE") {
		t.Errorf("wsgi process %+v", ps)
	}
	for n := 1; n <= 2; n++ {
		ini, ok := p.vassals[root.VassalAvailable("app", "wsgi", n)]
		if !ok || !strings.Contains(string(ini), "module = app:application") || !strings.Contains(string(ini), "processes = 2") {
			t.Errorf("vassal %d: %q", n, ini)
		}
	}
	if len(p.vassals) != 2 {
		t.Errorf("%d vassals, want 2", len(p.vassals))
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"bad port", map[string]string{"Procfile": "web: x\n", "ENV": "PORT=http\n"}, `PORT="http" is not a port number`},
		{"port out of range", map[string]string{"Procfile": "web: x\n", "ENV": "PORT=70000\n"}, "not a port number"},
		{"bad duration", map[string]string{"Procfile": "web: x\n", "ENV": "PIKU_STOP_TIMEOUT=soon\n"}, "PIKU_STOP_TIMEOUT"},
		{"negative duration", map[string]string{"Procfile": "web: x\n", "ENV": "PIKU_BOOT_TIMEOUT=-1s\n"}, "PIKU_BOOT_TIMEOUT"},
		{"bad number", map[string]string{"Procfile": "web: x\n", "ENV": "PIKU_LOG_BACKUPS=many\n"}, "PIKU_LOG_BACKUPS"},
		{"bad procfile", map[string]string{"Procfile": "web x\n"}, "Procfile"},
		{"bad memory limit", map[string]string{"Procfile": "web: x\n", "ENV": "PIKU_MEMORY_MAX=lots\n"},
			`app "app": ENV: PIKU_MEMORY_MAX="lots": accepted is a size of at least 4M`},
		{"bad process limit", map[string]string{"Procfile": "web: x\n", "envs/app/ENV": "PIKU_PIDS_MAX=2\n"},
			`PIKU_PIDS_MAX="2": accepted is a whole number from 16`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := planFor(t, tt.files)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestDurationKey(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, true}, {"10", 10 * time.Second, true}, {"2.5", 2500 * time.Millisecond, true},
		{"500ms", 500 * time.Millisecond, true}, {"1m", time.Minute, true}, {" 3 ", 3 * time.Second, true},
		{"soon", 0, false}, {"-1s", 0, false}, {"10 s", 0, false},
	}
	for _, tt := range tests {
		env := procfile.NewEnv()
		env.Set("K", tt.in)
		got, err := durationKey(env, "K")
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("durationKey(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
