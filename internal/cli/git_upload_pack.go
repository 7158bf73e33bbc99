package cli

import (
	"os"

	"github.com/spf13/cobra"
)

func (c *cli) gitUploadPackCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "git-upload-pack APP",
		Short:  "Send an app's repository (run by ssh for `git clone` and `git fetch`)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.repoArg(args[0])
			if err != nil {
				return err
			}
			if _, err := os.Stat(root.Repo(app)); err != nil {
				return &ExitError{Code: 1, Msg: "app " + quote(app) + " not found (no repository; push to it first)"}
			}
			return execGit("upload-pack", root.Repo(app))
		},
	}
}
