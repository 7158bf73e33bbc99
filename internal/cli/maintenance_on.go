package cli

import (
	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/control"
)

func (c *cli) maintenanceOnCommand() *cobra.Command {
	var m appconfig.Maintenance
	cmd := &cobra.Command{
		Use:   "maintenance:on APP",
		Short: "Answer every request to the app with a 503 maintenance page, until maintenance:off",
		Long: "Answer every request to the app with a 503 and Retry-After: an HTML page for browsers (the app's\n" +
			"own maintenance.html when its checkout has one), JSON for API clients, a short text otherwise.\n" +
			"The state is kept across daemon restarts and deploys. The app's processes keep running unless\n" +
			"--stop is given.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			if err := appconfig.WriteMaintenance(root, app, m); err != nil {
				return err
			}
			return c.apply(root, app, control.DeployRequest{}, "the app is marked in maintenance")
		},
	}
	cmd.Flags().StringVar(&m.Message, "message", envOr("PIKU_MAINTENANCE_MESSAGE", ""), "the message shown to clients")
	cmd.Flags().BoolVar(&m.Stop, "stop", envOr("PIKU_MAINTENANCE_STOP", "") == "true", "stop the app's processes too")
	return cmd
}
