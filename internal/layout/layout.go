// Package layout is the one place that knows piku's on-disk layout under
// PIKU_ROOT (apps/, repos/, envs/, logs/, data/, cache/, uwsgi-available/,
// uwsgi-enabled/, certs/, run/) and the rules for app names. No other package
// joins PIKU_ROOT paths by hand.
//
// The layout is the one Python piku uses, so an existing piku server can be
// taken over as is:
//
//	PIKU_ROOT/
//	  apps/APP/            the deployed checkout (Procfile, ENV, code); a
//	                       symlink to releases/APP/ID when pushed with this piku
//	  repos/APP/           the bare git repository users push to
//	  envs/APP/            the app's build environment (virtualenv, node_modules, bin/)
//	  envs/APP/ENV         config:set overrides (0600)
//	  envs/APP/LIVE_ENV    the environment the app was last started with (0600)
//	  envs/APP/SCALING     kind:count per line
//	  logs/APP/            per-process logs, access.log
//	  data/APP/            the app's persistent data (DATA_ROOT), kept on destroy
//	  cache/APP/           the app's cache (NGINX_CACHE_PATH), kept on destroy
//	  cache/.python/KEY/   a virtualenv template per Python interpreter
//	  uwsgi-available/     uWSGI vassal .ini files piku writes
//	  uwsgi-enabled/       the vassals that are switched on
//	  certs/               TLS certificates (ACME and self-signed)
//	  releases/APP/ID/     a kept release (apps/APP links to the live one)
//	  releases/APP/ID.json the release's revision, time, key and config
//	  run/                 the daemon's socket and pid file
//	  python-piku/         Python piku's files, kept for `piku migrate back`
package layout

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Root is a PIKU_ROOT directory. The zero value is not usable; use New or
// FromEnv.
type Root struct {
	dir string
}

// New returns the layout rooted at dir, made absolute.
func New(dir string) (Root, error) {
	if dir == "" {
		return Root{}, errors.New("empty PIKU_ROOT")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Root{}, fmt.Errorf("PIKU_ROOT %q: %w", dir, err)
	}
	return Root{dir: abs}, nil
}

// FromEnv returns the layout named by PIKU_ROOT, or ~/.piku when it is unset,
// as piku does.
func FromEnv() (Root, error) {
	if d := os.Getenv("PIKU_ROOT"); d != "" {
		return New(d)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return Root{}, fmt.Errorf("finding the home directory for PIKU_ROOT: %w", err)
	}
	return New(filepath.Join(home, ".piku"))
}

// Dir is the absolute PIKU_ROOT.
func (r Root) Dir() string { return r.dir }

// Top-level directories.

// AppsDir holds the deployed checkouts.
func (r Root) AppsDir() string { return filepath.Join(r.dir, "apps") }

// ReposDir holds the bare repositories.
func (r Root) ReposDir() string { return filepath.Join(r.dir, "repos") }

// EnvsDir holds the per-app build environments and state files.
func (r Root) EnvsDir() string { return filepath.Join(r.dir, "envs") }

// LogsDir holds per-app log folders and the daemon's own log.
func (r Root) LogsDir() string { return filepath.Join(r.dir, "logs") }

// DataDir holds per-app persistent data.
func (r Root) DataDir() string { return filepath.Join(r.dir, "data") }

// CacheDir holds per-app caches.
func (r Root) CacheDir() string { return filepath.Join(r.dir, "cache") }

// UwsgiAvailableDir holds the vassal .ini files piku writes.
func (r Root) UwsgiAvailableDir() string { return filepath.Join(r.dir, "uwsgi-available") }

// UwsgiEnabledDir holds the vassals that are switched on.
func (r Root) UwsgiEnabledDir() string { return filepath.Join(r.dir, "uwsgi-enabled") }

// CertsDir holds TLS certificates and the ACME account.
func (r Root) CertsDir() string { return filepath.Join(r.dir, "certs") }

// ReleasesDir holds the kept releases of every app.
func (r Root) ReleasesDir() string { return filepath.Join(r.dir, "releases") }

