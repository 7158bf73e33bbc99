package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/revlist"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/transactional"

	"github.com/piku/piku/internal/release"
)

// Source is where a checkout reads objects from: the bare repository and,
// inside a pre-receive hook, the quarantine directory git keeps the pushed
// objects in until the hook accepts them.
type Source struct {
	// Repo is the bare repository, repos/APP.
	Repo string
	// Quarantine is the object directory of a push being received
	// (GIT_QUARANTINE_PATH, or GIT_OBJECT_DIRECTORY when it is not the
	// repository's own), or "".
	Quarantine string
}

// SourceFromEnv returns the Source for repo as a receive hook sees it:
// git tells the hook where the pushed objects are through the environment.
func SourceFromEnv(repo string, getenv func(string) string) Source {
	s := Source{Repo: repo}
	q := getenv("GIT_QUARANTINE_PATH")
	if q == "" {
		q = getenv("GIT_OBJECT_DIRECTORY")
	}
	if q != "" {
		if !filepath.IsAbs(q) {
			q = filepath.Join(repo, q)
		}
		if filepath.Clean(q) != filepath.Join(repo, "objects") {
			s.Quarantine = q
		}
	}
	return s
}

// objects opens the source's object storage. The returned func cleans up.
func (s Source) objects() (storer.EncodedObjectStorer, func(), error) {
	base := filesystem.NewStorage(osfs.New(s.Repo), cache.NewObjectLRUDefault())
	if s.Quarantine == "" {
		return base, func() {}, nil
	}
	// go-git finds objects under GITDIR/objects: give the quarantine
	// directory that name through a symlink in a scratch directory.
	tmp, err := os.MkdirTemp("", "piku-quarantine-")
	if err != nil {
		return nil, nil, err
	}
	if err := os.Symlink(s.Quarantine, filepath.Join(tmp, "objects")); err != nil {
		os.RemoveAll(tmp)
		return nil, nil, err
	}
	q := filesystem.NewStorage(osfs.New(tmp), cache.NewObjectLRUDefault())
	return transactional.NewObjectStorage(base, q), func() { os.RemoveAll(tmp) }, nil
}

// Checkout makes dest (which must not exist) a git checkout of rev from
// src, on branch: a .git holding every object rev needs (copied, so the
// release does not depend on the bare repository), the branch at rev and
// checked out, origin pointing at the bare repository, and submodules
// initialised and updated recursively when there is a .gitmodules.
func Checkout(ctx context.Context, src Source, rev, branch, dest string, out io.Writer) error {
	h := plumbing.NewHash(rev)
	if h.IsZero() || h.String() != rev {
		return fmt.Errorf("%q is not a full revision", rev)
	}
	objs, done, err := src.objects()
	if err != nil {
		return fmt.Errorf("opening %s: %w", src.Repo, err)
	}
	defer done()
	hashes, err := revlist.Objects(objs, []plumbing.Hash{h}, nil)
	if err != nil {
		return fmt.Errorf("reading revision %s from %s: %w", short(rev), src.Repo, err)
	}
	repo, err := git.PlainInit(dest, false)
	if err != nil {
		return fmt.Errorf("creating %s: %w", dest, err)
	}
	pw, ok := repo.Storer.(storer.PackfileWriter)
	if !ok {
		return errors.New("go-git storage cannot write packfiles")
	}
	w, err := pw.PackfileWriter()
	if err != nil {
		return err
	}
	if _, err := packfile.NewEncoder(w, objs, false).Encode(hashes, 0); err != nil {
		w.Close()
		return fmt.Errorf("copying revision %s: %w", short(rev), err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("copying revision %s: %w", short(rev), err)
	}
	if branch == "" {
		branch = "master"
	}
	ref := plumbing.NewBranchReferenceName(branch)
	if err := repo.Storer.SetReference(plumbing.NewHashReference(ref, h)); err != nil {
		return err
	}
	if err := repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, ref)); err != nil {
		return err
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{src.Repo}}); err != nil {
		return err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return err
	}
	if err := wt.Checkout(&git.CheckoutOptions{Branch: ref, Force: true}); err != nil {
		return fmt.Errorf("checking out %s: %w", short(rev), err)
	}
	if _, err := os.Stat(filepath.Join(dest, ".gitmodules")); err == nil {
		fmt.Fprintln(out, "-----> Updating submodules")
		subs, err := wt.Submodules()
		if err != nil {
			return fmt.Errorf("reading .gitmodules: %w", err)
		}
		if err := subs.UpdateContext(ctx, &git.SubmoduleUpdateOptions{
			Init: true, RecurseSubmodules: git.DefaultSubmoduleRecursionDepth,
		}); err != nil {
			return fmt.Errorf("updating submodules: %w", err)
		}
	}
	return nil
}

// revisionOf returns the revision checked out in dir, or "".
func revisionOf(dir string) string { return release.RevisionOf(dir) }
