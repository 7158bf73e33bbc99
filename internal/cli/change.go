package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/deploy"
	"github.com/piku/piku/internal/layout"
)

// changeFiles is one change of an app's state files (config:set,
// config:unset, ps:scale). Under the app's deploy lock it lets edit read
// and rewrite the files, then rolls the app out unless noRestart, so
// concurrent changes never lose one another and a push never interleaves.
// When the rollout fails, the files are put back as they were and the app
// is rolled out with them again, so a refused change is not applied by the
// next restart. what says what the files now hold, for the message shown
// when the daemon is not running.
func (c *cli) changeFiles(root layout.Root, app string, files []string, noRestart bool, what string, edit func() error) error {
	ctx, cancel := signalContext()
	defer cancel()
	unlock, err := deploy.Lock(ctx, root.DeployLock(app), func() {
		fmt.Fprintf(c.stdout, "-----> Another change of '%s' is in progress: waiting for it to finish\n", app)
	})
	if err != nil {
		return err
	}
	defer unlock()
	// A destroy may have held the lock while this change waited for it.
	if !root.Exists(app) {
		return &ExitError{Code: 1, Msg: "app " + quote(app) + " not found (destroyed while this change waited); nothing was changed"}
	}
	before := make([]snapshot, 0, len(files))
	for _, f := range files {
		s, err := takeSnapshot(f)
		if err != nil {
			return err
		}
		before = append(before, s)
	}
	if err := edit(); err != nil {
		return err
	}
	if noRestart {
		fmt.Fprintf(c.stdout, "-----> Saved; '%s' keeps running as it was until its next restart or deploy\n", app)
		return nil
	}
	client := c.client(root)
	err = client.Deploy(ctx, app, control.DeployRequest{}, c.stdout)
	if control.IsNotRunning(err) {
		return fmt.Errorf("%s, but %w; it will be applied when the daemon starts", what, err)
	}
	if err == nil {
		return nil
	}
	for _, s := range before {
		if rerr := s.restore(); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	fmt.Fprintf(c.stdout, "-----> The change was not applied: putting '%s' back as it was\n", app)
	if rerr := client.Deploy(context.WithoutCancel(ctx), app, control.DeployRequest{}, c.stdout); rerr != nil {
		return errors.Join(err, fmt.Errorf("rolling back to the previous settings: %w", rerr))
	}
	return fmt.Errorf("%w; nothing was changed", err)
}

// snapshot is a state file's content before a change.
type snapshot struct {
	path   string
	data   []byte
	mode   fs.FileMode
	exists bool
}

func takeSnapshot(path string) (snapshot, error) {
	s := snapshot{path: path}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if s.data, err = os.ReadFile(path); err != nil {
		return s, err
	}
	s.mode, s.exists = fi.Mode().Perm(), true
	return s, nil
}

// restore puts the file back as it was (removes it if it did not exist).
func (s snapshot) restore() error {
	if !s.exists {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return layout.WriteFile(s.path, s.data, s.mode)
}