// RunDir holds the control socket and the pid file.
func (r Root) RunDir() string { return filepath.Join(r.dir, "run") }

// Socket is the daemon's control socket.
func (r Root) Socket() string { return filepath.Join(r.RunDir(), "piku.sock") }

// PidFile is where the daemon records its pid.
func (r Root) PidFile() string { return filepath.Join(r.RunDir(), "piku.pid") }

// ProcessStateFile is run/processes.json, the supervisor's record of the
// process groups it started, so a daemon that was killed can be followed
// by one that stops what it left.
func (r Root) ProcessStateFile() string { return filepath.Join(r.RunDir(), "processes.json") }

// CronStateFile is run/cron.json, each cron job's last run, exit and
// duration, so that `piku ps` shows them after the daemon restarts.
func (r Root) CronStateFile() string { return filepath.Join(r.RunDir(), "cron.json") }

// OutputDir is run/output, where each supervised process's output FIFO
// lives: the pipe outlives the daemon, so that apps keep running (and
// their output waits) while no daemon reads it.
func (r Root) OutputDir() string { return filepath.Join(r.RunDir(), "output") }

// daemonLogName is the daemon's log file in logs/, beside the apps' log
// folders; rotated copies are named piku-TIMESTAMP.log.
const daemonLogName = "piku.log"

// DaemonLog is the daemon's own log file.
func (r Root) DaemonLog() string { return filepath.Join(r.LogsDir(), daemonLogName) }

// ConfigFile is the daemon's optional configuration file (piku.yaml; viper
// also accepts piku.toml or piku.json beside it).
func (r Root) ConfigFile() string { return filepath.Join(r.dir, "piku.yaml") }

// Per-app paths. Every method takes an app name that the caller has checked
// with ValidateApp; they never clean or escape it.

// App is the deployed checkout apps/APP.
func (r Root) App(app string) string { return filepath.Join(r.AppsDir(), app) }

// Repo is the bare repository repos/APP.
func (r Root) Repo(app string) string { return filepath.Join(r.ReposDir(), app) }

// Env is the build environment envs/APP (a virtualenv for Python apps).
func (r Root) Env(app string) string { return filepath.Join(r.EnvsDir(), app) }

// EnvBin is the directory put first on the app's PATH.
func (r Root) EnvBin(app string) string { return filepath.Join(r.Env(app), "bin") }

// EnvFile is envs/APP/ENV, the config:set overrides.
func (r Root) EnvFile(app string) string { return filepath.Join(r.Env(app), "ENV") }

// LiveEnvFile is envs/APP/LIVE_ENV, the environment the app runs with.
func (r Root) LiveEnvFile(app string) string { return filepath.Join(r.Env(app), "LIVE_ENV") }

// ScalingFile is envs/APP/SCALING.
func (r Root) ScalingFile(app string) string { return filepath.Join(r.Env(app), "SCALING") }

// StoppedFile marks an app that `piku stop` switched off; the daemon does
// not bring it up until `piku start` or a deploy removes the mark.
func (r Root) StoppedFile(app string) string { return filepath.Join(r.Env(app), "STOPPED") }

// MaintenanceFile is envs/APP/MAINTENANCE: present while `piku
// maintenance:on` has the app in maintenance (JSON: message, stop).
func (r Root) MaintenanceFile(app string) string { return filepath.Join(r.Env(app), "MAINTENANCE") }

// DeployedFromFile is envs/APP/DEPLOYED_FROM: the address of the SSH
// client that pushed the live release, let through NGINX_CLOUDFLARE_ACL as
// piku did.
func (r Root) DeployedFromFile(app string) string { return filepath.Join(r.Env(app), "DEPLOYED_FROM") }

// AppProcfile is the Procfile of the deployed checkout.
func (r Root) AppProcfile(app string) string { return filepath.Join(r.App(app), "Procfile") }

// AppEnvFile is the ENV file of the deployed checkout.
func (r Root) AppEnvFile(app string) string { return filepath.Join(r.App(app), "ENV") }

// Logs is the app's log folder logs/APP.
func (r Root) Logs(app string) string { return filepath.Join(r.LogsDir(), app) }

