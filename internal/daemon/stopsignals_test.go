package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/piku/piku/internal/testdeps"
)

// TestExecSelfStopsFirst: a stop that came before the exec, heard by the
// stop context or only by the daemon's own signal channel, wins: execSelf
// returns without exec'ing. (The binary does not exist: were the check
// missing, the exec would fail otherwise.)
func TestExecSelfStopsFirst(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	caught := make(chan os.Signal, 1)
	caught <- syscall.SIGTERM
	tests := []struct {
		name string
		stop context.Context
		sigs chan os.Signal
	}{
		{"stop context ended", canceled, nil},
		{"signal caught", context.Background(), caught},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := execSelf(tt.stop, tt.sigs, "/nonexistent/piku", nil, "", nil)
			if !errors.Is(err, errStopBeforeExec) {
				t.Fatalf("execSelf = %v, want %v", err, errStopBeforeExec)
			}
		})
	}
}

// TestStopOnSignal: a signal caught early (earlysignal) ends Run's
// context; without a channel the context is the caller's.
func TestStopOnSignal(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	parent := context.Background()
	if ctx, release := stopOnSignal(parent, nil, log); ctx != parent {
		t.Fatal("a context of its own without a channel")
	} else {
		release()
	}
	sigs := make(chan os.Signal, 1)
	ctx, release := stopOnSignal(parent, sigs, log)
	defer release()
	sigs <- syscall.SIGTERM
	select {
	case <-ctx.Done():
	case <-testdeps.Waiting(t).Done():
		t.Fatal("the signal did not end the context")
	}
}

// TestSignalBarrier: a SIGTERM the process caught is in the channel
// notified of it once signalBarrier returns, as execSelf's check needs.
func TestSignalBarrier(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	defer signal.Stop(sigs)
	for i := range 20 {
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		signalBarrier()
		if len(sigs) != 1 {
			t.Fatalf("try %d: the SIGTERM caught is not in the channel after the barrier", i)
		}
		<-sigs
	}
}
