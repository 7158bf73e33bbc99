package cli

import (
	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/deploy"
)

func (c *cli) rollbackCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rollback APP [RELEASE]",
		Short: "Put the previous (or the named) release back live with its config, without rebuilding",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			id := ""
			if len(args) == 2 {
				id = args[1]
			}
			ctx, cancel := signalContext()
			defer cancel()
			d := &deploy.Deployer{Root: root, Daemon: c.client(root), Out: c.stdout}
			return d.Rollback(ctx, app, id)
		},
	}
}
