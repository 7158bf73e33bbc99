// Package appconfig reads an app's desired state from its files under
// PIKU_ROOT: the checkout's Procfile and ENV, the config:set overrides in
// envs/APP/ENV and the counts in envs/APP/SCALING. It composes the
// environment every process of the app gets, in piku's order: the bootstrap
// variables piku sets, then the app's ENV, then the overrides. The daemon
// builds process specs from it; `piku run` runs commands with it.
package appconfig

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"

	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/procfile"
)

// App is an app's desired state as its files describe it.
type App struct {
	// Name is the app's name.
	Name string
	// Dir is the deployed checkout: the release apps/APP points to, with
	// the link resolved, so processes started from it stay in that release
	// when a deploy switches the link (a plain apps/APP directory as is).
	Dir string
	// Procfile is the parsed Procfile of the checkout.
	Procfile *procfile.Procfile
	// Env is the complete environment of the app's processes (without
	// PORT and PROC_TYPE, which are per instance).
	Env *procfile.Env
	// Overrides are the config:set settings from envs/APP/ENV.
	Overrides *procfile.Env
	// Scaling is the number of instances of each long-running kind.
	Scaling map[string]int
	// Stopped reports whether `piku stop` switched the app off.
	Stopped bool
}

// Load reads app's files. The app must have been deployed (apps/APP exists
// and has a Procfile).
func Load(root layout.Root, app string) (*App, error) {
	if err := layout.ValidateApp(app); err != nil {
		return nil, err
	}
	if !root.Exists(app) {
		return nil, fmt.Errorf("app %q is not deployed (no %s)", app, root.App(app))
	}
	dir, err := filepath.EvalSymlinks(root.App(app))
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app, err)
	}
	pf, err := readProcfile(root, app)
	if err != nil {
		return nil, err
	}
	env, overrides, err := LoadEnv(root, app)
	if err != nil {
		return nil, err
	}
	counts, err := ReadScaling(root, app)
	if err != nil {
		return nil, err
	}
	if pwd, _ := env.Get("PWD"); pwd == root.App(app) {
		env.Set("PWD", dir)
	}
	a := &App{
		Name:      app,
		Dir:       dir,
		Procfile:  pf,
		Env:       env,
		Overrides: overrides,
		Scaling:   EffectiveScaling(pf, counts),
	}
	if err := CheckInstances(root, app, a.Scaling); err != nil {
		return nil, err
	}
	if _, err := os.Stat(root.StoppedFile(app)); err == nil {
		a.Stopped = true
	}
	return a, nil
}

func readProcfile(root layout.Root, app string) (*procfile.Procfile, error) {
	path := root.AppProcfile(app)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("app %q has no Procfile: add one to the repository (see `piku init`)", app)
	}
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app, err)
	}
	pf, err := procfile.Parse(bytes.NewReader(b), "Procfile")
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app, err)
	}
	return pf, nil
}

// Bootstrap returns the variables piku sets for every process of app before
// the app's own ENV is read: APP, DATA_ROOT, LOG_ROOT, HOME, USER, PATH (the
// app's env bin dir first), VIRTUAL_ENV, PWD, NODE_PATH when the app has
// node_modules, and piku's safe defaults for BIND_ADDRESS,
// NGINX_IPV4_ADDRESS and NGINX_IPV6_ADDRESS.
func Bootstrap(root layout.Root, app string) *procfile.Env {
	e := procfile.NewEnv()
	e.Set("APP", app)
	e.Set("DATA_ROOT", root.Data(app))
	e.Set("LOG_ROOT", root.LogsDir())
	home, _ := os.UserHomeDir()
	e.Set("HOME", home)
	e.Set("USER", currentUser())
	path := root.EnvBin(app) + ":" + os.Getenv("PATH")
	nodeModules := root.Env(app) + "/node_modules"
	if fi, err := os.Stat(nodeModules); err == nil && fi.IsDir() {
		e.Set("NODE_PATH", nodeModules)
		path = nodeModules + "/.bin:" + path
	}
	e.Set("PATH", path)
	e.Set("VIRTUAL_ENV", root.Env(app))
	e.Set("PWD", root.App(app))
	e.Set("BIND_ADDRESS", "127.0.0.1")
	e.Set("NGINX_IPV4_ADDRESS", "0.0.0.0")
	e.Set("NGINX_IPV6_ADDRESS", "[::]")
	return e
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// LoadEnv composes app's environment: Bootstrap, then the checkout's ENV
// (expanded against what precedes it), then envs/APP/ENV. It returns the
// composed environment and the overrides alone.
func LoadEnv(root layout.Root, app string) (env, overrides *procfile.Env, err error) {
	env = Bootstrap(root, app)
	appEnv, err := readEnvFile(root.AppEnvFile(app), "ENV", env)
	if err != nil {
		return nil, nil, fmt.Errorf("app %q: %w", app, err)
	}
	env.Merge(appEnv)
	overrides, err = ReadOverrides(root, app)
	if err != nil {
		return nil, nil, err
	}
	env.Merge(overrides)
	return env, overrides, nil
}

// ReadOverrides reads envs/APP/ENV, the config:set settings (empty when the
// file does not exist). Values are taken literally: config:set stores them
// quoted so nothing in them expands.
func ReadOverrides(root layout.Root, app string) (*procfile.Env, error) {
	e, err := readEnvFile(root.EnvFile(app), root.EnvFile(app), nil)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app, err)
	}
	return e, nil
}

