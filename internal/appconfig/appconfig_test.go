package appconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/procfile"
)

func newApp(t *testing.T, files map[string]string) layout.Root {
	t.Helper()
	root, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		p := filepath.Join(root.Dir(), name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestLoadComposesEnvInPikuOrder(t *testing.T) {
	root := newApp(t, map[string]string{
		"apps/blog/Procfile": "web: ./serve\nworker: ./work\ncron1: */5 * * * * ./batch\nrelease: ./migrate\n",
		"apps/blog/ENV":      "GREETING=hi\nURL=http://$APP.example/${GREETING}\nBIND_ADDRESS=0.0.0.0\n",
		"envs/blog/ENV":      "GREETING=override\n",
		"envs/blog/SCALING":  "web:3\ngone:2\n",
	})
	a, err := Load(root, "blog")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"APP":          "blog",
		"DATA_ROOT":    root.Data("blog"),
		"LOG_ROOT":     root.LogsDir(),
		"VIRTUAL_ENV":  root.Env("blog"),
		"PWD":          root.App("blog"),
		"GREETING":     "override",               // envs/APP/ENV wins over the app's ENV
		"URL":          "http://blog.example/hi", // expanded while the app's ENV was read
		"BIND_ADDRESS": "0.0.0.0",                // the app's ENV wins over piku's default
	}
	for k, want := range tests {
		if got, _ := a.Env.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if p, _ := a.Env.Get("PATH"); !strings.HasPrefix(p, root.EnvBin("blog")+":") {
		t.Errorf("PATH = %q, want the env bin dir first", p)
	}
	if a.Scaling["web"] != 3 || a.Scaling["worker"] != 1 || len(a.Scaling) != 2 {
		t.Errorf("Scaling = %v, want web:3 worker:1 (cron and release are not processes; gone is dropped)", a.Scaling)
	}
	if a.Stopped {
		t.Error("Stopped without a mark")
	}
}

func TestLoadErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"procfile", map[string]string{"apps/a/Procfile": "web: ok\nbroken\n"}, "Procfile line 2"},
		{"env", map[string]string{"apps/a/Procfile": "web: ok\n", "apps/a/ENV": "A=1\n=x\n"}, "ENV line 2"},
		{"overrides", map[string]string{"apps/a/Procfile": "web: ok\n", "envs/a/ENV": "1A=x\n"}, "envs/a/ENV line 1"},
		{"scaling", map[string]string{"apps/a/Procfile": "web: ok\n", "envs/a/SCALING": "web:many\n"}, "SCALING line 1"},
		{"no procfile", map[string]string{"apps/a/README": "x"}, "has no Procfile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newApp(t, tt.files)
			_, err := Load(root, "a")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `app "a"`) {
				t.Fatalf("err = %v, want it to name app \"a\" and %q", err, tt.want)
			}
		})
	}
	if _, err := Load(newApp(t, nil), "../etc"); err == nil {
		t.Error("a bad name was accepted")
	}
	if _, err := Load(newApp(t, nil), "missing"); err == nil || !strings.Contains(err.Error(), "not deployed") {
		t.Errorf("missing app: %v", err)
	}
}

func TestOverridesRoundTripLiterally(t *testing.T) {
	root := newApp(t, map[string]string{"apps/a/Procfile": "web: ok\n"})
	e := procfile.NewEnv()
	values := map[string]string{"A": "$HOME and ${B}", "B": "it's \"quoted\"", "C": "two\nlines", "D": ""}
	for k, v := range values {
		e.Set(k, v)
	}
	if err := WriteOverrides(root, "a", e); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(root.EnvFile("a"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ENV mode: %v %v", fi, err)
	}
	got, err := ReadOverrides(root, "a")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range values {
		if v, _ := got.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
}

func TestParseAssignments(t *testing.T) {
	kv, err := ParseAssignments([]string{"A=1", "B=x=y", "C="})
	if err != nil || len(kv) != 3 || kv[1][1] != "x=y" || kv[2][1] != "" {
		t.Fatalf("got %v, %v", kv, err)
	}
	for _, bad := range []string{"novalue", "1A=x", "A B=x", "=x"} {
		if _, err := ParseAssignments([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
