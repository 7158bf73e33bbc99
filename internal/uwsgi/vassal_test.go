package uwsgi

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piku/piku/procfile"
)

var update = flag.Bool("update", os.Getenv("PIKU_UPDATE_GOLDEN") == "1", "rewrite golden files")

func env(kv ...string) *procfile.Env {
	e := procfile.NewEnv()
	for i := 0; i < len(kv); i += 2 {
		e.Set(kv[i], kv[i+1])
	}
	return e
}

// TestVassalGolden compares rendered vassals with testdata/NAME.ini. Update
// with -update or PIKU_UPDATE_GOLDEN=1.
func TestVassalGolden(t *testing.T) {
	venv := t.TempDir()
	if err := os.WriteFile(filepath.Join(venv, "pyvenv.cfg"), []byte("home = /usr/bin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	appDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(appDir, "uwsgi.extra"), []byte("# extra\nstatic-map = /s=static\nharakiri=30\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    Options
	}{
		{"wsgi-defaults", Options{App: "blog", Kind: "wsgi", Command: "blog.wsgi:application", AppDir: "/srv/piku/apps/blog",
			Env: env("APP", "blog", "SECRET", "s3cr3t", "PORT", "5000", "ODD", "50%", "PEM", "a\nb")}},
		{"wsgi-knobs", Options{App: "blog", Kind: "wsgi", Command: "app:app", AppDir: appDir, VirtualEnv: venv,
			Env: env("UWSGI_PROCESSES", "4", "UWSGI_THREADS", "8", "UWSGI_MAX_REQUESTS", "500", "UWSGI_LISTEN", "64",
				"UWSGI_ENABLE_THREADS", "no", "UWSGI_LOG_X_FORWARDED_FOR", "false", "UWSGI_IDLE", "60",
				"UWSGI_ASYNCIO", "100", "UWSGI_INCLUDE_FILE", "uwsgi.extra", "BIND_ADDRESS", "0.0.0.0")}},
		{"wsgi-gevent-py2", Options{App: "old", Kind: "wsgi", Command: "app", AppDir: "/a", VirtualEnv: "/nonexistent",
			Env: env("PYTHON_VERSION", "2", "UWSGI_GEVENT", "50", "BIND_ADDRESS", "::1")}},
		{"jwsgi", Options{App: "j", Kind: "jwsgi", Command: "MyApp:application", AppDir: "/a"}},
		{"rwsgi", Options{App: "r", Kind: "rwsgi", Command: "config.ru", AppDir: "/a"}},
		{"php", Options{App: "p", Kind: "php", Command: "/public/", AppDir: "/srv/piku/apps/p"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Vassal(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			// Temp dirs differ per run.
			got = []byte(strings.NewReplacer(appDir, "APPDIR", venv, "VENV").Replace(string(got)))
			golden := filepath.Join("testdata", tt.name+".ini")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (PIKU_UPDATE_GOLDEN=1 creates it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestVassalErrors(t *testing.T) {
	tests := []struct {
		o    Options
		want string
	}{
		{Options{App: "a", Kind: "web", Command: "x", AppDir: "/a"}, "not run by uWSGI"},
		{Options{App: "a", Kind: "wsgi", Command: " ", AppDir: "/a"}, "required"},
		{Options{App: "a", Kind: "wsgi", Command: "x", AppDir: "/a", Env: env("UWSGI_PROCESSES", "many")}, `UWSGI_PROCESSES="many"`},
		{Options{App: "a", Kind: "wsgi", Command: "x", AppDir: "/a", Env: env("UWSGI_THREADS", "0")}, "UWSGI_THREADS"},
		{Options{App: "a", Kind: "wsgi", Command: "x", AppDir: "/a", Env: env("UWSGI_IDLE", "-5")}, "UWSGI_IDLE"},
		{Options{App: "a", Kind: "wsgi", Command: "x", AppDir: "/a", Env: env("UWSGI_ASYNCIO", "x")}, "UWSGI_ASYNCIO"},
		{Options{App: "a", Kind: "wsgi", Command: "x", AppDir: "/a", Env: env("BIND_ADDRESS", "$(X)")}, "BIND_ADDRESS"},
		{Options{App: "a", Kind: "wsgi", Command: "x", AppDir: "/a", Env: env("UWSGI_INCLUDE_FILE", "../etc/passwd")}, "inside the app"},
		{Options{App: "a", Kind: "wsgi", Command: "x", AppDir: "/nonexistent", Env: env("UWSGI_INCLUDE_FILE", "x.ini")}, "reading UWSGI_INCLUDE_FILE"},
	}
	for _, tt := range tests {
		_, err := Vassal(tt.o)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Vassal(%+v) = %v, want %q", tt.o, err, tt.want)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "inc"), []byte("ok = 1\nnot a setting\n"), 0o644)
	_, err := Vassal(Options{App: "a", Kind: "wsgi", Command: "x", AppDir: dir, Env: env("UWSGI_INCLUDE_FILE", "inc")})
	var pe *procfile.Error
	if !errors.As(err, &pe) || pe.Line != 2 {
		t.Errorf("bad include file: %v", err)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "python3_plugin.so"), nil, 0o644)
	found := func(string) (string, error) { return "/usr/bin/uwsgi", nil }
	missing := func(string) (string, error) { return "", errors.New("not found") }
	tests := []struct {
		kind string
		env  *procfile.Env
		look func(string) (string, error)
		want string // "" = no error
	}{
		{"wsgi", nil, found, ""},
		{"wsgi", nil, missing, "apt-get install uwsgi-core uwsgi-plugin-python3"},
		{"wsgi", env("UWSGI_ASYNCIO", "10"), found, "apt-get install uwsgi-plugin-asyncio-python3"},
		{"php", nil, found, "apt-get install uwsgi-plugin-php"},
		{"rwsgi", nil, found, "apt-get install uwsgi-plugin-rack-ruby3.1"},
		{"jwsgi", nil, found, "uwsgi-plugin-jvm-openjdk-17"},
		{"web", nil, found, "not run by uWSGI"},
	}
	for _, tt := range tests {
		err := System{PluginDir: dir, LookPath: tt.look}.Check(tt.kind, tt.env)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Check(%s) = %v, want %q", tt.kind, err, tt.want)
		}
	}
}

// TestInstanceCommand runs the command through a real shell with uwsgi
// replaced by echo: instance N must name its own vassal, whatever the
// directory holds.
func TestInstanceCommand(t *testing.T) {
	tests := []struct {
		dir, n, want string
	}{
		{"/srv/piku/uwsgi-available", "1", "--ini /srv/piku/uwsgi-available/app_wsgi.1.ini"},
		{"/srv/piku/uwsgi-available", "3", "--ini /srv/piku/uwsgi-available/app_wsgi.3.ini"},
		{"/tmp/it's $HOME", "2", "--ini /tmp/it's $HOME/app_wsgi.2.ini"},
	}
	for _, tt := range tests {
		cmd := InstanceCommand(tt.dir, "app", "wsgi")
		line := strings.Replace(cmd, "exec uwsgi", "exec echo", 1)
		c := exec.Command("/bin/sh", "-c", line)
		c.Env = []string{InstanceEnv + "=" + tt.n, "HOME=/nope"}
		out, err := c.Output()
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if got := strings.TrimSpace(string(out)); got != tt.want {
			t.Errorf("instance %s of %q ran %q, want %q", tt.n, tt.dir, got, tt.want)
		}
	}
}

// TestVassalDefaultsArePiku checks that every UWSGI_* knob left unset gets
// the value Python piku's spawn_worker writes (piku.py, spawn_worker:
// env.get('UWSGI_...', DEFAULT)).
func TestVassalDefaultsArePiku(t *testing.T) {
	tests := []struct {
		kind, key, want string
	}{
		{"wsgi", "max-requests", "1024"},         // UWSGI_MAX_REQUESTS
		{"wsgi", "listen", "48"},                 // UWSGI_LISTEN
		{"wsgi", "processes", "2"},               // UWSGI_PROCESSES
		{"wsgi", "enable-threads", "true"},       // UWSGI_ENABLE_THREADS
		{"wsgi", "log-x-forwarded-for", "false"}, // UWSGI_LOG_X_FORWARDED_FOR
		{"wsgi", "threads", "4"},                 // UWSGI_THREADS
		{"jwsgi", "threads", "4"},
		{"rwsgi", "threads", "4"},
		{"php", "processes", "2"},
		{"php", "listen", "48"},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.key, func(t *testing.T) {
			s, err := Settings(Options{App: "a", Kind: tt.kind, Command: "app", AppDir: "/a"})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, st := range s {
				if st.Key == tt.key {
					got = append(got, st.Value)
				}
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("%s = %q, want %q as in piku", tt.key, got, tt.want)
			}
		})
	}
}
