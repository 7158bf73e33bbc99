package daemon

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/piku/piku/internal/procgroup"
)

// reapOrphans makes the daemon the child subreaper of everything it
// starts, so that a daemonised grandchild of an app (setsid and a double
// fork) is re-parented to the daemon rather than to init, and reaps those
// orphans when they exit, until ctx ends. Only children that were not
// started through procgroup are reaped: the others belong to their
// os/exec Wait, whose exit status a wait4(-1) loop would steal (see
// procgroup.ReapOrphans). Finding and stopping such a grandchild with its
// app is procgroup's token (procgroup.TagVar).
func reapOrphans(ctx context.Context, log *slog.Logger) error {
	if err := procgroup.BecomeSubreaper(); err != nil {
		log.Warn("cannot become the child subreaper: orphans of apps go to init", "err", err)
		return nil
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGCHLD)
	defer signal.Stop(ch)
	for {
		procgroup.ReapOrphans()
		select {
		case <-ch:
		case <-ctx.Done():
			procgroup.ReapOrphans()
			return nil
		}
	}
}
