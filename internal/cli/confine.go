package cli

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/isolation"
)

// confineCommand is the hidden `piku __confine -- COMMAND...`: the daemon
// starts an app's processes through it (procgroup.ConfineVar) so that they
// run confined to their app (isolation.ConfineFromEnv). Go cannot run code
// between fork and exec; a re-exec of piku that restricts itself and then
// execs the command can.
func (c *cli) confineCommand() *cobra.Command {
	return &cobra.Command{
		Use:                isolation.ConfineSubcommand + " -- COMMAND [ARG...]",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			if len(args) == 0 {
				return fmt.Errorf("%s: no command", isolation.ConfineSubcommand)
			}
			path, err := exec.LookPath(args[0])
			if err != nil {
				return err
			}
			if _, err := isolation.ConfineFromEnv(); err != nil {
				return err
			}
			return syscall.Exec(path, args, os.Environ())
		},
	}
}
