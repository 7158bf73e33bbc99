package isolation

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/piku/piku/internal/layout"
)

func TestOutside(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"home/piku/.piku", "home/piku/.ssh", "home/piku/notes", "home/other", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := outside(filepath.Join(dir, "home/piku/.piku"))
	if err != nil {
		t.Fatal(err)
	}
	// Everything beside the way down to PIKU_ROOT, but not ~/.ssh; never
	// PIKU_ROOT nor a directory above it.
	for _, want := range []string{"etc", "home/other", "home/piku/notes"} {
		if !slices.Contains(got, filepath.Join(dir, want)) {
			t.Errorf("outside lacks %s: %q", want, got)
		}
	}
	for _, not := range []string{"", "home", "home/piku", "home/piku/.piku", "home/piku/.ssh"} {
		if slices.Contains(got, filepath.Join(dir, not)) {
			t.Errorf("outside holds %s: %q", filepath.Join(dir, not), got)
		}
	}
}

// TestConfine confines a real process (this test binary, run again) to
// app a and has it try what a hostile app would.
func TestConfine(t *testing.T) {
	if os.Getenv("PIKU_TEST_CONFINE_ROOT") != "" {
		confineHelper()
		return
	}
	if abi, why := LandlockABI(); abi == 0 {
		t.Skip("needs Landlock: " + why)
	}
	root, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{root.Env("a"), root.EnvBin("b"), root.DataDir() + "/a", root.CertsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{root.EnvFile("b"), filepath.Join(root.CertsDir(), "key.pem")} {
		if err := os.WriteFile(f, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestConfine$")
	cmd.Env = append(os.Environ(), "PIKU_TEST_CONFINE_ROOT="+root.Dir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := []string{
		"read " + root.EnvFile("b") + ": denied",
		"read " + filepath.Join(root.CertsDir(), "key.pem") + ": denied",
		"write " + filepath.Join(root.EnvBin("b"), "python3") + ": denied",
		"write " + filepath.Join(root.Env("a"), "x") + ": ok",
		"write " + filepath.Join(root.DataDir(), "a", "x") + ": ok",
		"read /etc/passwd: ok",
	}
	for _, w := range want {
		if !strings.Contains(string(out), w+"\n") {
			t.Errorf("the confined process did not say %q:\n%s", w, out)
		}
	}
}

// confineHelper is the confined side of TestConfine.
func confineHelper() {
	root, _ := layout.New(os.Getenv("PIKU_TEST_CONFINE_ROOT"))
	if _, err := Confine(root, "a"); err != nil {
		println("confine:", err.Error())
		os.Exit(2)
	}
	say := func(what, path string, err error) {
		r := "ok"
		if err != nil {
			r = "denied"
		}
		os.Stdout.WriteString(what + " " + path + ": " + r + "\n")
	}
	for _, p := range []string{root.EnvFile("b"), filepath.Join(root.CertsDir(), "key.pem"), "/etc/passwd"} {
		_, err := os.ReadFile(p)
		say("read", p, err)
	}
	for _, p := range []string{filepath.Join(root.EnvBin("b"), "python3"), filepath.Join(root.Env("a"), "x"), filepath.Join(root.DataDir(), "a", "x")} {
		say("write", p, os.WriteFile(p, []byte("x"), 0o755))
	}
	os.Exit(0)
}
