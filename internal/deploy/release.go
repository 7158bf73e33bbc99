package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/release"
)

// Release is what releases/APP/ID.json records about a release; see
// release.Release.
type Release = release.Release

// NewID returns a release ID for rev built at t, unique among the releases
// of app.
func NewID(root layout.Root, app string, t time.Time, rev string) string {
	base := t.UTC().Format("20060102T150405")
	if rev != "" {
		base += "-" + short(rev)
	}
	id := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(root.Release(app, id)); errors.Is(err, os.ErrNotExist) {
			return id
		}
		id = base + "." + strconv.Itoa(i)
	}
}

// Releases lists app's complete releases (those with their .json), newest
// first (by the time each records, then by ID), the live one marked.
func Releases(root layout.Root, app string) ([]Release, error) {
	entries, err := os.ReadDir(root.Releases(app))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing the releases of %q: %w", app, err)
	}
	live := LiveID(root, app)
	var out []Release
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(id, ".") {
			continue
		}
		if fi, err := os.Stat(root.Release(app, id)); err != nil || !fi.IsDir() {
			continue
		}
		r, err := ReadRelease(root, app, id)
		if err != nil {
			return nil, err
		}
		r.Live = id == live
		out = append(out, r)
	}
	// By the time recorded, not by ID alone: two pushes within one second
	// make IDs that share their time, and their hashes would decide.
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.After(out[j].Time)
		}
		return out[i].ID > out[j].ID
	})
	return out, nil
}

// ReadRelease reads releases/APP/ID.json.
func ReadRelease(root layout.Root, app, id string) (Release, error) {
	return release.Read(root, app, id)
}

// writeRelease writes releases/APP/ID.json (0600: it holds the config).
func writeRelease(root layout.Root, app string, r Release) error {
	r.Live = false
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return layout.WriteFile(root.ReleaseMeta(app, r.ID), append(b, '\n'), 0o600)
}

// LiveID is the ID of the release apps/APP links to, or "" when apps/APP
// is missing or not a link into releases/APP.
func LiveID(root layout.Root, app string) string { return release.LiveID(root, app) }

// Switch points apps/APP at release id atomically: a new symlink under a
// temporary name renamed over the old one, so apps/APP is always either
// the old or the new release.
func Switch(root layout.Root, app, id string) error {
	if fi, err := os.Stat(root.Release(app, id)); err != nil || !fi.IsDir() {
		return fmt.Errorf("app %q has no release %s", app, id)
	}
	if err := os.MkdirAll(root.AppsDir(), 0o755); err != nil {
		return err
	}
	if fi, err := os.Lstat(root.App(app)); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("app %q: %s is not a symlink to a release; cannot switch it", app, root.App(app))
	}
	tmp := root.AppSwitchTemp(app)
	_ = os.Remove(tmp)
	if err := os.Symlink(root.Release(app, id), tmp); err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	if err := os.Rename(tmp, root.App(app)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("app %q: switching to release %s: %w", app, id, err)
	}
	if d, err := os.Open(root.AppsDir()); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Adopt turns a plain apps/APP directory (an app deployed by Python piku,
// or by hand) into a release, so that it can be switched and rolled back
// to like any other. The release is named after the checkout's last change
// and always sorts before releases made from now on. It returns the new release's ID, or "" when apps/APP
// is already a link or missing.
func Adopt(root layout.Root, app string, now time.Time) (string, error) {
	fi, err := os.Lstat(root.App(app))
	if errors.Is(err, os.ErrNotExist) || err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("app %q: %s is not a directory", app, root.App(app))
	}
	rev := revisionOf(root.App(app))
	id := NewID(root, app, adoptedTime(fi.ModTime(), now), rev)
	if err := os.MkdirAll(root.Releases(app), 0o755); err != nil {
		return "", err
	}
	r := Release{ID: id, Revision: rev, Time: fi.ModTime().UTC(), Runtime: "adopted"}
	r.Config, r.Scaling = readSnapshot(root, app)
	if err := writeRelease(root, app, r); err != nil {
		return "", err
	}
	if err := os.Rename(root.App(app), root.Release(app, id)); err != nil {
		_ = os.Remove(root.ReleaseMeta(app, id))
		return "", fmt.Errorf("app %q: moving %s into the releases: %w", app, root.App(app), err)
	}
	if err := Switch(root, app, id); err != nil {
		return "", err
	}
	return id, nil
}

// adoptedTime is the time an adopted release is named after: when its
// checkout last changed (Python piku's last deploy), but at least a second
// before now. Release IDs sort by time first, so the adopted release sorts
// before a release pushed in the same second as the adoption, whatever the
// two revisions' hashes.
func adoptedTime(modified, now time.Time) time.Time {
	if latest := now.Truncate(time.Second).Add(-time.Second); modified.After(latest) {
		return latest
	}
	return modified
}

// readSnapshot returns the current envs/APP/ENV and SCALING ("" when
// missing).
func readSnapshot(root layout.Root, app string) (config, scaling string) {
	c, _ := os.ReadFile(root.EnvFile(app))
	s, _ := os.ReadFile(root.ScalingFile(app))
	return string(c), string(s)
}

// restoreSnapshot writes a release's config and scaling back to envs/APP.
func restoreSnapshot(root layout.Root, app string, r Release) error {
	if err := os.MkdirAll(root.Env(app), 0o755); err != nil {
		return err
	}
	for _, f := range []struct {
		path, data string
		perm       os.FileMode
	}{{root.EnvFile(app), r.Config, 0o600}, {root.ScalingFile(app), r.Scaling, 0o644}} {
		if f.data == "" {
			if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			continue
		}
		if err := layout.WriteFile(f.path, []byte(f.data), f.perm); err != nil {
			return err
		}
	}
	return nil
}

// Prune removes app's oldest releases beyond keep (at least 1), never the
// live one, one named in protect, or one a running process has as its
// working directory. It returns the removed IDs. Directories of releases
// that never completed (no .json) are removed too.
func Prune(root layout.Root, app string, keep int, protect ...string) ([]string, error) {
	keep = max(keep, 1)
	rels, err := Releases(root, app)
	if err != nil {
		return nil, err
	}
	busy := busyReleases(root, app)
	for _, p := range protect {
		busy[p] = true
	}
	var removed []string
	kept := 0
	for _, r := range rels {
		if kept < keep || r.Live || busy[r.ID] {
			kept++
			continue
		}
		if err := os.RemoveAll(root.Release(app, r.ID)); err != nil {
			return removed, fmt.Errorf("removing release %s of %q: %w", r.ID, app, err)
		}
		if err := os.Remove(root.ReleaseMeta(app, r.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, r.ID)
	}
	return removed, nil
}

// busyReleases returns the releases of app that some process has as its
// working directory (read from /proc; empty where there is none).
func busyReleases(root layout.Root, app string) map[string]bool {
	busy := map[string]bool{}
	dir := root.Releases(app) + string(filepath.Separator)
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", p.Name(), "cwd"))
		if err != nil {
			continue
		}
		if rest, ok := strings.CutPrefix(cwd, dir); ok {
			busy[strings.SplitN(rest, string(filepath.Separator), 2)[0]] = true
		}
	}
	return busy
}