// ProcessLog is logs/APP/KIND.N.log, one instance's output.
func (r Root) ProcessLog(app, kind string, n int) string {
	return filepath.Join(r.Logs(app), fmt.Sprintf("%s.%d.log", kind, n))
}

// CronLog is logs/APP/KIND.log, the output of a cron entry's runs.
func (r Root) CronLog(app, kind string) string { return filepath.Join(r.Logs(app), kind+".log") }

// AccessLog is logs/APP/access.log.
func (r Root) AccessLog(app string) string { return filepath.Join(r.Logs(app), "access.log") }

// Data is data/APP (DATA_ROOT).
func (r Root) Data(app string) string { return filepath.Join(r.DataDir(), app) }

// Cache is cache/APP.
func (r Root) Cache(app string) string { return filepath.Join(r.CacheDir(), app) }

// VenvTemplate is cache/.python/KEY, a virtualenv with pip made once per
// Python interpreter (KEY names it) that new virtualenvs are seeded from.
// No app can be named .python, so it never meets an app's cache.
func (r Root) VenvTemplate(key string) string { return filepath.Join(r.CacheDir(), ".python", key) }

// ProxyTemp is cache/.proxy, where the proxy keeps the request and
// response bodies too large to hold in memory while a slow client sends
// or reads them (files unlinked as soon as they are made). No app can be
// named .proxy, so it never meets an app's cache.
func (r Root) ProxyTemp() string { return filepath.Join(r.CacheDir(), ".proxy") }

// Releases is releases/APP.
func (r Root) Releases(app string) string { return filepath.Join(r.ReleasesDir(), app) }

// Release is releases/APP/ID, one release's checkout; apps/APP is a symlink
// to the live one.
func (r Root) Release(app, id string) string { return filepath.Join(r.Releases(app), id) }

// ReleaseMeta is releases/APP/ID.json, what a release was made from (0600:
// it holds the config snapshot).
func (r Root) ReleaseMeta(app, id string) string { return filepath.Join(r.Releases(app), id+".json") }

// AppSwitchTemp is apps/.APP.switch, the link made beside apps/APP and
// renamed over it to switch releases atomically.
func (r Root) AppSwitchTemp(app string) string { return filepath.Join(r.AppsDir(), "."+app+".switch") }

// AppBin is apps/APP/.piku/bin, the live release's built commands, where
// envs/APP/bin links to.
func (r Root) AppBin(app string) string { return ReleaseBin(r.App(app)) }

// ReleaseBin is DIR/.piku/bin, where a release's build puts the commands
// it builds (Go and Rust binaries).
func ReleaseBin(releaseDir string) string { return filepath.Join(releaseDir, ".piku", "bin") }

// DepsStamp is envs/APP/.piku-deps-NAME, the digest of the manifests a
// dependency install (pip, npm...) last ran for.
func (r Root) DepsStamp(app, name string) string {
	return filepath.Join(r.Env(app), ".piku-deps-"+name)
}

// BuildTarget is envs/APP/target, the build cache kept between releases
// (CARGO_TARGET_DIR).
func (r Root) BuildTarget(app string) string { return filepath.Join(r.Env(app), "target") }

// DeployLock is the file locked while app is deployed or rolled back, so
// that pushes to one app run one after the other.
func (r Root) DeployLock(app string) string { return filepath.Join(r.Releases(app), ".lock") }

// RepoHook is repos/APP/hooks/NAME, one of the repository's git hooks.
func (r Root) RepoHook(app, name string) string { return filepath.Join(r.Repo(app), "hooks", name) }

// NginxDir is nginx/, where Python piku wrote its nginx configuration
// (this piku's proxy does not read it).
func (r Root) NginxDir() string { return filepath.Join(r.dir, "nginx") }

// PluginsDir is plugins/, Python piku's command plugins.
func (r Root) PluginsDir() string { return filepath.Join(r.dir, "plugins") }

