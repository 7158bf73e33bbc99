package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/shell"
)

// hookNames are the hooks piku installs. The deploy runs in pre-receive,
// so a failed deploy rejects the push and the branch stays at the live
// revision.
var hookNames = []string{"pre-receive"}

// HookScript is the pre-receive hook for app: it runs `piku git-hook APP`
// with the piku binary at self and PIKU_ROOT fixed to root.
func HookScript(root layout.Root, app, self string) string {
	return "#!/bin/sh\n" +
		"# Installed by piku: deploys the pushed branch; a failed deploy rejects the push.\n" +
		"PIKU_ROOT=" + shell.Quote(root.Dir()) + "\n" +
		"export PIKU_ROOT\n" +
		"unset SSH_ORIGINAL_COMMAND\n" +
		"exec " + shell.Quote(self) + " git-hook " + shell.Quote(app) + "\n"
}

// PrepareRepo makes sure repos/APP is a bare repository with piku's hooks
// pointing at self, creating it on the first push. It returns whether it
// was created.
func PrepareRepo(root layout.Root, app, self string) (created bool, err error) {
	if err := layout.ValidateApp(app); err != nil {
		return false, err
	}
	dir := root.Repo(app)
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(root.ReposDir(), 0o755); err != nil {
			return false, err
		}
		if _, err := git.PlainInit(dir, true); err != nil {
			return false, fmt.Errorf("creating the repository of %q: %w", app, err)
		}
		created = true
	} else if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "hooks"), 0o755); err != nil {
		return created, err
	}
	script := HookScript(root, app, self)
	for _, h := range hookNames {
		p := filepath.Join(dir, "hooks", h)
		if cur, err := os.ReadFile(p); err == nil && string(cur) == script {
			continue
		}
		if err := layout.WriteFile(p, []byte(script), 0o755); err != nil {
			return created, fmt.Errorf("installing the %s hook of %q: %w", h, app, err)
		}
	}
	// Python piku deployed from post-receive; that hook would deploy a
	// second time. It is kept in python-piku/ for `piku migrate back`.
	if err := setAsideHook(root, app); err != nil {
		return created, fmt.Errorf("app %q: %w", app, err)
	}
	return created, nil
}

// setAsideHook moves Python piku's post-receive hook of app, if there is
// one, to python-piku/repos/APP/post-receive (unless one is kept there
// already).
func setAsideHook(root layout.Root, app string) error {
	hook := root.RepoHook(app, "post-receive")
	b, err := os.ReadFile(hook)
	if errors.Is(err, os.ErrNotExist) || err == nil && !strings.Contains(string(b), "piku") {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(root.PythonPikuHook(app)); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(root.PythonPikuHook(app)), 0o755); err != nil {
			return err
		}
		if err := layout.WriteFile(root.PythonPikuHook(app), b, 0o755); err != nil {
			return err
		}
	}
	return os.Remove(hook)
}

// pointHead makes the bare repository's HEAD name branch when the branch
// it names does not exist (a new repository's HEAD names master), so that
// clones check the deployed branch out.
func pointHead(repoDir, branch string) error {
	repo, err := git.PlainOpen(repoDir)
	if err != nil {
		return err
	}
	head, err := repo.Storer.Reference(plumbing.HEAD)
	if err != nil {
		return err
	}
	if head.Type() == plumbing.SymbolicReference {
		if _, err := repo.Storer.Reference(head.Target()); err == nil {
			return nil
		}
	}
	return repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName(branch)))
}
