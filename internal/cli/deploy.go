package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/deploy"
)

func (c *cli) deployCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "deploy APP",
		Short: "Deploy the live revision again: rebuild it into a new release and roll it out",
		Long: `Deploy the live revision again, as a push of it would: check it out into a
new release, build it (dependencies are installed again only when their
manifest changed), run release and roll it out, replacing every process.
An app that was not pushed (its directory was put in apps/ by hand) is
rolled out again from its files.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			if rel, err := deploy.ReadRelease(root, app, deploy.LiveID(root, app)); err == nil && rel.Revision != "" {
				if _, err := os.Stat(root.Repo(app)); err == nil {
					ctx, cancel := signalContext()
					defer cancel()
					d := &deploy.Deployer{Root: root, Daemon: c.client(root), Out: c.stdout}
					return d.Deploy(ctx, deploy.Push{App: app, Revision: rel.Revision, Branch: rel.Branch,
						Fingerprint: os.Getenv("FINGERPRINT"), Source: deploy.Source{Repo: root.Repo(app)}})
				}
			}
			return c.apply(root, app, control.DeployRequest{Restart: []string{"*"}}, "nothing was deployed")
		},
	}
}
