package deploy

import (
	"context"
	"errors"
	"os"
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

// A destroy removes the app's releases folder, lock file included, while
// it holds the lock. Whoever waited on the removed file must not think it
// holds the app's lock while a newcomer takes a new file at the same path:
// the waiter takes the lock on the file now at the path.
func TestLockSurvivesItsFileBeingRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "releases", ".lock")
	unlockA, err := Lock(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		unlock func()
		err    error
	}
	got, waiting := make(chan result, 1), make(chan struct{})
	go func() {
		unlock, err := Lock(context.Background(), path, func() { close(waiting) })
		got <- result{unlock, err}
	}()
	<-waiting
	if err := os.RemoveAll(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	unlockA()
	b := <-got
	if b.err != nil {
		t.Fatal(b.err)
	}
	defer b.unlock()

	// A newcomer finds the lock held by the waiter and waits in turn.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	unlockC, err := Lock(ctx, path, cancel)
	if err == nil {
		unlockC()
		t.Fatal("a newcomer took the lock while the waiter held it")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("newcomer: err = %v, want it to wait until cancelled", err)
	}
}
