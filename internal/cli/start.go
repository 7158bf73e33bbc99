package cli

import (
	"errors"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/control"
)

func (c *cli) startCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "start APP",
		Short: "Start an app that `piku stop` stopped",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			if err := os.Remove(root.StoppedFile(app)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return c.apply(root, app, control.DeployRequest{}, "the app is no longer marked stopped")
		},
	}
}
