//go:build !linux

package isolation

import "log/slog"

// LogProtectDaemon does nothing where there is no OOM score.
func LogProtectDaemon(log *slog.Logger) {}
