package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/layout"
)

func (c *cli) stopCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "stop APP",
		Short: "Stop the app's processes; it stays stopped until `piku start` or a deploy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			if err := layout.WriteFile(root.StoppedFile(app), []byte("stopped with `piku stop`\n"), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "-----> Stopping '%s'\n", app)
			ctx, cancel := signalContext()
			defer cancel()
			err = c.client(root).Stop(ctx, app, c.streamOut())
			if control.IsNotRunning(err) {
				return fmt.Errorf("app %q is marked stopped, but %w", app, err)
			}
			return err
		},
	}
}
