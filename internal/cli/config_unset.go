package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/control"
)

func (c *cli) configUnsetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "config:unset APP KEY...",
		Short: "Remove settings and roll the app out without them",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			env, err := appconfig.ReadOverrides(root, app)
			if err != nil {
				return err
			}
			for _, k := range args[1:] {
				fmt.Fprintf(c.stdout, "Unsetting %s for '%s'\n", k, app)
				env.Unset(k)
			}
			if err := appconfig.WriteOverrides(root, app, env); err != nil {
				return err
			}
			return c.apply(root, app, control.DeployRequest{}, "the settings are saved")
		},
	}
}
