package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/control"
)

func (c *cli) configSetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "config:set APP KEY=VALUE...",
		Short: "Set settings and roll the app out with them",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			kvs, err := appconfig.ParseAssignments(args[1:])
			if err != nil {
				return err
			}
			env, err := appconfig.ReadOverrides(root, app)
			if err != nil {
				return err
			}
			for _, kv := range kvs {
				fmt.Fprintf(c.stdout, "Setting %s=%s for '%s'\n", kv[0], kv[1], app)
				env.Set(kv[0], kv[1])
			}
			if err := appconfig.WriteOverrides(root, app, env); err != nil {
				return err
			}
			return c.apply(root, app, control.DeployRequest{}, "the settings are saved")
		},
	}
}
