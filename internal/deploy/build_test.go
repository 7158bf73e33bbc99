package deploy

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/piku/piku/internal/testdeps"
)

func TestBuildPythonReinstallsOnlyOnChange(t *testing.T) {
	testdeps.Require(t, "python3", "apt-get install python3 python3-venv")
	root := newRoot(t)
	g := newGitRepo(t, root, "py")
	fd := &fakeDaemon{root: root}
	d, out := newDeployer(root, fd)
	rev := g.commit(map[string]string{
		"requirements.txt": "# stdlib only\n",
		"Procfile":         "web: python3 -m http.server $PORT\nrelease: python -c 'import sys; print(sys.prefix)' > prefix.out\n",
	})
	if err := d.Deploy(context.Background(), g.push(rev)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"Python app detected", "Creating the virtualenv", "Installing requirements.txt"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("first deploy output lacks %q:\n%s", want, out)
		}
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(root.App("py"), "prefix.out"))); got != root.Env("py") {
		t.Errorf("release ran python from %q, want the virtualenv %s", got, root.Env("py"))
	}
	out.Reset()
	rev = g.commit(map[string]string{"app.py": "print('v2')\n"})
	if err := d.Deploy(context.Background(), g.push(rev)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "requirements.txt unchanged") || strings.Contains(out.String(), "Installing requirements") {
		t.Errorf("second deploy reinstalled:\n%s", out)
	}
	out.Reset()
	rev = g.commit(map[string]string{"requirements.txt": "# still stdlib only\n"})
	if err := d.Deploy(context.Background(), g.push(rev)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "Installing requirements.txt") {
		t.Errorf("a changed requirements.txt was not installed:\n%s", out)
	}
}

