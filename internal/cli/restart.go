package cli

import (
	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/control"
)

func (c *cli) restartCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "restart APP [KIND]",
		Short: "Replace the app's processes (or one kind's) with fresh ones, without downtime",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			kind := "*"
			if len(args) == 2 {
				kind = args[1]
				a, err := appconfig.Load(root, app)
				if err != nil {
					return err
				}
				if err := a.CheckKind(kind); err != nil {
					return err
				}
			}
			return c.apply(root, app, control.DeployRequest{Restart: []string{kind}}, "nothing was restarted")
		},
	}
}
