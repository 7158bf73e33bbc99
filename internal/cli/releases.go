package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/deploy"
)

func (c *cli) releasesCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "releases APP",
		Short: "List the app's kept releases, newest first; '*' marks the live one",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.appArg(args[0])
			if err != nil {
				return err
			}
			rels, err := deploy.Releases(root, app)
			if err != nil {
				return err
			}
			if asJSON {
				if rels == nil {
					rels = []deploy.Release{}
				}
				return writeJSON(c.stdout, rels)
			}
			if len(rels) == 0 {
				return &ExitError{Code: 1, Msg: "app " + quote(app) + " has no releases"}
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  RELEASE\tREVISION\tBRANCH\tDEPLOYED\tRUNTIME\tKEY")
			for _, r := range rels {
				mark := " "
				if r.Live {
					mark = "*"
				}
				rev := r.Revision
				if len(rev) > 12 {
					rev = rev[:12]
				}
				fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\t%s\n", mark, r.ID, orDash(rev), orDash(r.Branch),
					r.Time.Local().Format("2006-01-02 15:04:05"), orDash(r.Runtime), orDash(r.Fingerprint))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the releases as JSON")
	return cmd
}