func TestBuildGoKeepsBinariesPerRelease(t *testing.T) {
	testdeps.Require(t, "go", "apt-get install golang")
	root := newRoot(t)
	g := newGitRepo(t, root, "gogo")
	fd := &fakeDaemon{root: root}
	d, out := newDeployer(root, fd)
	mainGo := func(v string) string {
		return "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"" + v + "\") }\n"
	}
	files := map[string]string{
		"go.mod":            "module example.com/gogo\n\ngo 1.22\n",
		"cmd/hello/main.go": mainGo("v1"),
		"Procfile":          "web: hello\nrelease: hello > release.out\n",
	}
	rev := g.commit(files)
	if err := d.Deploy(context.Background(), g.push(rev)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := readFile(t, filepath.Join(root.App("gogo"), "release.out")); got != "v1\n" {
		t.Errorf("release ran %q", got)
	}
	run := func() string {
		t.Helper()
		b, err := exec.Command(filepath.Join(root.EnvBin("gogo"), "hello")).Output()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := run(); got != "v1\n" {
		t.Errorf("envs/gogo/bin/hello says %q", got)
	}
	rev = g.commit(map[string]string{"cmd/hello/main.go": mainGo("v2")})
	if err := d.Deploy(context.Background(), g.push(rev)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := run(); got != "v2\n" {
		t.Errorf("after redeploy hello says %q", got)
	}
	if err := d.Rollback(context.Background(), "gogo", ""); err != nil {
		t.Fatal(err)
	}
	if got := run(); got != "v1\n" {
		t.Errorf("after rollback hello says %q, want the old binary", got)
	}
	// A compile error fails the deploy.
	rev = g.commit(map[string]string{"cmd/hello/main.go": "package main\nfunc main() { nope }\n"})
	if err := d.Deploy(context.Background(), g.push(rev)); err == nil || !strings.Contains(err.Error(), "build failed") {
		t.Errorf("broken Go code: err = %v", err)
	}
	if got := run(); got != "v1\n" {
		t.Errorf("after a failed build hello says %q", got)
	}
}

func TestDetectMissingToolchainNamesPackage(t *testing.T) {
	tests := []struct{ file, pkg string }{
		{"requirements.txt", "apt-get install python3"},
		{"Gemfile", "apt-get install ruby"},
		{"package.json", "apt-get install nodejs"},
		{"pom.xml", "apt-get install default-jdk"},
		{"go.mod", "apt-get install golang"},
		{"Cargo.toml", "apt-get install cargo"},
		{"pyproject.toml", "python3-poetry"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			root := newRoot(t)
			g := newGitRepo(t, root, "app")
			d, out := newDeployer(root, &fakeDaemon{root: root})
			rev := g.commit(map[string]string{tt.file: "\n", "Procfile": "web: x\n", "ENV": "PATH=" + t.TempDir() + "\n"})
			err := d.Deploy(context.Background(), g.push(rev))
			if err == nil || !strings.Contains(err.Error(), tt.pkg) {
				t.Errorf("err = %v, want %q\n%s", err, tt.pkg, out)
			}
			if _, err := os.Lstat(root.App("app")); err == nil {
				t.Error("a failed first deploy left apps/app")
			}
		})
	}
}

// TestBuildRust builds a crate without dependencies (nothing to download)
// and runs the binary it makes, on PATH, in the release phase.
func TestBuildRust(t *testing.T) {
	if _, err := exec.LookPath("cargo"); err != nil {
		t.Skip("cargo is not installed (apt-get install cargo): the Rust builder is tested where it is; " +
			"TestDetectMissingToolchainNamesPackage covers its absence")
	}
	root := newRoot(t)
	g := newGitRepo(t, root, "rusty")
	fd := &fakeDaemon{root: root}
	d, out := newDeployer(root, fd)
	rev := g.commit(map[string]string{
		"Cargo.toml":  "[package]\nname = \"rusty-hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
		"src/main.rs": "fn main() { println!(\"rust v1\"); }\n",
		"Procfile":    "web: rusty-hello\nrelease: rusty-hello > release.out\n",
	})
	if err := d.Deploy(context.Background(), g.push(rev)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "Rust app detected") {
		t.Errorf("output:\n%s", out)
	}
	if got := readFile(t, filepath.Join(root.App("rusty"), "release.out")); got != "rust v1\n" {
		t.Errorf("release ran %q", got)
	}
}

// TestBuildGetsLimitsPerProcess: preflight, release and the build's own
// programs (b.run) start with the app's core file size limit and its nice
// value for every kind (not a kind's own), as the app's processes do.
func TestBuildGetsLimitsPerProcess(t *testing.T) {
	testdeps.Require(t, "nice", "apt-get install coreutils")
	root := newRoot(t)
	g := newGitRepo(t, root, "lim")
	fd := &fakeDaemon{root: root}
	d, out := newDeployer(root, fd)
	if err := os.MkdirAll(root.Env("lim"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.EnvFile("lim"), []byte("PIKU_CORE_MAX=1M\nPIKU_NICE=5,worker:15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const report = `grep "core file" /proc/self/limits; nice`
	rev := g.commit(map[string]string{
		"Procfile": "worker: sleep 1000\npreflight: (" + report + ") > preflight.out\nrelease: (" + report + ") > release.out\n",
	})
	if err := d.Deploy(context.Background(), g.push(rev)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// Below the test's own priority nothing goes (a nice value is
	// only ever raised).
	want := regexp.MustCompile(`^Max core file size +1048576 +1048576 +bytes +\n` + strconv.Itoa(max(5, ownNice(t))) + "\n$")
	for _, f := range []string{"preflight.out", "release.out"} {
		if got := readFile(t, filepath.Join(root.App("lim"), f)); !want.MatchString(got) {
			t.Errorf("%s: %q, want %s", f, got, want)
		}
	}

	b := &build{ctx: context.Background(), root: root, app: "lim", dir: root.App("lim"), out: io.Discard, cmd: io.Discard}
	var err error
	if b.env, err = releaseEnv(root, "lim", b.dir); err != nil {
		t.Fatal(err)
	}
	if err := b.setLimits(); err != nil {
		t.Fatal(err)
	}
	if err := b.run(b.dir, nil, "sh", "-c", "("+report+") > run.out"); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(b.dir, "run.out")); !want.MatchString(got) {
		t.Errorf("a build program: %q, want %s", got, want)
	}
}

// ownNice is the nice value of the test process.
func ownNice(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	n, err := strconv.Atoi(f[16]) // field 19 of the line
	if err != nil {
		t.Fatal(err)
	}
	return n
}
