package daemon

import (
	"context"
	"log/slog"
	"os"
)

// stopOnSignal returns ctx, also ended by a signal on sigs (none when
// sigs is nil), and a function that releases it.
func stopOnSignal(ctx context.Context, sigs <-chan os.Signal, log *slog.Logger) (context.Context, context.CancelFunc) {
	if sigs == nil {
		return ctx, func() {}
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case s := <-sigs:
			if parent.Err() == nil { // else the command line said so
				log.Info("signal received: stopping gracefully", "signal", s.String())
			}
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
