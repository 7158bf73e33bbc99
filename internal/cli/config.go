package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/procfile"
)

func (c *cli) configCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "config APP",
		Short: "Show the settings set with config:set",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			env, err := appconfig.ReadOverrides(root, app)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.stdout, env.Map())
			}
			if env.Len() == 0 {
				fmt.Fprintf(c.stderr, "Warning: app '%s' has no settings; set some with config:set\n", app)
				return nil
			}
			return procfile.WriteEnv(c.stdout, env)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the settings as a JSON object")
	return cmd
}
