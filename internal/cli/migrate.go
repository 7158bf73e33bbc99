package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/migrate"
)

func (c *cli) migrateCommand() *cobra.Command {
	var check bool
	cmd := &cobra.Command{
		Use:   "migrate [--check]",
		Short: "Take a Python piku server over: keep its files for `piku migrate back`, point its SSH keys here",
		Long: `Take over a server that Python piku ran. piku migrate keeps the files
Python piku needs and this piku changes (uWSGI vassals, post-receive hooks,
LIVE_ENV) in PIKU_ROOT/python-piku/, and points the authorized_keys lines
that run piku.py at this binary. The daemon's first start keeps the same
files on its own when piku migrate was not run.

--check changes nothing: it lists what the first start and the first
pushes will change, and what does not carry over.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, err := c.root()
			if err != nil {
				return err
			}
			keys, err := authorizedKeysFile()
			if err != nil {
				return err
			}
			if check {
				lines, err := migrate.Check(root, keys)
				if err != nil {
					return err
				}
				for _, l := range lines {
					fmt.Fprintln(c.stdout, "-----> "+l)
				}
				return nil
			}
			self, err := selfPath()
			if err != nil {
				return err
			}
			rootEnv := ""
			if c.rootDir != "" {
				rootEnv = root.Dir()
			}
			n, err := migrate.Keys(root, keys, self, rootEnv, time.Now())
			if err != nil {
				return err
			}
			if _, err := os.Stat(root.PythonPikuDir()); err == nil {
				fmt.Fprintf(c.stdout, "-----> Python piku's files are kept in %s (`piku migrate back` restores them)\n", root.PythonPikuDir())
			} else {
				fmt.Fprintln(c.stdout, "-----> No files of Python piku's to keep")
			}
			fmt.Fprintf(c.stdout, "-----> %s: %d key lines now run %s\n", keys, n, self)
			return nil
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "change nothing: list what the first start will change and what does not carry over")
	cmd.AddCommand(&cobra.Command{
		Use:   "back",
		Short: "Give the server back to Python piku (stop the piku daemon first)",
		Long: `Give the server back to Python piku: apps/APP becomes a plain checkout of
the live release again, Python piku's uWSGI vassals, post-receive hooks and
LIVE_ENV files come back, piku's pre-receive hooks go, and the
authorized_keys lines run piku.py again. Then start uWSGI and nginx.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, err := c.root()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := c.client(root).Ping(ctx); err == nil {
				return fmt.Errorf("the piku daemon is running on %s: stop it first (`piku service stop`)", root.Socket())
			} else if !control.IsNotRunning(err) {
				return err
			}
			report, err := migrate.Back(root)
			for _, l := range report {
				fmt.Fprintln(c.stdout, "-----> "+l)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(c.stdout, "-----> Done: start uWSGI and nginx again (systemctl start uwsgi-piku nginx)")
			return nil
		},
	})
	return cmd
}

// authorizedKeysFile is the user's ~/.ssh/authorized_keys.
func authorizedKeysFile() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".ssh", "authorized_keys"), nil
}
