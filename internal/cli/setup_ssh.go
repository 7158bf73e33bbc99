package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/piku/piku/internal/layout"
)

// sshKeyOptions are the restrictions piku puts on every key it adds.
const sshKeyOptions = "no-agent-forwarding,no-user-rc,no-X11-forwarding,no-port-forwarding"

func (c *cli) setupSSHCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "setup:ssh KEYFILE|-",
		Short: "Let the owner of a public SSH key push and run piku commands (- reads the key from stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			var err error
			if args[0] == "-" {
				data, err = io.ReadAll(io.LimitReader(c.stdin, 1<<20))
			} else {
				data, err = os.ReadFile(args[0])
			}
			if err != nil {
				return fmt.Errorf("reading the key: %w", err)
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			if p, err := filepath.EvalSymlinks(self); err == nil {
				self = p
			}
			home, err := os.UserHomeDir()
			if err != nil {
				return err
			}
			added, err := addAuthorizedKeys(filepath.Join(home, ".ssh", "authorized_keys"), data, self, c.rootDir)
			if err != nil {
				return err
			}
			for _, a := range added {
				fmt.Fprintln(c.stdout, a)
			}
			return nil
		},
	}
}

// addAuthorizedKeys adds every public key in data to the authorized_keys
// file at path with piku's forced command, skipping keys already there. It
// returns a line per key saying what happened.
func addAuthorizedKeys(path string, data []byte, pikuBinary, rootDir string) ([]string, error) {
	var keys []ssh.PublicKey
	var comments []string
	rest := bytes.TrimSpace(data)
	if len(rest) == 0 {
		return nil, fmt.Errorf("no public key given")
	}
	for len(bytes.TrimSpace(rest)) > 0 {
		key, comment, _, r, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			return nil, fmt.Errorf("not an SSH public key (expected a line like 'ssh-ed25519 AAAA... you@host', as in ~/.ssh/id_ed25519.pub): %w", err)
		}
		keys, comments, rest = append(keys, key), append(comments, comment), r
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	existing, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	present := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(existing))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		if k, _, _, _, err := ssh.ParseAuthorizedKey(sc.Bytes()); err == nil {
			present[string(k.Marshal())] = true
		}
	}
	env := ""
	if rootDir != "" {
		r, err := layout.New(rootDir)
		if err != nil {
			return nil, err
		}
		env = "PIKU_ROOT=" + r.Dir() + " "
	}
	out := existing
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	var report []string
	for i, k := range keys {
		fp := ssh.FingerprintSHA256(k)
		if present[string(k.Marshal())] {
			report = append(report, fmt.Sprintf("Key %s is already present; not adding it again.", fp))
			continue
		}
		present[string(k.Marshal())] = true
		// The client's command line stays one quoted word: unquoted, the
		// login shell would split and glob it before piku can refuse it.
		line := fmt.Sprintf("command=\"FINGERPRINT=%s NAME=default %s%s \\\"$SSH_ORIGINAL_COMMAND\\\"\",%s %s",
			fp, env, pikuBinary, sshKeyOptions, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
		if comments[i] != "" {
			line += " " + comments[i]
		}
		out = append(out, line+"\n"...)
		report = append(report, fmt.Sprintf("Adding key %s.", fp))
	}
	if err := layout.WriteFile(path, out, 0o600); err != nil {
		return nil, err
	}
	return report, nil
}
