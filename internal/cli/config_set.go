package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
)

func (c *cli) configSetCommand() *cobra.Command {
	var noRestart bool
	cmd := &cobra.Command{
		Use:   "config:set APP KEY=VALUE...",
		Short: "Set settings and roll the app out with them",
		Long: "Set settings and roll the app out with them. If the rollout fails, the settings are put " +
			"back as they were. With --no-restart the settings are only saved: they take effect at the " +
			"app's next restart or deploy.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			kvs, err := appconfig.ParseAssignments(args[1:])
			if err != nil {
				return err
			}
			return c.changeFiles(root, app, []string{root.EnvFile(app)}, noRestart, "the settings are saved", func() error {
				env, err := appconfig.ReadOverrides(root, app)
				if err != nil {
					return err
				}
				for _, kv := range kvs {
					fmt.Fprintf(c.stdout, "Setting %s=%s for '%s'\n", kv[0], kv[1], app)
					env.Set(kv[0], kv[1])
				}
				return appconfig.WriteOverrides(root, app, env)
			})
		},
	}
	cmd.Flags().BoolVar(&noRestart, "no-restart", envOr("PIKU_NO_RESTART", "") == "true",
		"only save the settings; they take effect at the next restart or deploy [$PIKU_NO_RESTART]")
	return cmd
}
