package migrate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piku/piku/internal/layout"
)

const pyLine = `command="FINGERPRINT=SHA256:abc NAME=default /home/piku/piku.py $SSH_ORIGINAL_COMMAND",no-agent-forwarding,no-user-rc,no-X11-forwarding,no-port-forwarding ssh-ed25519 AAAA me@host`

// TestKeysRoundTrip points Python piku's key lines at this binary and
// back: lines Keys rewrote come back byte for byte, lines added since with
// setup:ssh run piku.py too, and other lines are never touched.
func TestKeysRoundTrip(t *testing.T) {
	tests := []struct {
		name, rootEnv string
		before        []string
		migrated      []string // after Keys
		added         string   // a line setup:ssh adds after the switch
		back          []string // after Back
	}{
		{
			name:     "default root",
			before:   []string{"# admin key", "ssh-rsa AAAB admin", pyLine},
			migrated: []string{"# admin key", "ssh-rsa AAAB admin", strings.Replace(pyLine, "/home/piku/piku.py $SSH_ORIGINAL_COMMAND", `/usr/local/bin/piku \"$SSH_ORIGINAL_COMMAND\"`, 1)},
			back:     []string{"# admin key", "ssh-rsa AAAB admin", pyLine},
		},
		{
			name:     "root given",
			rootEnv:  "/srv/piku",
			before:   []string{pyLine},
			migrated: []string{strings.Replace(pyLine, "/home/piku/piku.py $SSH_ORIGINAL_COMMAND", `PIKU_ROOT=/srv/piku /usr/local/bin/piku \"$SSH_ORIGINAL_COMMAND\"`, 1)},
			added:    `command="FINGERPRINT=SHA256:new NAME=default PIKU_ROOT=/srv/piku /usr/local/bin/piku \"$SSH_ORIGINAL_COMMAND\"",no-agent-forwarding ssh-ed25519 BBBB new@host`,
			back: []string{pyLine,
				`command="FINGERPRINT=SHA256:new NAME=default /home/piku/piku.py $SSH_ORIGINAL_COMMAND",no-agent-forwarding ssh-ed25519 BBBB new@host`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, err := layout.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			keys := filepath.Join(t.TempDir(), "authorized_keys")
			if err := os.WriteFile(keys, []byte(strings.Join(tt.before, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			n, err := Keys(root, keys, "/usr/local/bin/piku", tt.rootEnv, time.Now())
			if err != nil || n != 1 {
				t.Fatalf("Keys = %d, %v", n, err)
			}
			if got := read(t, keys); got != strings.Join(tt.migrated, "\n")+"\n" {
				t.Fatalf("after Keys:\n%s", got)
			}
			if tt.added != "" {
				if err := os.WriteFile(keys, []byte(read(t, keys)+tt.added+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Back(root); err != nil {
				t.Fatal(err)
			}
			if got := read(t, keys); got != strings.Join(tt.back, "\n")+"\n" {
				t.Errorf("after Back:\n%s", got)
			}
		})
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSaveOnce keeps only Python piku's vassals (not the ones this piku
// wrote) and does nothing the second time, or on a root Python piku never
// ran.
func TestSaveOnce(t *testing.T) {
	root, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Init(); err != nil {
		t.Fatal(err)
	}
	if saved, err := Save(root, time.Now()); saved || err != nil {
		t.Fatalf("Save on an empty root = %v, %v", saved, err)
	}
	files := map[string]string{
		filepath.Join(root.UwsgiAvailableDir(), "a_web.1.ini"):  "[uwsgi]\nattach-daemon = ./run\nenv = PORT=5000\n",
		filepath.Join(root.UwsgiAvailableDir(), "b_wsgi.1.ini"): "[uwsgi]\nhttp-socket = 127.0.0.1:$(PORT)\n",
	}
	for p, c := range files {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if saved, err := Save(root, time.Now()); !saved || err != nil {
		t.Fatalf("Save = %v, %v", saved, err)
	}
	if got := read(t, filepath.Join(root.PythonPikuVassalDir(false), "a_web.1.ini")); got != files[filepath.Join(root.UwsgiAvailableDir(), "a_web.1.ini")] {
		t.Errorf("kept a_web.1.ini = %q", got)
	}
	if _, err := os.Stat(filepath.Join(root.PythonPikuVassalDir(false), "b_wsgi.1.ini")); !os.IsNotExist(err) {
		t.Errorf("kept this piku's own vassal: %v", err)
	}
	if saved, err := Save(root, time.Now()); saved || err != nil {
		t.Errorf("second Save = %v, %v", saved, err)
	}
}

// TestKeysOnAFreshRoot changes nothing where Python piku never ran: no
// python-piku/ is left behind to stop a later Save.
func TestKeysOnAFreshRoot(t *testing.T) {
	root, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "authorized_keys")
	if err := os.WriteFile(keys, []byte("ssh-ed25519 AAAA me@host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := Keys(root, keys, "/usr/local/bin/piku", "", time.Now()); n != 0 || err != nil {
		t.Fatalf("Keys = %d, %v", n, err)
	}
	if _, err := os.Stat(root.PythonPikuDir()); !os.IsNotExist(err) {
		t.Errorf("python-piku/ was made: %v", err)
	}
	if _, err := Back(root); err == nil || !strings.Contains(err.Error(), "nothing to go back to") {
		t.Errorf("Back = %v", err)
	}
}

// TestBackSkipsDestroyedApps restores no vassal or LIVE_ENV for an app
// destroyed after the switch, so uWSGI does not start what is gone.
func TestBackSkipsDestroyedApps(t *testing.T) {
	root, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Init(); err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"kept", "gone"} {
		if err := os.MkdirAll(root.Env(app), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(root.App(app), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{filepath.Join(root.UwsgiAvailableDir(), app+"_web.1.ini"), root.LiveEnvFile(app)} {
			if err := os.WriteFile(f, []byte("PORT=5000\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if saved, err := Save(root, time.Now()); !saved || err != nil {
		t.Fatalf("Save = %v, %v", saved, err)
	}
	// The daemon rolls out; piku destroy removes gone.
	for _, p := range []string{filepath.Join(root.UwsgiAvailableDir(), "kept_web.1.ini"), filepath.Join(root.UwsgiAvailableDir(), "gone_web.1.ini"),
		root.LiveEnvFile("kept"), root.Env("gone"), root.App("gone")} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	report, err := Back(root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(report, "\n"), "uwsgi-available/gone_web.1.ini: not restored: its app is gone") {
		t.Errorf("report:\n%s", strings.Join(report, "\n"))
	}
	for p, want := range map[string]bool{
		filepath.Join(root.UwsgiAvailableDir(), "kept_web.1.ini"): true,
		root.LiveEnvFile("kept"):                                  true,
		filepath.Join(root.UwsgiAvailableDir(), "gone_web.1.ini"): false,
		root.Env("gone"): false,
	} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", p, err == nil, want)
		}
	}
}

// TestSaveNotOnPikusOwnFiles: an app put in apps/ by hand, which this
// piku's daemon started (and gave a LIVE_ENV), is no sign of Python piku:
// the daemon's next start keeps nothing and makes no python-piku/.
func TestSaveNotOnPikusOwnFiles(t *testing.T) {
	root, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Init(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(root.App("app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if saved, err := Save(root, time.Now()); saved || err != nil {
		t.Fatalf("first start: Save = %v, %v", saved, err)
	}
	// The first start rolled the app out.
	if err := os.MkdirAll(root.Env("app"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.LiveEnvFile("app"), []byte("PORT=20001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if saved, err := Save(root, time.Now()); saved || err != nil {
		t.Errorf("second start: Save = %v, %v; want nothing kept", saved, err)
	}
	if _, err := os.Stat(root.PythonPikuDir()); !os.IsNotExist(err) {
		t.Errorf("python-piku/ was made: %v", err)
	}
	lines, err := Check(root, filepath.Join(t.TempDir(), "authorized_keys"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if strings.Contains(l, "python-piku/") {
			t.Errorf("Check claims something of Python piku's is kept: %q", l)
		}
	}
}

// TestBackRestoresModes: PIKU_ROOT and its folders get back the modes
// Python piku had (its nginx reaches a wsgi app's socket, static files and
// cache through them), which the daemon's start recorded before setting
// its own; `piku migrate --check` says so before and after.
func TestBackRestoresModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".piku")
	root, err := layout.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	// As Python piku leaves a server: folders 0755, a vassal of its own.
	for _, d := range []string{dir, root.AppsDir(), root.DataDir(), root.CacheDir(), root.UwsgiAvailableDir(), root.UwsgiEnabledDir(), root.App("app")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root.UwsgiEnabledDir(), "app_wsgi.1.ini"), []byte("[uwsgi]\nmodule = app:application\nsocket = /home/piku/.piku/run/app.sock\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "authorized_keys")
	wantModes := "PIKU_ROOT 0755, apps 0755, data 0755, cache 0755, uwsgi-available 0755, uwsgi-enabled 0755"
	checkSays := func(when, want string) {
		t.Helper()
		lines, err := Check(root, keys)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "modes: ") && strings.Contains(l, want) {
				return
			}
		}
		t.Errorf("%s: Check has no line on the modes with %q:\n%s", when, want, strings.Join(lines, "\n"))
	}
	checkSays("before the first start", "Python piku's ("+wantModes+") are kept for `piku migrate back`")

	// The daemon's first start.
	if saved, err := Save(root, time.Now()); !saved || err != nil {
		t.Fatalf("Save = %v, %v", saved, err)
	}
	if err := root.Init(); err != nil {
		t.Fatal(err)
	}
	checkSays("after the first start", "`piku migrate back` restores Python piku's: "+wantModes)

	report, err := Back(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := "modes as Python piku had them: " + wantModes; !strings.Contains(strings.Join(report, "\n"), want) {
		t.Errorf("report has no %q:\n%s", want, strings.Join(report, "\n"))
	}
	for _, d := range root.Dirs() {
		fi, err := os.Stat(d.Path)
		if err != nil {
			t.Fatal(err)
		}
		want := d.Mode // folders Python piku did not have keep piku's
		switch d.Path {
		case dir, root.AppsDir(), root.DataDir(), root.CacheDir(), root.UwsgiAvailableDir(), root.UwsgiEnabledDir():
			want = 0o755
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o after migrate back, want %04o", d.Path, fi.Mode().Perm(), want)
		}
	}
}
