package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"
)

func (c *cli) configLiveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "config:live APP",
		Short: "Show the environment the app was last started with",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			b, err := os.ReadFile(root.LiveEnvFile(app))
			if errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(c.stderr, "Warning: app '%s' has not been started, no live config found.\n", app)
				return nil
			}
			if err != nil {
				return err
			}
			_, err = c.stdout.Write(b)
			return err
		},
	}
}
