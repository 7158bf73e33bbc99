package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/piku/piku/procfile"
)

func (c *cli) configLiveCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "config:live APP",
		Short: "Show the environment the app was last started with",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			path := root.LiveEnvFile(app)
			b, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(c.stderr, "Warning: app '%s' has not been started, no live config found.\n", app)
				if asJSON {
					return writeJSON(c.stdout, map[string]string{})
				}
				return nil
			}
			if err != nil {
				return err
			}
			if !asJSON {
				_, err = c.stdout.Write(b)
				return err
			}
			env, err := procfile.ParseEnv(bytes.NewReader(b), path, func(string) (string, bool) { return "", false })
			if err != nil {
				return fmt.Errorf("app %q: %w", app, err)
			}
			return writeJSON(c.stdout, env.Map())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the environment as a JSON object")
	return cmd
}
