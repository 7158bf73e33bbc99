package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/deploy"
)

func (c *cli) gitHookCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "git-hook APP",
		Short:  "The pre-receive hook of an app's repository: deploys the pushed branch",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.appArg(args[0])
			if err != nil {
				return err
			}
			// The hook ends, and stops what it runs (preflight, build,
			// release), when the push goes away: git-receive-pack dying
			// (the parent-death signal), its output pipe breaking, or a
			// hang-up.
			hookDiesWithParent()
			ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
			defer cancel()
			d := &deploy.Deployer{Root: root, Daemon: c.client(root), Out: c.stdout,
				LockHeld: os.Getenv(deploy.LockHeldEnv) == "1"}
			return d.Hook(ctx, app, c.stdin, os.Getenv)
		},
	}
}
