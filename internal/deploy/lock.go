package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Lock takes the exclusive lock on path (created if needed), waiting until
// it is free or ctx ends. waiting is called once if the lock is held by
// someone else. The returned func releases it; the kernel releases it too if
// the process dies. A lock file removed by its holder (destroy removes the
// app's releases folder) is created anew, and the lock taken on that.
func Lock(ctx context.Context, path string, waiting func()) (unlock func(), err error) {
	told := false
	delay := 10 * time.Millisecond
	for {
		f, err := openLock(path)
		if err != nil {
			return nil, err
		}
		for {
			err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if err == nil {
				break
			}
			if !errors.Is(err, syscall.EWOULDBLOCK) {
				f.Close()
				return nil, fmt.Errorf("locking %s: %w", path, err)
			}
			if !told && waiting != nil {
				waiting()
				told = true
			}
			// flock has no timeout; poll with a growing delay so ctx can
			// end the wait.
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				f.Close()
				return nil, fmt.Errorf("waiting for the lock %s: %w", path, ctx.Err())
			case <-t.C:
			}
			delay = min(delay*2, 500*time.Millisecond)
		}
		// The holder before us may have removed the file (destroy removes
		// the folder it is in): a lock on a file no longer at path locks
		// nothing, since the next one to come creates a new file there.
		// Take the lock on the file now at path instead.
		if samePath(f, path) {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		f.Close()
	}
}

// openLock opens (creating it and its folder if needed) the lock file.
func openLock(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("opening the lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the lock %s: %w", path, err)
	}
	return f, nil
}

// samePath reports whether f is still the file at path.
func samePath(f *os.File, path string) bool {
	held, err := f.Stat()
	if err != nil {
		return false
	}
	now, err := os.Stat(path)
	return err == nil && os.SameFile(held, now)
}
