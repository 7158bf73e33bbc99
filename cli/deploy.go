package cli

import (
	"github.com/spf13/cobra"

	"github.com/piku/piku/control"
)

func (c *cli) deployCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "deploy APP",
		Short: "Roll the app out again from its files (every process is replaced)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			return c.apply(root, app, control.DeployRequest{Restart: []string{"*"}}, "nothing was deployed")
		},
	}
}
