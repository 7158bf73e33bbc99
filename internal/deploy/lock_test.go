package deploy

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestLockSerialisesOneAppOnly(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a", ".lock"), filepath.Join(dir, "b", ".lock")
	unlockA, err := Lock(context.Background(), a, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Another app's lock is free.
	unlockB, err := Lock(context.Background(), b, func() { t.Error("b waited for a") })
	if err != nil {
		t.Fatal(err)
	}
	unlockB()

	// The same app's lock waits, says so, and gives up with the context.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	waited := false
	if _, err := Lock(ctx, a, func() { waited = true }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock: err = %v, want deadline exceeded", err)
	}
	if !waited {
		t.Error("waiting was not reported")
	}

	// Once released, a waiter gets it.
	got, waiting := make(chan error, 1), make(chan struct{})
	go func() {
		unlock, err := Lock(context.Background(), a, func() { close(waiting) })
		if err == nil {
			unlock()
		}
		got <- err
	}()
	<-waiting
	unlockA()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}
