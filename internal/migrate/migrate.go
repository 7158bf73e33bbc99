// Package migrate takes a server over from Python piku and gives it back.
//
// The daemon's first start and the first push to each app change files
// that Python piku needs: the daemon removes the uWSGI vassals of the kinds
// it runs itself (web, workers, cron), rewrites the wsgi-family vassals and
// LIVE_ENV, and the first push replaces the repository's post-receive hook
// and moves apps/APP into releases/. Save keeps Python piku's copies in
// PIKU_ROOT/python-piku/ before any of that happens; Back puts them back,
// turns apps/APP into a plain checkout again and points the SSH keys at
// Python piku. Check lists what the first start will change and what does
// not carry over.
package migrate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/layout"
)

// manifest is python-piku/manifest.json: what Save kept and how Keys
// rewrote the authorized_keys file.
type manifest struct {
	// Saved is when Save ran.
	Saved time.Time `json:"saved"`
	// Apps are the apps that were plain Python piku checkouts.
	Apps []string `json:"apps"`
	// Script is Python piku's piku.py, as its hooks and keys name it.
	Script string `json:"script,omitempty"`
	// KeysFile is the authorized_keys file Keys rewrote.
	KeysFile string `json:"keys_file,omitempty"`
	// Binary is the piku binary Keys pointed the keys at.
	Binary string `json:"binary,omitempty"`
	// Keys maps each line Keys wrote to the line it replaced.
	Keys map[string]string `json:"keys,omitempty"`
	// Modes are the permission bits PIKU_ROOT (".") and its folders had
	// before this piku set its own (layout.Root.Init), by path relative to
	// PIKU_ROOT: Python piku's nginx reads a wsgi app's socket, static
	// files and cache through them.
	Modes map[string]os.FileMode `json:"modes,omitempty"`
}

// pythonModes returns the modes of PIKU_ROOT and its folders that differ
// from the ones Init sets, by path relative to PIKU_ROOT.
func pythonModes(root layout.Root) map[string]os.FileMode {
	modes := map[string]os.FileMode{}
	for _, d := range root.Dirs() {
		fi, err := os.Stat(d.Path)
		if err != nil || !fi.IsDir() || fi.Mode().Perm() == d.Mode {
			continue
		}
		rel, err := filepath.Rel(root.Dir(), d.Path)
		if err != nil {
			continue
		}
		modes[rel] = fi.Mode().Perm()
	}
	return modes
}

// describeModes lists modes as "PIKU_ROOT 0755, apps 0755, ...", in the
// order of root.Dirs.
func describeModes(root layout.Root, modes map[string]os.FileMode) string {
	var parts []string
	for _, d := range root.Dirs() {
		rel, _ := filepath.Rel(root.Dir(), d.Path)
		if m, ok := modes[rel]; ok {
			name := rel
			if rel == "." {
				name = "PIKU_ROOT"
			}
			parts = append(parts, fmt.Sprintf("%s %04o", name, m))
		}
	}
	return strings.Join(parts, ", ")
}

// isPythonVassal reports whether a vassal file was written by Python piku:
// this piku's vassals always serve on "$(PORT)", expanded by uWSGI; Python
// piku wrote the port itself.
func isPythonVassal(b []byte) bool { return !bytes.Contains(b, []byte("$(PORT)")) }

// hookScript matches the command line of Python piku's post-receive hook
// and captures piku.py's path.
var hookScript = regexp.MustCompile(`(\S+) git-hook \S+\s*$`)

// readManifest reads python-piku/manifest.json; ok is false when nothing
// was saved.
func readManifest(root layout.Root) (m manifest, ok bool, err error) {
	b, err := os.ReadFile(root.PythonPikuManifest())
	if errors.Is(err, os.ErrNotExist) {
		return m, false, nil
	}
	if err != nil {
		return m, false, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, false, fmt.Errorf("%s: %w", root.PythonPikuManifest(), err)
	}
	return m, true, nil
}

func writeManifest(root layout.Root, m manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return layout.WriteFile(root.PythonPikuManifest(), append(b, '\n'), 0o600)
}

// plainApps lists the apps whose apps/APP is a plain directory, as Python
// piku left it (not a link to a release).
func plainApps(root layout.Root) ([]string, error) {
	apps, err := root.Apps()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, app := range apps {
		if fi, err := os.Lstat(root.App(app)); err == nil && fi.Mode()&os.ModeSymlink == 0 {
			out = append(out, app)
		}
	}
	return out, nil
}

