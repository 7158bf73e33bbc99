package daemon

import (
	"bytes"
	"log/slog"
	"sync"
)

// logWriter sends what an operation writes (progress lines meant for a
// user) to the daemon's log, a line at a time, when no user is listening:
// on start-up and after crashes.
type logWriter struct {
	log *slog.Logger
	app string

	mu  sync.Mutex
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if line := bytes.TrimSpace(w.buf[:i]); len(line) > 0 {
			w.log.Info(string(line), "app", w.app)
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
