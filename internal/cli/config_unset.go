package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
)

func (c *cli) configUnsetCommand() *cobra.Command {
	var noRestart bool
	cmd := &cobra.Command{
		Use:   "config:unset APP KEY...",
		Short: "Remove settings and roll the app out without them",
		Long: "Remove settings and roll the app out without them. If the rollout fails, the settings are " +
			"put back as they were. With --no-restart the change is only saved.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			return c.changeFiles(root, app, []string{root.EnvFile(app)}, noRestart, "the settings are saved", func() error {
				env, err := appconfig.ReadOverrides(root, app)
				if err != nil {
					return err
				}
				for _, k := range args[1:] {
					fmt.Fprintf(c.stdout, "Unsetting %s for '%s'\n", k, app)
					env.Unset(k)
				}
				return appconfig.WriteOverrides(root, app, env)
			})
		},
	}
	cmd.Flags().BoolVar(&noRestart, "no-restart", envOr("PIKU_NO_RESTART", "") == "true",
		"only save the change; it takes effect at the next restart or deploy [$PIKU_NO_RESTART]")
	return cmd
}
