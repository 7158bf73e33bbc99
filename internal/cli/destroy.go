package cli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/deploy"
)

func (c *cli) destroyCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "destroy APP",
		Short: "Stop the app and remove its code, repository, environment and logs (data/ and cache/ are kept)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.appArg(args[0])
			if err != nil {
				return err
			}
			if !root.Exists(app) {
				if _, err := os.Stat(root.Repo(app)); err != nil {
					return &ExitError{Code: 1, Msg: "app " + quote(app) + " not found"}
				}
			}
			if !force {
				fmt.Fprintf(c.stdout, "Destroy app '%s'? Type its name to confirm: ", app)
				line, _ := bufio.NewReader(c.stdin).ReadString('\n')
				if strings.TrimSpace(line) != app {
					return &ExitError{Code: 1, Msg: "not confirmed; nothing was destroyed (use --force to skip the question)"}
				}
			}
			// Not while a push, rollback or change of the app is running.
			ctx, cancel := signalContext()
			defer cancel()
			unlock, err := deploy.Lock(ctx, root.DeployLock(app), func() {
				fmt.Fprintf(c.stdout, "-----> Another deploy of '%s' is running: waiting for it to finish\n", app)
			})
			if err != nil {
				return err
			}
			defer unlock()
			err = c.client(root).Forget(context.WithoutCancel(ctx), app)
			if err != nil && !control.IsNotRunning(err) {
				return fmt.Errorf("stopping app %q: %w", app, err)
			}
			paths := []string{root.App(app), root.Repo(app), root.Env(app), root.Logs(app), root.Releases(app)}
			vassals, err := root.VassalFiles(app)
			if err != nil {
				return fmt.Errorf("destroying app %q: %w", app, err)
			}
			paths = append(paths, vassals...)
			for _, p := range paths {
				if _, err := os.Lstat(p); err != nil {
					continue
				}
				fmt.Fprintf(c.stdout, "--> Removing '%s'\n", p)
				if err := os.RemoveAll(p); err != nil {
					return fmt.Errorf("destroying app %q: %w", app, err)
				}
			}
			for _, p := range []string{root.Data(app), root.Cache(app)} {
				if _, err := os.Stat(p); err == nil {
					fmt.Fprintf(c.stdout, "--> Keeping '%s'; remove it by hand if you no longer need it\n", p)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not ask for confirmation")
	return cmd
}
