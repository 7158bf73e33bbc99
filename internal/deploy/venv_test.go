package deploy

import (
	"archive/zip"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piku/piku/internal/testdeps"
)

// TestVenvSeededFromTemplate deploys two Python apps: the first makes the
// interpreter's template, the second is seeded from it, and each
// virtualenv's pip works on its own environment, not on the template.
func TestVenvSeededFromTemplate(t *testing.T) {
	testdeps.Require(t, "python3", "apt-get install python3 python3-venv")
	root := newRoot(t)
	fd := &fakeDaemon{root: root}
	files := map[string]string{
		"requirements.txt": "# stdlib only\n",
		"Procfile":         "web: python3 -m http.server $PORT\n",
	}
	deploy := func(app string) string {
		g := newGitRepo(t, root, app)
		d, out := newDeployer(root, fd)
		if err := d.Deploy(context.Background(), g.push(g.commit(files))); err != nil {
			t.Fatalf("deploying %s: %v\n%s", app, err, out)
		}
		return out.String()
	}
	if out := deploy("first"); !strings.Contains(out, "Making a virtualenv template") {
		t.Errorf("the first Python app did not make the template:\n%s", out)
	}
	if out := deploy("second"); strings.Contains(out, "Making a virtualenv template") || strings.Contains(out, "in full") {
		t.Errorf("the second Python app did not reuse the template:\n%s", out)
	}
	templates, _ := filepath.Glob(root.VenvTemplate("*"))
	var tmpl string
	for _, p := range templates {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			tmpl = p
		}
	}
	if tmpl == "" {
		t.Fatalf("no template directory among %q", templates)
	}

	// A local package installed with the seeded venv's pip lands in that
	// venv alone.
	wheel := probeWheel(t)
	venv := root.Env("second")
	pip := filepath.Join(venv, "bin", "pip")
	if first := strings.SplitN(readFile(t, pip), "\n", 2)[0]; first != "#!"+filepath.Join(venv, "bin", "python3") && first != "#!"+filepath.Join(venv, "bin", "python") {
		t.Errorf("the seeded pip starts %q, want #! the venv's own python", first)
	}
	install := exec.Command(pip, "install", "--no-index", "--no-deps", wheel)
	install.Env = append(os.Environ(), "PIP_DISABLE_PIP_VERSION_CHECK=1")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("pip install in the seeded venv: %v\n%s", err, out)
	}
	where := func(venv string) string {
		out, _ := exec.Command(filepath.Join(venv, "bin", "python"), "-c", "import pikuprobe; print(pikuprobe.__file__)").CombinedOutput()
		return string(out)
	}
	if got := where(venv); !strings.HasPrefix(got, venv+"/") {
		t.Errorf("the second app's python imports pikuprobe from %q, want inside %s", got, venv)
	}
	if got := where(tmpl); !strings.Contains(got, "No module named") {
		t.Errorf("the template got the package too: %q", got)
	}
	if got := where(root.Env("first")); !strings.Contains(got, "No module named") {
		t.Errorf("the first app got the package too: %q", got)
	}
}

// TestVenvTemplateBrokenFallsBack breaks the template (its marker stays,
// its packages are gone) and checks that a new app still gets a working
// virtualenv, made in full.
func TestVenvTemplateBrokenFallsBack(t *testing.T) {
	testdeps.Require(t, "python3", "apt-get install python3 python3-venv")
	root := newRoot(t)
	fd := &fakeDaemon{root: root}
	files := map[string]string{"requirements.txt": "# stdlib only\n", "Procfile": "worker: sleep 1000\n"}
	g := newGitRepo(t, root, "one")
	d, out := newDeployer(root, fd)
	if err := d.Deploy(context.Background(), g.push(g.commit(files))); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	templates, _ := filepath.Glob(root.VenvTemplate("*"))
	for _, p := range templates {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			if err := os.RemoveAll(filepath.Join(p, "bin")); err != nil {
				t.Fatal(err)
			}
		}
	}
	g = newGitRepo(t, root, "two")
	d, out = newDeployer(root, fd)
	if err := d.Deploy(context.Background(), g.push(g.commit(files))); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "creating it in full") {
		t.Errorf("no fallback to a full virtualenv:\n%s", out)
	}
	if out, err := exec.Command(filepath.Join(root.Env("two"), "bin", "pip"), "--version").CombinedOutput(); err != nil {
		t.Errorf("pip of the fallback virtualenv: %v\n%s", err, out)
	}
}

func TestRehomeScripts(t *testing.T) {
	dir := t.TempDir()
	tmpl, venv := filepath.Join(dir, "tmpl"), filepath.Join(dir, "venv")
	src := filepath.Join(dir, "pip")
	long := "#!/bin/sh\n'''exec' \"" + tmpl + "/bin/python3\" \"$0\" \"$@\"\n' '''\nimport sys\n"
	for _, tt := range []struct{ in, want string }{
		{"#!" + tmpl + "/bin/python3\nimport sys\n", "#!" + venv + "/bin/python3\nimport sys\n"},
		{long, strings.ReplaceAll(long, tmpl+"/", venv+"/")},
		{"#!/usr/bin/env python3\n", "#!/usr/bin/env python3\n"},
		{"#!" + tmpl + "x/bin/python3\n", "#!" + tmpl + "x/bin/python3\n"},
	} {
		if err := os.WriteFile(src, []byte(tt.in), 0o755); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, "out")
		_ = os.Remove(dst)
		if err := copyScript(src, dst, tmpl, venv); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, dst); got != tt.want {
			t.Errorf("copyScript(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o755 {
			t.Errorf("mode %v, want 0755", fi.Mode().Perm())
		}
	}
}

// probeWheel writes a minimal pure-Python wheel of a package pikuprobe,
// installable by pip without an index or a build backend, and returns its
// path.
func probeWheel(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pikuprobe-1.0-py3-none-any.whl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	z := zip.NewWriter(f)
	for _, e := range [][2]string{
		{"pikuprobe/__init__.py", "WHO = 'probe'\n"},
		{"pikuprobe-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: pikuprobe\nVersion: 1.0\n"},
		{"pikuprobe-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: piku-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
		{"pikuprobe-1.0.dist-info/RECORD", "pikuprobe/__init__.py,,\npikuprobe-1.0.dist-info/METADATA,,\npikuprobe-1.0.dist-info/WHEEL,,\npikuprobe-1.0.dist-info/RECORD,,\n"},
	} {
		w, err := z.Create(e[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
