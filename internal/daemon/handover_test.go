package daemon

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestRestartAbandonedRemovesSocketFiles: a restart in place keeps the
// control socket's file when this image closes its listener, for the next
// image; given up (a stop came first), the file goes as on any stop, where
// it was left behind for the next start to find stale.
func TestRestartAbandonedRemovesSocketFiles(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	path := filepath.Join(t.TempDir(), "piku.sock")
	l := inheritFrom(log, 3)
	ln, err := l.listen("unix:"+path, func() (net.Listener, error) { return net.Listen("unix", path) })
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := l.listen("tcp:127.0.0.1:0", func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") })
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()

	var p restartPlan
	p.files, p.env, p.unixPaths, err = l.prepare()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.files) != 2 {
		t.Fatalf("prepare handed over %d sockets, want 2 (%s)", len(p.files), p.env)
	}
	// The control server stops before the restart: its file stays.
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the socket's file is gone before the handover: %v", err)
	}
	p.abandon(log)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the socket's file is left after the restart was given up: %v", err)
	}
	for _, f := range p.files {
		if err := f.Close(); err == nil {
			t.Errorf("%s: the copy handed over is still open", f.Name())
		}
	}
}
