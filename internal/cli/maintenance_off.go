package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/control"
)

func (c *cli) maintenanceOffCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "maintenance:off APP",
		Short: "End the app's maintenance: its requests are served again (its processes started if --stop stopped them)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			was, err := appconfig.ClearMaintenance(root, app)
			if err != nil {
				return err
			}
			if !was {
				fmt.Fprintf(c.stdout, "app '%s' is not in maintenance\n", app)
				return nil
			}
			return c.apply(root, app, control.DeployRequest{}, "the app is no longer marked in maintenance")
		},
	}
}
