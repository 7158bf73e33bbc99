// Package release is the record of an app's releases: releases/APP/ID.json
// and the apps/APP link that says which one is live. It is the one part of
// a deploy that both sides of the control socket read: the deploy (in the
// git hook) writes the records and switches the link, the daemon reads the
// live revision when it rolls an app out. It imports neither.
package release

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5"

	"github.com/piku/piku/internal/layout"
)

// Release is what releases/APP/ID.json records about a release.
type Release struct {
	// ID names the release: its UTC time to the second and short
	// revision ("20261125T120000-abcdef1"); listings order by Time.
	ID string `json:"id"`
	// Revision is the full git revision, "" for a release migrated from
	// a plain apps/APP directory.
	Revision string `json:"revision,omitempty"`
	// Branch is the branch that was pushed.
	Branch string `json:"branch,omitempty"`
	// Time is when the release was built.
	Time time.Time `json:"time"`
	// Fingerprint is the SSH key that pushed it (FINGERPRINT from the
	// forced command), if known.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Runtime is the detected runtime ("Python", "Go", "generic"...).
	Runtime string `json:"runtime,omitempty"`
	// Config is envs/APP/ENV (the config:set settings) as it was when the
	// release went live.
	Config string `json:"config"`
	// Scaling is envs/APP/SCALING as it was when the release went live.
	Scaling string `json:"scaling"`
	// Live is set in listings for the release apps/APP points at.
	Live bool `json:"live"`
}

// Read reads releases/APP/ID.json.
func Read(root layout.Root, app, id string) (Release, error) {
	var r Release
	b, err := os.ReadFile(root.ReleaseMeta(app, id))
	if err != nil {
		return r, fmt.Errorf("release %s of %q: %w", id, app, err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("release %s of %q: %s: %w", id, app, root.ReleaseMeta(app, id), err)
	}
	r.ID = id
	return r, nil
}

// LiveID is the ID of the release apps/APP links to, or "" when apps/APP
// is missing or not a link into releases/APP.
func LiveID(root layout.Root, app string) string {
	target, err := os.Readlink(root.App(app))
	if err != nil {
		return ""
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(root.AppsDir(), target)
	}
	if filepath.Dir(filepath.Clean(target)) != root.Releases(app) {
		return ""
	}
	return filepath.Base(target)
}

// LiveRevision is the git revision app serves: the revision in the live
// release's record, or, for an apps/APP that is still a plain checkout (a
// Python piku app not yet adopted), the revision checked out there. It is
// "" when neither is known.
func LiveRevision(root layout.Root, app string) string {
	if id := LiveID(root, app); id != "" {
		if r, err := Read(root, app, id); err == nil {
			return r.Revision
		}
	}
	return RevisionOf(root.App(app))
}

// RevisionOf returns the revision checked out in dir, or "".
func RevisionOf(dir string) string {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return ""
	}
	head, err := repo.Head()
	if err != nil {
		return ""
	}
	return head.Hash().String()
}
