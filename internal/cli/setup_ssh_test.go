package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJtmYfxxUephCLIL8wFW+eN73IGwL+2j/I767U3AtiXv dev@laptop"

func TestAddAuthorizedKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ".ssh", "authorized_keys")
	report, err := addAuthorizedKeys(path, []byte(testKey+"\n"), "/usr/bin/piku", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(report) != 1 || !strings.HasPrefix(report[0], "Adding key SHA256:") {
		t.Fatalf("report = %q", report)
	}
	b, _ := os.ReadFile(path)
	line := strings.TrimSpace(string(b))
	want := `command="FINGERPRINT=SHA256:`
	if !strings.HasPrefix(line, want) || !strings.Contains(line, ` NAME=default /usr/bin/piku \"$SSH_ORIGINAL_COMMAND\"",no-agent-forwarding,no-user-rc,no-X11-forwarding,no-port-forwarding ssh-ed25519 AAAA`) || !strings.HasSuffix(line, " dev@laptop") {
		t.Errorf("line = %s", line)
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", p, fi.Mode().Perm(), mode)
		}
	}
	// The same key again is not added twice.
	report, err = addAuthorizedKeys(path, []byte(testKey), "/usr/bin/piku", "")
	if err != nil || !strings.Contains(report[0], "already present") {
		t.Fatalf("second add: %q, %v", report, err)
	}
	b2, _ := os.ReadFile(path)
	if string(b2) != string(b) {
		t.Errorf("file changed on a duplicate add")
	}
}

func TestAddAuthorizedKeysRefusesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authorized_keys")
	for _, bad := range []string{"", "not a key", "ssh-ed25519 !!!notbase64"} {
		if _, err := addAuthorizedKeys(path, []byte(bad), "/usr/bin/piku", ""); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a refused key left a file behind")
	}
}

// TestForcedCommandNotGlobbed runs the forced command of an
// authorized_keys line through /bin/sh, as sshd does, and checks the
// client's command line reaches piku as one word: unquoted, the login
// shell would split and glob it (`apps /*/*/*/*` walked the whole disk
// before piku could refuse it).
func TestForcedCommandNotGlobbed(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "piku")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nprintf '%s|' \"$#\" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "authorized_keys")
	if _, err := addAuthorizedKeys(path, []byte(testKey), fake, ""); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	line := string(b)
	// sshd's reading of command="...": up to the first unescaped quote,
	// with \" standing for a quote.
	rest, ok := strings.CutPrefix(line, `command="`)
	if !ok {
		t.Fatalf("line = %s", line)
	}
	var cmd strings.Builder
	for i := 0; i < len(rest) && rest[i] != '"'; i++ {
		if rest[i] == '\\' && i+1 < len(rest) && rest[i+1] == '"' {
			i++
		}
		cmd.WriteByte(rest[i])
	}
	for _, orig := range []string{"apps /*", "logs a  b", "ps '*'"} {
		c := exec.Command("/bin/sh", "-c", cmd.String())
		c.Env = append(os.Environ(), "SSH_ORIGINAL_COMMAND="+orig)
		out, err := c.Output()
		if err != nil {
			t.Fatalf("%s: %v", cmd.String(), err)
		}
		if want := "1|" + orig + "|"; string(out) != want {
			t.Errorf("SSH_ORIGINAL_COMMAND=%q reached piku as %q, want %q", orig, out, want)
		}
	}
}
