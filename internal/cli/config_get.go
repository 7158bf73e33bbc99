package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
)

func (c *cli) configGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "config:get APP KEY",
		Short: "Print one setting",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			env, err := appconfig.ReadOverrides(root, app)
			if err != nil {
				return err
			}
			v, ok := env.Get(args[1])
			if !ok {
				return &ExitError{Code: 1, Msg: fmt.Sprintf("%s is not set for app '%s'", args[1], app)}
			}
			fmt.Fprintln(c.stdout, v)
			return nil
		},
	}
}
