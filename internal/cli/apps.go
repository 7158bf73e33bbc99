package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/control"
)

func (c *cli) appsCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "apps",
		Short: "List apps; a '*' marks the ones that are running",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, err := c.root()
			if err != nil {
				return err
			}
			names, err := root.Apps()
			if err != nil {
				return err
			}
			live := map[string]control.AppStatus{}
			statuses, err := c.client(root).Apps(context.Background())
			daemonDown := control.IsNotRunning(err)
			if err != nil && !daemonDown {
				return err
			}
			for _, st := range statuses {
				live[st.App] = st
			}
			if asJSON {
				out := make([]control.AppStatus, 0, len(names))
				for _, n := range names {
					st, ok := live[n]
					if !ok {
						st = control.AppStatus{App: n, Instances: []control.Instance{}}
					}
					out = append(out, st)
				}
				return writeJSON(c.stdout, out)
			}
			if len(names) == 0 {
				fmt.Fprintln(c.stderr, "There are no applications deployed.")
			}
			p := painter(colourOn(c.stdout))
			for _, n := range names {
				mark := " "
				if live[n].Running {
					mark = p.paint(sgrGreen, "*")
				}
				fmt.Fprintf(c.stdout, "%s%s\n", mark, n)
			}
			if daemonDown && len(names) > 0 {
				fmt.Fprintln(c.stderr, "note: the piku daemon is not running, so no app is marked as running")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the apps and their live state as JSON")
	return cmd
}
