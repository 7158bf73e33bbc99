package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/piku/piku/internal/isolation"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/procgroup"
	"github.com/piku/piku/procfile"
)

// build is one build of a release: where it is and what its commands run
// with.
type build struct {
	ctx  context.Context
	root layout.Root
	app  string
	dir  string        // the release directory
	env  *procfile.Env // the app's environment (Bootstrap + ENV + overrides)
	// limits are what env asks of each process (setLimits).
	limits isolation.Limits
	out    io.Writer // step lines
	cmd    io.Writer // command output (indented)
}

// environ is what build commands run with: the deploying process's own
// environment without git's hook variables, then the app's.
func (b *build) environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GIT_") || k == "SSH_ORIGINAL_COMMAND" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, b.env.Environ()...)
	// Builds and release commands run confined to their app, as its
	// processes do, and with its limits per process: the core file size
	// and the nice value for every kind (not a kind's own), set by their
	// prelude (procgroup.Start, a shell line) before they run anything.
	env = append(env, isolation.ConfineEnv(b.root, b.app, b.env.Get)...)
	env = append(env, b.limits.ProcessEnv("")...)
	return append(env, extra...)
}

// setLimits reads the limits per process the app's environment asks for.
func (b *build) setLimits() error {
	l, err := isolation.ParseLimits(b.env.Get)
	if err != nil {
		return fmt.Errorf("app %q: ENV: %w", b.app, err)
	}
	b.limits = l
	return nil
}

