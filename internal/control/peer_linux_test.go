package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// stopCounter is a backend that counts Stop calls.
type stopCounter struct {
	memBackend
	mu    sync.Mutex
	stops int
}

func (b *stopCounter) Stop(ctx context.Context, app string, out io.Writer) error {
	b.mu.Lock()
	b.stops++
	b.mu.Unlock()
	return nil
}

func TestRefuseCallers(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "piku.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	b := &stopCounter{memBackend: memBackend{apps: map[string]AppStatus{}}}
	srv := NewServer(b, Info{Version: "test"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var mu sync.Mutex
	var refuse bool
	var seenPID, seenUID int
	srv.RefuseCallers(func(pid, uid int) error {
		mu.Lock()
		defer mu.Unlock()
		seenPID, seenUID = pid, uid
		if refuse {
			return errors.New(`refused: process 1 belongs to app "a"`)
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l, time.Second) }()
	defer func() { cancel(); <-done }()

	c := NewClient(sock)
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping of an accepted caller: %v", err)
	}
	mu.Lock()
	if seenPID != os.Getpid() || seenUID != os.Getuid() {
		t.Errorf("check saw pid %d uid %d, want the test's own %d %d", seenPID, seenUID, os.Getpid(), os.Getuid())
	}
	refuse = true
	mu.Unlock()
	err = c.Stop(ctx, "b", io.Discard)
	if err == nil || err.Error() != `refused: process 1 belongs to app "a"` {
		t.Errorf("Stop of a refused caller: err = %v, want the check's error", err)
	}
	if _, err := c.Ping(ctx); err == nil {
		t.Error("Ping of a refused caller succeeded")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stops != 0 {
		t.Errorf("the backend stopped an app %d times for a refused caller", b.stops)
	}
}
