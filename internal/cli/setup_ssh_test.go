package cli

import (
	"os"
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
	if !strings.HasPrefix(line, want) || !strings.Contains(line, ` NAME=default /usr/bin/piku $SSH_ORIGINAL_COMMAND",no-agent-forwarding,no-user-rc,no-X11-forwarding,no-port-forwarding ssh-ed25519 AAAA`) || !strings.HasSuffix(line, " dev@laptop") {
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