// lookPath finds a program on the app's PATH.
func (b *build) lookPath(prog string) (string, error) {
	if strings.Contains(prog, "/") {
		return prog, nil
	}
	path, _ := b.env.Get("PATH")
	for _, d := range filepath.SplitList(path) {
		p := filepath.Join(d, prog)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// need checks that prog is installed, or fails naming the Debian package
// that provides it.
func (b *build) need(what, prog, pkg string) error {
	if _, err := b.lookPath(prog); err != nil {
		return fmt.Errorf("%s app detected, but %s is not installed on the server: install it with `apt-get install %s`", what, prog, pkg)
	}
	return nil
}

// has reports whether prog is installed.
func (b *build) has(prog string) bool {
	_, err := b.lookPath(prog)
	return err == nil
}

// run runs prog in dir with the build environment plus extra, its output
// indented.
func (b *build) run(dir string, extra []string, prog string, args ...string) error {
	path, err := b.lookPath(prog)
	if err != nil {
		return fmt.Errorf("%s is not installed", prog)
	}
	// Through a shell line, so that the prelude sets the limits first;
	// the shell execs the program with the arguments as given.
	cmd := exec.Command("/bin/sh", append([]string{"-c", `exec "$@"`, "sh", path}, args...)...)
	cmd.Dir = dir
	cmd.Env = b.environ(append([]string{"PWD=" + dir}, extra...)...)
	if err := b.runGroup(b.ctx, cmd); err != nil {
		return fmt.Errorf("`%s` failed: %w", strings.Join(append([]string{prog}, args...), " "), err)
	}
	return nil
}

// shell runs a Procfile command (preflight, release) through sh in the
// release directory, for at most timeout.
func (b *build) shell(command string, timeout time.Duration) error {
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Dir = b.dir
	cmd.Env = b.environ("PWD=" + b.dir)
	ctx, cancel := context.WithTimeoutCause(b.ctx, timeout, fmt.Errorf("timed out after %s (PIKU_RELEASE_TIMEOUT)", timeout))
	defer cancel()
	return b.runGroup(ctx, cmd)
}

// runGroup runs cmd, its output indented, in a process group of its own.
// When ctx ends first (the time is up, or the pushing client went away)
// the whole group is stopped: SIGTERM, SIGKILL after a few seconds; the
// error then says why.
func (b *build) runGroup(ctx context.Context, cmd *exec.Cmd) error {
	cmd.Stdout, cmd.Stderr = b.cmd, b.cmd
	// Output pipes held by a process that left the group must not keep
	// Wait waiting.
	cmd.WaitDelay = 5 * time.Second
	p, err := procgroup.Start(cmd)
	if err != nil {
		return err
	}
	select {
	case <-p.Done():
		_ = p.Signal(syscall.SIGKILL) // what the command left running in its group
		if !cmd.ProcessState.Success() {
			return errors.New(p.Exit())
		}
		return nil
	case <-ctx.Done():
		p.Stop(5*time.Second, nil)
		return fmt.Errorf("stopped (%s): %w", p.Exit(), context.Cause(ctx))
	}
}

func (b *build) step(format string, args ...any) {
	fmt.Fprintf(b.out, "-----> "+format+"\n", args...)
}

// depsChanged reports whether the dependency manifests (paths relative to
// the release) differ from the last successful installation recorded under
// name in envs/APP. Call the returned func once the installation succeeded.
func (b *build) depsChanged(name string, manifests ...string) (bool, func() error) {
	h := sha256.New()
	for _, m := range manifests {
		data, err := os.ReadFile(filepath.Join(b.dir, m))
		if err != nil {
			data = nil
		}
		fmt.Fprintf(h, "%s %d\n", m, len(data))
		h.Write(data)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	file := b.root.DepsStamp(b.app, name)
	old, _ := os.ReadFile(file)
	return string(bytes.TrimSpace(old)) != sum, func() error {
		return layout.WriteFile(file, []byte(sum+"\n"), 0o644)
	}
}

// setting returns an app setting (from ENV or config:set).
func (b *build) setting(key string) string {
	v, _ := b.env.Get(key)
	return v
}

// Python

func (b *build) pythonVenv() error {
	py, pkg := "python3", "python3"
	if v := b.setting("PYTHON_VERSION"); v != "" {
		py = "python" + strings.TrimPrefix(v, "python")
		pkg = py
	}
	if err := b.need("Python", py, pkg); err != nil {
		return err
	}
	venv := b.root.Env(b.app)
	if exists(filepath.Join(venv, "pyvenv.cfg")) && exists(filepath.Join(venv, "bin", "python")) {
		return nil
	}
	b.step("Creating the virtualenv in %s", venv)
	if err := os.MkdirAll(venv, 0o755); err != nil {
		return err
	}
	if err := b.makeVenv(py, venv); err != nil {
		venvPkg := pkg + "-venv"
		return fmt.Errorf("%w (is %s installed? `apt-get install %s`)", err, venvPkg, venvPkg)
	}
	// A new virtualenv has nothing installed: force the installation.
	_ = os.Remove(filepath.Join(venv, ".piku-deps-python"))
	return nil
}

func buildPythonPip(b *build) error {
	if err := b.pythonVenv(); err != nil {
		return err
	}
	changed, done := b.depsChanged("python", "requirements.txt")
	if !changed {
		b.step("requirements.txt unchanged: keeping the installed packages")
		return nil
	}
	b.step("Installing requirements.txt")
	pip := filepath.Join(b.root.EnvBin(b.app), "pip")
	if err := b.run(b.dir, []string{"PIP_DISABLE_PIP_VERSION_CHECK=1"}, pip, "install", "-r", "requirements.txt"); err != nil {
		return err
	}
	return done()
}

func buildPythonProject(b *build) error {
	tool := ""
	switch {
	case b.has("poetry"):
		tool = "poetry"
	case b.has("uv"):
		tool = "uv"
	default:
		return errors.New("pyproject.toml found (Python), but neither poetry nor uv is installed on the server: install one with `apt-get install python3-poetry` (or install uv)")
	}
	if err := b.pythonVenv(); err != nil {
		return err
	}
	changed, done := b.depsChanged("python", "pyproject.toml", "poetry.lock", "uv.lock")
	if !changed {
		b.step("pyproject.toml unchanged: keeping the installed packages")
		return nil
	}
	venv := b.root.Env(b.app)
	b.step("Installing pyproject.toml with %s", tool)
	var err error
	if tool == "poetry" {
		err = b.run(b.dir, []string{"VIRTUAL_ENV=" + venv, "POETRY_VIRTUALENVS_CREATE=false"}, "poetry", "install", "--no-root", "--no-interaction")
	} else {
		err = b.run(b.dir, []string{"UV_PROJECT_ENVIRONMENT=" + venv}, "uv", "sync")
	}
	if err != nil {
		return err
	}
	return done()
}

// Ruby

func buildRuby(b *build) error {
	if err := b.needs("Ruby", "ruby", "ruby", "bundle", "ruby-bundler"); err != nil {
		return err
	}
	// The bundle path is recorded in the release's .bundle/config, so
	// every release needs it, installed or not.
	if err := b.run(b.dir, nil, "bundle", "config", "set", "--local", "path", b.root.Env(b.app)); err != nil {
		return err
	}
	changed, done := b.depsChanged("ruby", "Gemfile", "Gemfile.lock")
	if !changed {
		b.step("Gemfile unchanged: keeping the installed gems")
		return nil
	}
	b.step("Installing the bundle")
	if err := b.run(b.dir, nil, "bundle", "install"); err != nil {
		return err
	}
	return done()
}

// Node

func buildNode(b *build) error {
	env := b.root.Env(b.app)
	if v := b.setting("NODE_VERSION"); v != "" {
		if b.has("nodeenv") {
			out, _ := exec.Command(filepath.Join(b.root.EnvBin(b.app), "node"), "--version").Output()
			if strings.TrimPrefix(strings.TrimSpace(string(out)), "v") != strings.TrimPrefix(v, "v") {
				b.step("Installing Node %s with nodeenv", v)
				if err := b.run(b.dir, nil, "nodeenv", "--prebuilt", "--node="+strings.TrimPrefix(v, "v"), "--force", env); err != nil {
					return err
				}
			}
		} else {
			b.step("NODE_VERSION is %s but nodeenv is not installed (`apt-get install nodeenv`): using the system node", v)
		}
	}
	if err := b.need("Node", "node", "nodejs"); err != nil {
		return err
	}
	pm := b.setting("NODE_PACKAGE_MANAGER")
	if pm == "" {
		pm = "npm"
	}
	pmArgs := strings.Fields(pm)
	pkg := map[string]string{"npm": "npm", "yarn": "yarnpkg", "yarnpkg": "yarnpkg", "pnpm": "pnpm"}[pmArgs[0]]
	if pkg == "" {
		pkg = pmArgs[0]
	}
	if err := b.need("Node", pmArgs[0], pkg); err != nil {
		return err
	}
	manifests := []string{"package.json", "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", ".npmrc"}
	changed, done := b.depsChanged("node", manifests...)
	modules := filepath.Join(env, "node_modules")
	if changed || !exists(modules) {
		b.step("Installing node modules with %s into %s", pm, modules)
		if err := os.MkdirAll(env, 0o755); err != nil {
			return err
		}
		for _, m := range manifests {
			src := filepath.Join(b.dir, m)
			dst := filepath.Join(env, m)
			data, err := os.ReadFile(src)
			if errors.Is(err, os.ErrNotExist) {
				_ = os.Remove(dst)
				continue
			}
			if err != nil {
				return err
			}
			if err := layout.WriteFile(dst, data, 0o644); err != nil {
				return err
			}
		}
		if err := b.run(env, []string{"NODE_PATH=" + modules}, pmArgs[0], append(pmArgs[1:], "install")...); err != nil {
			return err
		}
		if err := done(); err != nil {
			return err
		}
	} else {
		b.step("package.json unchanged: keeping the installed node modules")
	}
	// The app finds its modules where node looks first.
	link := filepath.Join(b.dir, "node_modules")
	if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
		if err := os.Symlink(modules, link); err != nil {
			return err
		}
	}
	return nil
}

// needs is need for several tools: program, Debian package, program,
// package...
func (b *build) needs(lang string, programAndPackage ...string) error {
	for i := 0; i+1 < len(programAndPackage); i += 2 {
		if err := b.need(lang, programAndPackage[i], programAndPackage[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// Java

func buildMaven(b *build) error {
	if err := b.needs("Java", "java", "default-jdk", "mvn", "maven"); err != nil {
		return err
	}
	b.step("Building with Maven")
	return b.run(b.dir, nil, "mvn", "-B", "package")
}

func buildGradle(b *build) error {
	if err := b.needs("Java", "java", "default-jdk", "gradle", "gradle"); err != nil {
		return err
	}
	b.step("Building with Gradle")
	return b.run(b.dir, nil, "gradle", "build")
}

// Clojure

func buildClojureCLI(b *build) error {
	if err := b.needs("Clojure", "java", "default-jdk", "clojure", "clojure"); err != nil {
		return err
	}
	b.step("Building with the Clojure CLI")
	return b.run(b.dir, nil, "clojure", "-T:build", "release")
}

func buildLein(b *build) error {
	if err := b.needs("Clojure", "java", "default-jdk", "lein", "leiningen"); err != nil {
		return err
	}
	b.step("Building with Leiningen")
	if err := b.run(b.dir, nil, "lein", "clean"); err != nil {
		return err
	}
	return b.run(b.dir, nil, "lein", "uberjar")
}

// Compiled apps (Go, Rust) keep their commands in the release, in
// .piku/bin, and envs/APP/bin (first on the app's PATH) links to
// apps/APP/.piku/bin: whichever release is live, its own binaries run,
// and a rollback brings the old binaries back with the old code.

// linkEnvBin makes envs/APP/bin the link to the live release's commands.
func (b *build) linkEnvBin() error {
	bin := b.root.EnvBin(b.app)
	target := b.root.AppBin(b.app)
	if cur, err := os.Readlink(bin); err == nil && cur == target {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(bin); err != nil {
		return err
	}
	return os.Symlink(target, bin)
}

func buildGo(b *build) error {
	if err := b.need("Go", "go", "golang"); err != nil {
		return err
	}
	bin := layout.ReleaseBin(b.dir)
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	b.step("Building the Go commands into %s", bin)
	if exists(filepath.Join(b.dir, "go.mod")) {
		if err := b.run(b.dir, nil, "go", "build", "-o", bin+string(filepath.Separator), "./..."); err != nil {
			return err
		}
	} else if err := b.run(b.dir, []string{"GO111MODULE=off"}, "go", "build", "-o", bin+string(filepath.Separator), "."); err != nil {
		return err
	}
	return b.linkEnvBin()
}

// Rust

func buildRust(b *build) error {
	if err := b.need("Rust", "cargo", "cargo"); err != nil {
		return err
	}
	target := b.root.BuildTarget(b.app)
	b.step("Building with cargo build --release")
	if err := b.run(b.dir, []string{"CARGO_TARGET_DIR=" + target}, "cargo", "build", "--release"); err != nil {
		return err
	}
	bin := layout.ReleaseBin(b.dir)
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(target, "release"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 || strings.Contains(e.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(target, "release", e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(bin, e.Name()), data, 0o755); err != nil {
			return err
		}
	}
	return b.linkEnvBin()
}