// PythonPikuDir is python-piku/, where the files Python piku needs and this
// piku changes (uWSGI vassals, post-receive hooks, LIVE_ENV) are kept from
// the first start on, so that `piku migrate back` can put them back.
func (r Root) PythonPikuDir() string { return filepath.Join(r.dir, "python-piku") }

// PythonPikuManifest is python-piku/manifest.json, what was kept and the
// authorized_keys lines `piku migrate` rewrote.
func (r Root) PythonPikuManifest() string { return filepath.Join(r.PythonPikuDir(), "manifest.json") }

// PythonPikuVassalDir is python-piku/uwsgi-available or
// python-piku/uwsgi-enabled (enabled), Python piku's vassal files.
func (r Root) PythonPikuVassalDir(enabled bool) string {
	if enabled {
		return filepath.Join(r.PythonPikuDir(), "uwsgi-enabled")
	}
	return filepath.Join(r.PythonPikuDir(), "uwsgi-available")
}

// PythonPikuHook is python-piku/repos/APP/post-receive, the hook Python
// piku deployed from.
func (r Root) PythonPikuHook(app string) string {
	return filepath.Join(r.PythonPikuDir(), "repos", app, "post-receive")
}

// PythonPikuLiveEnv is python-piku/envs/APP/LIVE_ENV, the environment
// Python piku last started app with.
func (r Root) PythonPikuLiveEnv(app string) string {
	return filepath.Join(r.PythonPikuDir(), "envs", app, "LIVE_ENV")
}

// VassalName is the file name of an instance's uWSGI vassal, APP_KIND.N.ini
// as piku names it.
func VassalName(app, kind string, n int) string {
	return fmt.Sprintf("%s_%s.%d.ini", app, kind, n)
}

// VassalAvailable is uwsgi-available/APP_KIND.N.ini.
func (r Root) VassalAvailable(app, kind string, n int) string {
	return filepath.Join(r.UwsgiAvailableDir(), VassalName(app, kind, n))
}

// VassalEnabled is uwsgi-enabled/APP_KIND.N.ini.
func (r Root) VassalEnabled(app, kind string, n int) string {
	return r.VassalEnabledFile(VassalName(app, kind, n))
}

// VassalEnabledFile is uwsgi-enabled/NAME, the enabled copy of the vassal
// file NAME.
func (r Root) VassalEnabledFile(name string) string { return filepath.Join(r.UwsgiEnabledDir(), name) }