// pythonVassals lists the vassal files in uwsgi-available/ (enabled false)
// or uwsgi-enabled/ that Python piku wrote.
func pythonVassals(root layout.Root, enabled bool) (map[string][]byte, error) {
	dir := root.UwsgiAvailableDir()
	if enabled {
		dir = root.UwsgiEnabledDir()
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".ini") || !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if isPythonVassal(b) {
			out[e.Name()] = b
		}
	}
	return out, nil
}

// repos lists the app names under repos/.
func repos(root layout.Root) ([]string, error) {
	entries, err := os.ReadDir(root.ReposDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && layout.ValidateApp(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// pythonHook returns repos/APP/hooks/post-receive when it is Python piku's.
func pythonHook(root layout.Root, app string) ([]byte, bool) {
	b, err := os.ReadFile(root.RepoHook(app, "post-receive"))
	return b, err == nil && bytes.Contains(b, []byte("git-hook"))
}

// pythonRan reports whether Python piku's own files are here: a vassal
// file it wrote, or its post-receive hook in a repository.
func pythonRan(root layout.Root) (bool, error) {
	for _, enabled := range []bool{false, true} {
		vassals, err := pythonVassals(root, enabled)
		if err != nil || len(vassals) > 0 {
			return len(vassals) > 0, err
		}
	}
	rs, err := repos(root)
	if err != nil {
		return false, err
	}
	for _, app := range rs {
		if _, ok := pythonHook(root, app); ok {
			return true, nil
		}
	}
	return false, nil
}

// Save keeps Python piku's files in python-piku/ the first time it runs on
// a server Python piku left: its vassal files, its post-receive hooks, the
// LIVE_ENV of every app still in a plain checkout, and the modes of
// PIKU_ROOT and its folders (so it must run before layout.Root.Init sets
// piku's). It changes nothing else, and does nothing when python-piku/
// exists or nothing shows that Python piku ran here: only its vassals and
// hooks do, since an app put in apps/ by hand gets a LIVE_ENV from this
// piku too. It returns whether it kept anything.
func Save(root layout.Root, now time.Time) (bool, error) {
	if _, err := os.Stat(root.PythonPikuDir()); err == nil {
		return false, nil
	}
	m := manifest{Saved: now.UTC()}
	files := map[string][]byte{} // path under python-piku -> content
	for _, enabled := range []bool{false, true} {
		vassals, err := pythonVassals(root, enabled)
		if err != nil {
			return false, fmt.Errorf("keeping Python piku's vassals: %w", err)
		}
		for name, b := range vassals {
			files[filepath.Join(root.PythonPikuVassalDir(enabled), name)] = b
		}
	}
	rs, err := repos(root)
	if err != nil {
		return false, fmt.Errorf("keeping Python piku's hooks: %w", err)
	}
	for _, app := range rs {
		if b, ok := pythonHook(root, app); ok {
			files[root.PythonPikuHook(app)] = b
			if sm := hookScript.FindSubmatch(b); sm != nil && m.Script == "" {
				m.Script = string(sm[1])
			}
		}
	}
	if len(files) == 0 {
		return false, nil // Python piku never ran here
	}
	if m.Apps, err = plainApps(root); err != nil {
		return false, err
	}
	for _, app := range m.Apps {
		if b, err := os.ReadFile(root.LiveEnvFile(app)); err == nil {
			files[root.PythonPikuLiveEnv(app)] = b
		}
	}
	if modes := pythonModes(root); len(modes) > 0 {
		m.Modes = modes
	}
	// Written beside python-piku/ and renamed, so python-piku/ is there
	// complete or not at all.
	tmp := root.PythonPikuDir() + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return false, err
	}
	rel := func(p string) string { return filepath.Join(tmp, strings.TrimPrefix(p, root.PythonPikuDir())) }
	for p, b := range files {
		if err := os.MkdirAll(filepath.Dir(rel(p)), 0o700); err != nil {
			return false, err
		}
		perm := os.FileMode(0o600)
		if filepath.Base(p) == "post-receive" {
			perm = 0o700
		}
		if err := os.WriteFile(rel(p), b, perm); err != nil {
			return false, err
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return false, err
	}
	if err := os.WriteFile(rel(root.PythonPikuManifest()), append(b, '\n'), 0o600); err != nil {
		return false, err
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, root.PythonPikuDir()); err != nil {
		return false, fmt.Errorf("keeping Python piku's files: %w", err)
	}
	return true, nil
}

// keyCommand matches the forced command of a key line Python piku's
// setup:ssh wrote: "... SCRIPT $SSH_ORIGINAL_COMMAND" where SCRIPT is
// piku.py.
var keyCommand = regexp.MustCompile(`(\S*piku\.py) \$SSH_ORIGINAL_COMMAND`)

// Keys points every authorized_keys line in keysFile that runs Python
// piku's piku.py at binary instead (with PIKU_ROOT=rootEnv in front when
// rootEnv is not ""), keeping the old lines in the manifest for Back. It
// saves Python piku's files first (Save) and returns how many lines it
// rewrote.
func Keys(root layout.Root, keysFile, binary, rootEnv string, now time.Time) (int, error) {
	if _, err := Save(root, now); err != nil {
		return 0, err
	}
	m, ok, err := readManifest(root)
	if err != nil {
		return 0, err
	}
	if !ok {
		m = manifest{Saved: now.UTC()}
	}
	data, err := os.ReadFile(keysFile)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if m.Keys == nil {
		m.Keys = map[string]string{}
	}
	var out bytes.Buffer
	n := 0
	for _, line := range lines(data) {
		sm := keyCommand.FindStringSubmatchIndex(line)
		if sm == nil {
			out.WriteString(line + "\n")
			continue
		}
		script := line[sm[2]:sm[3]]
		// Quoted, as setup:ssh writes it, so that the login shell hands the
		// client's command over as one word and globs nothing in it.
		cmd := binary + ` \"$SSH_ORIGINAL_COMMAND\"`
		if rootEnv != "" && !strings.Contains(line[:sm[0]], "PIKU_ROOT=") {
			cmd = "PIKU_ROOT=" + rootEnv + " " + cmd
		}
		nl := line[:sm[0]] + cmd + line[sm[1]:]
		m.Keys[nl] = line
		if m.Script == "" {
			m.Script = script
		}
		out.WriteString(nl + "\n")
		n++
	}
	if n == 0 {
		return 0, nil
	}
	m.KeysFile, m.Binary = keysFile, binary
	if err := os.MkdirAll(root.PythonPikuDir(), 0o700); err != nil {
		return 0, err
	}
	if err := writeManifest(root, m); err != nil {
		return 0, err
	}
	if err := layout.WriteFile(keysFile, out.Bytes(), 0o600); err != nil {
		return 0, err
	}
	return n, nil
}

func lines(data []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// Back gives the server back to Python piku: apps/APP becomes a plain
// checkout of the live release again, the kept vassal files, post-receive
// hooks and LIVE_ENV files are put back (the vassals this piku wrote are
// removed), piku's pre-receive hooks are removed, and the authorized_keys
// lines Keys rewrote run piku.py again. python-piku/ is removed at the end.
// The daemon must be stopped. It returns a line per thing done, and one per
// thing Python piku will need a push for.
func Back(root layout.Root) ([]string, error) {
	m, ok, err := readManifest(root)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("nothing to go back to: %s holds no files of Python piku's (was this server ever run by Python piku?)", root.PythonPikuDir())
	}
	var report []string
	say := func(format string, args ...any) { report = append(report, fmt.Sprintf(format, args...)) }

	// apps/APP: the live release, moved back into place.
	apps, err := root.Apps()
	if err != nil {
		return nil, err
	}
	for _, app := range apps {
		target, err := os.Readlink(root.App(app))
		if err != nil {
			continue // a plain checkout already
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(root.AppsDir(), target)
		}
		if filepath.Dir(filepath.Clean(target)) != root.Releases(app) {
			return report, fmt.Errorf("app %q: %s links to %s, not to one of its releases", app, root.App(app), target)
		}
		if err := os.Remove(root.App(app)); err != nil {
			return report, err
		}
		if err := os.Rename(target, root.App(app)); err != nil {
			return report, fmt.Errorf("app %q: moving release %s back to %s: %w", app, filepath.Base(target), root.App(app), err)
		}
		_ = os.Remove(target + ".json")
		say("apps/%s: the checkout of release %s", app, filepath.Base(target))
	}

	// Vassals: this piku's go, Python piku's come back, but for apps
	// destroyed since.
	live := map[string]bool{}
	for _, app := range apps {
		live[app] = true
	}
	for _, enabled := range []bool{false, true} {
		dir := root.UwsgiAvailableDir()
		if enabled {
			dir = root.UwsgiEnabledDir()
		}
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return report, err
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			if b, err := os.ReadFile(p); err == nil && strings.HasSuffix(e.Name(), ".ini") && !isPythonVassal(b) {
				if err := os.Remove(p); err != nil {
					return report, err
				}
			}
		}
		saved, err := os.ReadDir(root.PythonPikuVassalDir(enabled))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return report, err
		}
		for _, e := range saved {
			if layout.VassalOwner(e.Name(), live) == "" {
				say("%s/%s: not restored: its app is gone", filepath.Base(dir), e.Name())
				continue
			}
			b, err := os.ReadFile(filepath.Join(root.PythonPikuVassalDir(enabled), e.Name()))
			if err != nil {
				return report, err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return report, err
			}
			if err := layout.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
				return report, err
			}
			say("%s/%s: restored", filepath.Base(dir), e.Name())
		}
	}

	// Hooks and LIVE_ENV.
	rs, err := repos(root)
	if err != nil {
		return report, err
	}
	for _, app := range rs {
		if b, err := os.ReadFile(root.RepoHook(app, "pre-receive")); err == nil && bytes.Contains(b, []byte("git-hook")) {
			if err := os.Remove(root.RepoHook(app, "pre-receive")); err != nil {
				return report, err
			}
		}
		b, err := os.ReadFile(root.PythonPikuHook(app))
		switch {
		case err == nil:
		case !errors.Is(err, os.ErrNotExist):
			return report, err
		case m.Script != "":
			// An app first pushed after the switch: the hook Python
			// piku's git-receive-pack would have written.
			b = []byte("#!/usr/bin/env bash\nset -e; set -o pipefail;\ncat | PIKU_ROOT=\"" + root.Dir() + "\" " + m.Script + " git-hook " + app)
		default:
			say("repos/%s: no post-receive hook: push once with Python piku's git-receive-pack to deploy it", app)
			continue
		}
		if err := layout.WriteFile(root.RepoHook(app, "post-receive"), b, 0o755); err != nil {
			return report, err
		}
		say("repos/%s/hooks/post-receive: restored", app)
	}
	for _, app := range m.Apps {
		if !live[app] {
			continue
		}
		b, err := os.ReadFile(root.PythonPikuLiveEnv(app))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return report, err
		}
		if err := layout.WriteFile(root.LiveEnvFile(app), b, 0o600); err != nil {
			return report, err
		}
	}
	sort.Strings(apps)
	for _, app := range apps {
		if !contains(m.Apps, app) {
			say("app %q was first deployed by this piku: Python piku has no vassal for it until it is pushed again", app)
		}
	}

	// SSH keys.
	if m.KeysFile != "" && len(m.Keys) > 0 {
		n, err := keysBack(m)
		if err != nil {
			return report, err
		}
		say("%s: %d key lines run %s again", m.KeysFile, n, m.Script)
	}
	// Modes last: what came back above is reachable through them again.
	if len(m.Modes) > 0 {
		for rel, mode := range m.Modes {
			if err := os.Chmod(filepath.Join(root.Dir(), rel), mode); err != nil && !errors.Is(err, os.ErrNotExist) {
				return report, err
			}
		}
		say("modes as Python piku had them: %s", describeModes(root, m.Modes))
	}
	if err := os.RemoveAll(root.PythonPikuDir()); err != nil {
		return report, err
	}
	return report, nil
}

