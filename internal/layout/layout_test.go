package layout

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestValidateApp(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"blog", true},
		{"my-app_2.v1", true},
		{"A", true},
		{"_x", true},
		{"", false},
		{".", false},
		{"..", false},
		{"../x", false},
		{"a/b", false},
		{"-rf", false},
		{".hidden", false},
		{"a b", false},
		{"a;rm -rf", false},
		{"$(id)", false},
		{"`id`", false},
		{"a|b", false},
		{"a\nb", false},
		{"ünï", false},
		{string(make([]byte, 65)), false},
		{"piku.log", false},
		{"piku-2026-11-25T18-52-10.000.log", false},
		{"piku", true},
		{"piku.logs", true},
		{"my-piku.log", true},
	}
	for _, tt := range tests {
		err := ValidateApp(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateApp(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestAppFromRepoPath(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"app", "app", true},
		{"/app", "app", true},
		{"~/app", "app", true},
		{"app.git", "app", true},
		{"/app.git", "app", true},
		{"../app", "", false},
		{"/etc/passwd", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := AppFromRepoPath(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("AppFromRepoPath(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestPaths(t *testing.T) {
	r, err := New("/srv/piku")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ got, want string }{
		{r.App("a"), "/srv/piku/apps/a"},
		{r.Repo("a"), "/srv/piku/repos/a"},
		{r.EnvFile("a"), "/srv/piku/envs/a/ENV"},
		{r.LiveEnvFile("a"), "/srv/piku/envs/a/LIVE_ENV"},
		{r.ScalingFile("a"), "/srv/piku/envs/a/SCALING"},
		{r.ProcessLog("a", "web", 2), "/srv/piku/logs/a/web.2.log"},
		{r.VassalAvailable("a", "wsgi", 1), "/srv/piku/uwsgi-available/a_wsgi.1.ini"},
		{r.VassalEnabled("a", "wsgi", 1), "/srv/piku/uwsgi-enabled/a_wsgi.1.ini"},
		{r.Socket(), "/srv/piku/run/piku.sock"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
}

func TestAppsListsOnlyValidDirs(t *testing.T) {
	r, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Init(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"b", "a", ".tmp"} {
		if err := os.MkdirAll(r.App(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.AppsDir(), "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A released app is a symlink to its live release; a dangling link is
	// not an app.
	if err := os.MkdirAll(r.Release("c", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(r.Release("c", "1"), r.App("c")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(r.Release("d", "1"), r.App("d")); err != nil {
		t.Fatal(err)
	}
	apps, err := r.Apps()
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 3 || apps[0] != "a" || apps[1] != "b" || apps[2] != "c" {
		t.Fatalf("Apps() = %v, want [a b c]", apps)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "ENV")
	if err := WriteFile(p, []byte("A=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	// Concurrent writers never leave a torn file or temp files behind.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := WriteFile(p, []byte("B=2\n"), 0o600); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "B=2\n" {
		t.Fatalf("content %q, %v", b, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Fatalf("left files behind: %v", entries)
	}
}

func TestVassalOwner(t *testing.T) {
	apps := map[string]bool{"foo": true, "foo_bar": true, "a.b": true}
	for _, tt := range []struct{ name, want string }{
		{"foo_web.1.ini", "foo"},
		{"foo_wsgi.12.ini", "foo"},
		{"foo_bar_wsgi.1.ini", "foo_bar"},
		{"foo_bar.1.ini", "foo"}, // foo's kind "bar"
		{"foo_cron_daily.1.ini", "foo"},
		{"a.b_web.1.ini", "a.b"},
		{"foo_.1.ini", ""},
		{"foo_web.ini", ""},
		{"foo_web.x.ini", ""},
		{"foo_web.1.conf", ""},
		{"other_web.1.ini", ""},
		{"foo.1.ini", ""},
	} {
		if got := VassalOwner(tt.name, apps); got != tt.want {
			t.Errorf("VassalOwner(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestVassalFilesKeepsOtherApps lays out vassals of apps foo and foo_bar
// and checks that foo's listing holds only its own.
func TestVassalFilesKeepsOtherApps(t *testing.T) {
	r, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Init(); err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"foo", "foo_bar"} {
		if err := os.MkdirAll(r.App(app), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{r.VassalAvailable(app, "wsgi", 1), r.VassalEnabled(app, "wsgi", 1)} {
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := r.VassalFiles("foo")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{r.VassalAvailable("foo", "wsgi", 1), r.VassalEnabled("foo", "wsgi", 1)}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("VassalFiles(foo) = %q, want %q", got, want)
	}
}

// TestInitModes checks Init leaves PIKU_ROOT and the folders holding
// code, data and secrets to the piku user alone, also when they already
// existed with looser modes (a root set up by an older version).
func TestInitModes(t *testing.T) {
	r, err := New(filepath.Join(t.TempDir(), "piku"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(r.ReposDir(), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(r.ReposDir(), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := r.Init(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dir  string
		mode os.FileMode
	}{
		{r.Dir(), 0o700},
		{r.AppsDir(), 0o700},
		{r.ReposDir(), 0o700},
		{r.ReleasesDir(), 0o700},
		{r.DataDir(), 0o700},
		{r.EnvsDir(), 0o700},
		{r.CacheDir(), 0o700},
		{r.CertsDir(), 0o700},
		{r.RunDir(), 0o700},
		{r.LogsDir(), 0o750},
		{r.UwsgiAvailableDir(), 0o750},
		{r.UwsgiEnabledDir(), 0o750},
	}
	for _, tt := range tests {
		fi, err := os.Stat(tt.dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != tt.mode {
			t.Errorf("%s: mode %o, want %o", tt.dir, got, tt.mode)
		}
	}
}
