package isolation

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/landlock-lsm/go-landlock/landlock"

	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/procgroup"
)

// The variables that tell `piku __confine` which app it confines, and
// under which PIKU_ROOT.
const (
	confineAppVar  = "PIKU_CONFINE_APP"
	confineRootVar = "PIKU_CONFINE_ROOT"
)

// ConfineSubcommand is the hidden piku subcommand that confines itself to
// an app and then execs the command that follows "--".
const ConfineSubcommand = "__confine"

// LandlockABI returns the kernel's Landlock ABI version, or 0 and why
// there is none.
func LandlockABI() (int, string) { return landlockABI() }

// ConfineEnv returns what to add to the environment of a command of app
// (whose settings get returns) under root so that procgroup.Start runs it
// confined (see Confine): nothing when the kernel has no Landlock or the
// app turned it off (LandlockKey).
func ConfineEnv(root layout.Root, app string, get func(string) (string, bool)) []string {
	if v, _ := value(get, LandlockKey); v == "off" {
		return nil
	}
	if abi, _ := landlockABI(); abi == 0 {
		return nil
	}
	bin := confineBinary()
	if bin == "" {
		return nil
	}
	return []string{procgroup.ConfineVar + "=" + bin, confineAppVar + "=" + app, confineRootVar + "=" + root.Dir()}
}

// confineBinary is the piku binary to re-exec, by a path whose name is
// piku's (the name it was started by, as a test binary dispatches on it),
// or "" when the calling program is a package's test binary, which has
// no __confine to run.
func confineBinary() string {
	if p, err := exec.LookPath(os.Args[0]); err == nil && filepath.Base(p) == "piku" {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	p, err := os.Executable()
	if err != nil || strings.HasSuffix(p, ".test") {
		return ""
	}
	return p
}

// ConfineFromEnv confines the calling process, and all it will start, to
// the app its environment names (see ConfineEnv), removes those variables
// and points TMPDIR at the app's private temporary directory (and the
// caches of pip and npm, when not set, at the app's cache). It returns
// the ABI in use (0: the kernel has none; nothing was restricted).
func ConfineFromEnv() (int, error) {
	app, root := os.Getenv(confineAppVar), os.Getenv(confineRootVar)
	for _, k := range []string{procgroup.ConfineVar, confineAppVar, confineRootVar} {
		_ = os.Unsetenv(k)
	}
	if app == "" || root == "" {
		return 0, errors.New("confine: " + confineAppVar + " and " + confineRootVar + " must name the app and PIKU_ROOT")
	}
	r, err := layout.New(root)
	if err != nil {
		return 0, err
	}
	// A rule needs its directory to exist: a build removes and makes the
	// virtualenv again, a first start has no data yet.
	tmp := TempDir(r, app)
	for _, d := range []string{tmp, r.Env(app), filepath.Join(r.DataDir(), app), filepath.Join(r.LogsDir(), app)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, fmt.Errorf("confining app %q: %w", app, err)
		}
	}
	_ = os.Chmod(tmp, 0o700)
	_ = os.Setenv("TMPDIR", tmp)
	// Caches that default to the home directory (pip's, npm's), which is
	// not the app's to write, go to the app's cache.
	for k, v := range map[string]string{"XDG_CACHE_HOME": filepath.Join(r.CacheDir(), app), "npm_config_cache": filepath.Join(r.CacheDir(), app, "npm")} {
		if _, ok := os.LookupEnv(k); !ok {
			_ = os.Setenv(k, v)
		}
	}
	return Confine(r, app)
}

// TempDir is the app's private temporary directory, cache/APP/tmp.
func TempDir(root layout.Root, app string) string {
	return filepath.Join(root.CacheDir(), app, "tmp")
}

// Writable are the directories the processes of app may write: its
// checkout, release, build environment, data, cache and logs, and /dev.
func Writable(root layout.Root, app string) []string {
	return []string{
		root.App(app), root.Env(app), root.DataDir() + "/" + app, root.CacheDir() + "/" + app,
		root.LogsDir() + "/" + app, root.ReleasesDir() + "/" + app, "/dev",
	}
}

// Readable are the directories and files the processes of app may read
// but not write: everything but PIKU_ROOT (and ~/.ssh beside it), and in
// PIKU_ROOT the app's own repository and uWSGI vassal files (which uwsgi
// reads at its start; a rule holds the file it found, so a vassal
// rewritten later is readable by the instances started after it).
func Readable(root layout.Root, app string) ([]string, error) {
	paths, err := outside(root.Dir())
	if err != nil {
		return nil, err
	}
	vassals, err := root.VassalFiles(app)
	if err != nil {
		return nil, fmt.Errorf("confining app %q: %w", app, err)
	}
	return append(append(paths, root.Repo(app)), vassals...), nil
}

// outside lists the entries of every directory from / down to dir that
// do not lead to dir: granting them grants everything but dir. The
// directory beside dir that holds the user's SSH keys (.ssh) is left out.
func outside(dir string) ([]string, error) {
	var out []string
	cur := "/"
	for _, part := range strings.Split(strings.Trim(filepath.Clean(dir), "/"), "/") {
		if part == "" {
			break
		}
		ents, err := os.ReadDir(cur)
		if err != nil {
			return nil, fmt.Errorf("confine: %w", err)
		}
		for _, e := range ents {
			if e.Name() == part || e.Name() == ".ssh" {
				continue
			}
			out = append(out, filepath.Join(cur, e.Name()))
		}
		cur = filepath.Join(cur, part)
	}
	return out, nil
}

// Confine restricts the calling process and all it starts from then on to
// app under root with Landlock (best effort: the kernel's ABI decides
// what is restricted): they read the system but not PIKU_ROOT beyond the
// app's own directories, write only those (Writable), and, from ABI 6 on,
// cannot signal processes nor reach abstract unix sockets outside their
// domain. Network access is not restricted. It returns the ABI in use.
func Confine(root layout.Root, app string) (int, error) {
	abi, _ := landlockABI()
	if abi == 0 {
		return 0, nil
	}
	ro, err := Readable(root, app)
	if err != nil {
		return abi, err
	}
	var rules []landlock.Rule
	for _, p := range ro {
		// A dangling link, or an entry gone since it was listed (a
		// shared /tmp changes all the time), is left out.
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			continue
		case fi.IsDir():
			rules = append(rules, landlock.RODirs(p).WithIoctlDev().IgnoreIfMissing())
		default:
			rules = append(rules, landlock.ROFiles(p).IgnoreIfMissing())
		}
	}
	for _, p := range Writable(root, app) {
		rules = append(rules, landlock.RWDirs(p).WithRefer().WithIoctlDev().IgnoreIfMissing())
	}
	cfg := landlock.V7.BestEffort()
	cfg.HandledAccessNet = 0
	if err := cfg.Restrict(rules...); err != nil {
		return abi, fmt.Errorf("confining app %q with Landlock: %w", app, err)
	}
	return min(abi, 7), nil
}
