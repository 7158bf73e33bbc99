package release

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/piku/piku/internal/layout"
)

// TestLive: the live release is the one apps/APP links to inside
// releases/APP, and its revision is the one its record names.
func TestLive(t *testing.T) {
	root, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Init(); err != nil {
		t.Fatal(err)
	}
	const id = "20260102T030405-abcdef1"
	if err := os.MkdirAll(root.Release("app", id), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.ReleaseMeta("app", id), []byte(`{"id":"x","revision":"abcdef1234","time":"2026-01-02T03:04:05Z"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), id)
	for _, tc := range []struct {
		name, target, wantID, wantRev string
	}{
		{"no apps/APP", "", "", ""},
		{"a release", root.Release("app", id), id, "abcdef1234"},
		{"a link outside releases/APP", elsewhere, "", ""},
	} {
		os.Remove(root.App("app"))
		if tc.target != "" {
			if err := os.Symlink(tc.target, root.App("app")); err != nil {
				t.Fatal(err)
			}
		}
		if got := LiveID(root, "app"); got != tc.wantID {
			t.Errorf("%s: LiveID = %q, want %q", tc.name, got, tc.wantID)
		}
		if got := LiveRevision(root, "app"); got != tc.wantRev {
			t.Errorf("%s: LiveRevision = %q, want %q", tc.name, got, tc.wantRev)
		}
	}
	r, err := Read(root, "app", id)
	if err != nil || r.ID != id || r.Revision != "abcdef1234" {
		t.Errorf("Read = %+v, %v: the ID is the file's name", r, err)
	}
}
