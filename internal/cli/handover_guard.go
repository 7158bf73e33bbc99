package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/daemon"
)

// handoverGuardCommand is the hidden `piku __handover-guard`, which the
// daemon starts as it restarts in place (daemon.Guard): it reads the pipe
// on descriptor 3 and stops every app if the daemon ends before its next
// image catches stop signals.
func (c *cli) handoverGuardCommand() *cobra.Command {
	return &cobra.Command{
		Use:    daemon.GuardSubcommand,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, err := c.root()
			if err != nil {
				return err
			}
			var w io.Writer = c.stderr
			if f, err := os.OpenFile(root.DaemonLog(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
				defer f.Close()
				w = io.MultiWriter(f, c.stderr)
			}
			log := slog.New(slog.NewTextHandler(w, nil)).With("part", "handover guard")
			pipe := os.NewFile(3, "handover guard pipe")
			if pipe == nil {
				return fmt.Errorf("%s: no pipe on descriptor 3", daemon.GuardSubcommand)
			}
			defer pipe.Close()
			return daemon.Guard(root, pipe, log)
		},
	}
}
