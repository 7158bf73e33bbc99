package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/migrate"
)

func (c *cli) setupCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "setup",
		Short: "Create PIKU_ROOT's folders and print the next steps",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, err := c.root()
			if err != nil {
				return err
			}
			// Python piku's files and folder modes are kept first, as
			// the daemon's first start does.
			if _, err := migrate.Save(root, time.Now()); err != nil {
				return err
			}
			if err := root.Init(); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, `-----> piku is set up in %s

Next steps:
  1. Run the daemon as a service (as root):     piku service install && piku service start
     or in the foreground, to try it out:       piku daemon
  2. Let a developer in with their SSH key:     piku setup:ssh /path/to/id_ed25519.pub
  3. On the developer's machine:
       git remote add piku piku@THIS-SERVER:myapp
       git push piku main
`, root.Dir())
			return nil
		},
	}
}