// keysBack rewrites the key lines Keys wrote back to what they were, and
// points lines added since (setup:ssh with this piku) at piku.py too.
func keysBack(m manifest) (int, error) {
	data, err := os.ReadFile(m.KeysFile)
	if err != nil {
		return 0, err
	}
	since := regexp.MustCompile(`(PIKU_ROOT=\S+ )?` + regexp.QuoteMeta(m.Binary) + ` (?:\\"\$SSH_ORIGINAL_COMMAND\\"|\$SSH_ORIGINAL_COMMAND)`)
	var out bytes.Buffer
	n := 0
	for _, line := range lines(data) {
		if old, ok := m.Keys[line]; ok {
			line = old
			n++
		} else if m.Script != "" && since.MatchString(line) {
			line = since.ReplaceAllLiteralString(line, m.Script+" $SSH_ORIGINAL_COMMAND")
			n++
		}
		out.WriteString(line + "\n")
	}
	return n, layout.WriteFile(m.KeysFile, out.Bytes(), 0o600)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Check lists, without changing anything, what the daemon's first start
// and the first pushes will change on a server Python piku left, what is
// kept for `piku migrate back`, and what does not carry over. keysFile is
// the piku user's authorized_keys.
func Check(root layout.Root, keysFile string) ([]string, error) {
	var out []string
	say := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	m, kept, err := readManifest(root)
	if err != nil {
		return nil, err
	} else if kept {
		say("Python piku's files are already kept in %s (`piku migrate back` restores them)", root.PythonPikuDir())
	}
	ran, err := pythonRan(root)
	if err != nil {
		return nil, err
	}
	switch modes := pythonModes(root); {
	case kept && len(m.Modes) > 0:
		say("modes: `piku migrate back` restores Python piku's: %s", describeModes(root, m.Modes))
	case kept:
	case ran && len(modes) > 0:
		say("modes: the daemon makes PIKU_ROOT and its code, data and secrets folders 0700, logs/ and the vassal folders 0750; Python piku's (%s) are kept for `piku migrate back`", describeModes(root, modes))
	}
	apps, err := plainApps(root)
	if err != nil {
		return nil, err
	}
	for _, app := range apps {
		say("apps/%s: started from its checkout as it is; its first push keeps it as an adopted release in releases/%s and makes apps/%s a link", app, app, app)
	}
	for _, enabled := range []bool{false, true} {
		vassals, err := pythonVassals(root, enabled)
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(vassals))
		for name := range vassals {
			names = append(names, name)
		}
		sort.Strings(names)
		dir := filepath.Base(root.PythonPikuVassalDir(enabled))
		for _, name := range names {
			what := "removed: the daemon runs this process itself"
			if strings.Contains(string(vassals[name]), "\nmodule = ") || strings.Contains(string(vassals[name]), "\nphp-docroot = ") {
				what = "rewritten to serve HTTP on the port the daemon picks"
			}
			say("%s/%s: %s (kept in python-piku/)", dir, name, what)
		}
	}
	rs, err := repos(root)
	if err != nil {
		return nil, err
	}
	for _, app := range rs {
		if _, ok := pythonHook(root, app); ok {
			say("repos/%s/hooks/post-receive: replaced by piku's pre-receive hook on the first push (kept in python-piku/)", app)
		}
	}
	for _, app := range apps {
		if _, err := os.Stat(root.LiveEnvFile(app)); err == nil && (ran || kept) {
			say("envs/%s/LIVE_ENV: rewritten by the daemon (kept in python-piku/)", app)
		}
	}
	if data, err := os.ReadFile(keysFile); err == nil {
		n := 0
		for _, line := range lines(data) {
			if keyCommand.MatchString(line) {
				n++
			}
		}
		if n > 0 {
			say("%s: %d key lines run piku.py: `piku migrate` points them at this binary", keysFile, n)
		}
	}
	all, err := root.Apps()
	if err != nil {
		return nil, err
	}
	var hosts []string
	for _, app := range all {
		env, _, err := appconfig.LoadEnv(root, app)
		if err != nil {
			say("app %q: %v", app, err)
			continue
		}
		if v, ok := env.Get("NGINX_SERVER_NAME"); ok && strings.TrimSpace(v) != "" {
			hosts = append(hosts, strings.Fields(strings.ReplaceAll(v, ",", " "))...)
		}
		if v, ok := env.Get("NGINX_INCLUDE_FILE"); ok && v != "" {
			say("not carried over: app %q sets NGINX_INCLUDE_FILE=%s; the built-in proxy does not read nginx directives", app, v)
		}
	}
	say("the daemon serves HTTP on :80 and HTTPS on :443 (stop nginx first, or set PIKU_HTTP / PIKU_HTTPS, or http: / https: in piku.yaml; empty turns one off)")
	if len(hosts) > 0 {
		say("the daemon requests an ACME certificate for %s (PIKU_ACME=false or acme: false in piku.yaml turns that off)", strings.Join(hosts, ", "))
	}
	entries, err := os.ReadDir(root.NginxDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		app, ok := strings.CutSuffix(e.Name(), ".conf")
		if !ok {
			continue
		}
		if contains(all, app) {
			continue // written by Python piku from the app's NGINX_* keys, which the proxy reads
		}
		say("not carried over: nginx/%s is not an app's: the built-in proxy does not read nginx configuration", e.Name())
	}
	if _, err := os.Stat(root.PluginsDir()); err == nil {
		say("not carried over: Python piku's plugins/ (its commands are not available)")
	}
	return out, nil
}