// WriteOverrides writes envs/APP/ENV atomically with mode 0600.
func WriteOverrides(root layout.Root, app string, e *procfile.Env) error {
	var buf bytes.Buffer
	if err := procfile.WriteEnv(&buf, e); err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	return layout.WriteFile(root.EnvFile(app), buf.Bytes(), 0o600)
}

// WriteLiveEnv records the environment app was started with in
// envs/APP/LIVE_ENV (0600), as piku does.
func WriteLiveEnv(root layout.Root, app string, e *procfile.Env) error {
	var buf bytes.Buffer
	if err := procfile.WriteEnv(&buf, e); err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	return layout.WriteFile(root.LiveEnvFile(app), buf.Bytes(), 0o600)
}

// readEnvFile parses an ENV file; a missing file is an empty Env. Variables
// expand against base (which is not modified), then against the earlier
// keys of the file itself.
func readEnvFile(path, name string, base *procfile.Env) (*procfile.Env, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return procfile.NewEnv(), nil
	}
	if err != nil {
		return nil, err
	}
	lookup := func(k string) (string, bool) { return "", false }
	if base != nil {
		lookup = base.Get
	}
	return procfile.ParseEnv(bytes.NewReader(b), name, lookup)
}

// ReadScaling reads envs/APP/SCALING (empty when missing).
func ReadScaling(root layout.Root, app string) (map[string]int, error) {
	path := root.ScalingFile(app)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]int{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app, err)
	}
	counts, err := procfile.ParseScaling(bytes.NewReader(b), path)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app, err)
	}
	return counts, nil
}

// WriteScaling writes envs/APP/SCALING atomically.
func WriteScaling(root layout.Root, app string, counts map[string]int) error {
	var buf bytes.Buffer
	if err := procfile.WriteScaling(&buf, counts); err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	return layout.WriteFile(root.ScalingFile(app), buf.Bytes(), 0o644)
}

// EffectiveScaling returns the instance count of every long-running kind in
// pf: the SCALING count when there is one, else 1, as piku does. Kinds in
// counts that the Procfile no longer has are dropped.
func EffectiveScaling(pf *procfile.Procfile, counts map[string]int) map[string]int {
	out := map[string]int{}
	for _, e := range pf.Processes() {
		n, ok := counts[e.Kind]
		if !ok {
			n = 1
		}
		out[e.Kind] = n
	}
	return out
}

// CheckInstances refuses counts (kind -> instances) that add up to more
// than procfile.MaxInstances, naming the SCALING file and the kinds.
func CheckInstances(root layout.Root, app string, counts map[string]int) error {
	total := 0
	kinds := make([]string, 0, len(counts))
	for k, n := range counts {
		total += n
		kinds = append(kinds, fmt.Sprintf("%s:%d", k, n))
	}
	if total <= procfile.MaxInstances {
		return nil
	}
	sort.Strings(kinds)
	return fmt.Errorf("app %q: %s: %d instances in all (%s), more than %d per app",
		app, root.ScalingFile(app), total, strings.Join(kinds, " "), procfile.MaxInstances)
}

// ParseAssignments parses K=V arguments of config:set. Keys must be valid
// environment variable names.
func ParseAssignments(args []string) ([][2]string, error) {
	var out [][2]string
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not KEY=VALUE", a)
		}
		if !procfile.ValidKey(k) {
			return nil, fmt.Errorf("%q is not a valid variable name (letters, digits and '_', not starting with a digit)", k)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// Kinds returns the long-running process kinds of the app's Procfile,
// sorted.
func (a *App) Kinds() []string {
	kinds := make([]string, 0, len(a.Scaling))
	for k := range a.Scaling {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}

// CheckKind returns an error naming the app and the kinds it has when its
// Procfile has no long-running kind named kind.
func (a *App) CheckKind(kind string) error {
	if _, ok := a.Scaling[kind]; ok {
		return nil
	}
	return fmt.Errorf("app %q has no process kind %q in its Procfile (it has: %s)", a.Name, kind, strings.Join(a.Kinds(), ", "))
}