// VassalFiles lists the uWSGI vassal files of app in uwsgi-available/ and
// uwsgi-enabled/: the names APP_KIND.N.ini. App names may hold '_', so
// foo_bar_web.1.ini could be app foo's kind bar_web or app foo_bar's kind
// web; it belongs to the longest app name that fits and exists (in apps/ or
// repos/), so rolling out foo never touches foo_bar's files.
func (r Root) VassalFiles(app string) ([]string, error) {
	apps := map[string]bool{app: true}
	for _, dir := range []string{r.AppsDir(), r.ReposDir()} {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("listing %s: %w", dir, err)
		}
		for _, e := range entries {
			if name := strings.TrimSuffix(e.Name(), ".git"); strings.HasPrefix(name, app+"_") {
				apps[name] = true
			}
		}
	}
	var out []string
	for _, dir := range []string{r.UwsgiAvailableDir(), r.UwsgiEnabledDir()} {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", dir, err)
		}
		for _, e := range entries {
			if VassalOwner(e.Name(), apps) == app {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	return out, nil
}

// VassalOwner returns which of apps the vassal file name (APP_KIND.N.ini)
// belongs to: the longest app name that fits, or "" when none does or name
// is not a vassal name.
func VassalOwner(name string, apps map[string]bool) string {
	stem, ok := strings.CutSuffix(name, ".ini")
	if !ok {
		return ""
	}
	dot := strings.LastIndexByte(stem, '.')
	if dot < 0 || dot == len(stem)-1 || strings.Trim(stem[dot+1:], "0123456789") != "" {
		return ""
	}
	stem = stem[:dot] // APP_KIND
	owner := ""
	for i := 0; i < len(stem); i++ {
		if stem[i] == '_' && i+1 < len(stem) && apps[stem[:i]] {
			owner = stem[:i]
		}
	}
	return owner
}

// AppFolders are the folders under PIKU_ROOT that belong to app and that
// the app's own settings (NGINX_STATIC_PATHS, a `static` entry) may point
// into: its checkout link, its releases, its data and its cache. The rest
// of PIKU_ROOT (other apps, every app's envs/ with its secrets, repos/,
// certs/, run/) is not the app's to serve.
func (r Root) AppFolders(app string) []string {
	return []string{r.App(app), r.Releases(app), r.Data(app), r.Cache(app)}
}

// Init creates PIKU_ROOT and its top-level directories, and sets their
// modes also when they existed: PIKU_ROOT and the folders holding code,
// data and secrets (apps, repos, releases, data, envs, cache, certs, run)
// 0700; logs and the vassal folders 0750, for a log reader in the piku
// group.
func (r Root) Init() error {
	for _, d := range r.Dirs() {
		if err := os.MkdirAll(d.Path, d.Mode); err != nil {
			return fmt.Errorf("creating %s: %w", d.Path, err)
		}
		if err := os.Chmod(d.Path, d.Mode); err != nil {
			return err
		}
	}
	return nil
}

// Dir is a folder Init creates, and the mode it gives it.
type Dir struct {
	Path string
	Mode os.FileMode
}

// Dirs are PIKU_ROOT and the folders under it that Init creates, PIKU_ROOT
// first, with the modes Init gives them.
func (r Root) Dirs() []Dir {
	return []Dir{
		{r.dir, 0o700},
		{r.AppsDir(), 0o700}, {r.ReposDir(), 0o700}, {r.ReleasesDir(), 0o700}, {r.DataDir(), 0o700},
		{r.EnvsDir(), 0o700}, {r.CacheDir(), 0o700}, {r.CertsDir(), 0o700}, {r.RunDir(), 0o700},
		{r.LogsDir(), 0o750}, {r.UwsgiAvailableDir(), 0o750}, {r.UwsgiEnabledDir(), 0o750},
	}
}

// Apps lists the deployed apps (the folders under apps/ with a valid name),
// sorted.
func (r Root) Apps() ([]string, error) {
	entries, err := os.ReadDir(r.AppsDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing apps: %w", err)
	}
	var apps []string
	for _, e := range entries {
		// apps/APP is a symlink to the live release (see Release).
		if ValidateApp(e.Name()) == nil && r.Exists(e.Name()) {
			apps = append(apps, e.Name())
		}
	}
	return apps, nil
}

// Exists reports whether apps/APP exists.
func (r Root) Exists(app string) bool {
	fi, err := os.Stat(r.App(app))
	return err == nil && fi.IsDir()
}

// MaxAppName is the longest app name accepted.
const MaxAppName = 64

// ValidateApp checks an app name against piku's rules: letters, digits, '.',
// '_' and '-', not starting with '.' or '-', at most MaxAppName bytes, and
// not the name of a file piku keeps beside the apps' folders (piku.log).
// Anything that could escape PIKU_ROOT or reach a shell is refused.
func ValidateApp(name string) error {
	if name == "" {
		return errors.New("app name is empty")
	}
	if len(name) > MaxAppName {
		return fmt.Errorf("app name %q is longer than %d characters", name, MaxAppName)
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("app name %q must start with a letter, digit or '_'", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("app name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	// logs/APP would be the daemon's own log or one of its rotated copies.
	stem := strings.TrimSuffix(daemonLogName, ".log")
	if name == daemonLogName || strings.HasPrefix(name, stem+"-") && strings.HasSuffix(name, ".log") {
		return fmt.Errorf("app name %q is reserved: piku keeps its own log under that name", name)
	}
	return nil
}

// AppFromRepoPath turns the path a git client sends ("app", "/app",
// "~/app", "app.git") into an app name and validates it.
func AppFromRepoPath(p string) (string, error) {
	p = strings.TrimPrefix(p, "~/")
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, "/")
	p = strings.TrimSuffix(p, ".git")
	if err := ValidateApp(p); err != nil {
		return "", err
	}
	return p, nil
}
