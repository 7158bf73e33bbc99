package deploy

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/testdeps"
)

// gitRepo is a working repository pushing to the app's bare repository.
type gitRepo struct {
	t    *testing.T
	work string
	root layout.Root
	app  string
}

func newGitRepo(t *testing.T, root layout.Root, app string) *gitRepo {
	t.Helper()
	testdeps.Require(t, "git", "apt-get install git")
	g := &gitRepo{t: t, work: t.TempDir(), root: root, app: app}
	g.git(root.Dir(), "init", "-q", "--bare", root.Repo(app))
	g.git(g.work, "init", "-q", "-b", "main")
	g.git(g.work, "remote", "add", "piku", root.Repo(app))
	return g
}

func (g *gitRepo) git(dir string, args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (path -> content; "" removes) and pushes them to the
// bare repository (no hooks there), returning the revision.
func (g *gitRepo) commit(files map[string]string) string {
	g.t.Helper()
	for p, c := range files {
		full := filepath.Join(g.work, p)
		if c == "" {
			_ = os.Remove(full)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			g.t.Fatal(err)
		}
	}
	g.git(g.work, "add", "-A")
	g.git(g.work, "commit", "-q", "--allow-empty", "-m", "change")
	g.git(g.work, "push", "-q", "piku", "main")
	return g.git(g.work, "rev-parse", "HEAD")
}

func (g *gitRepo) push(rev string) Push {
	return Push{App: g.app, Revision: rev, Branch: "main", Fingerprint: "SHA256:test", Source: Source{Repo: g.root.Repo(g.app)}}
}

// fakeDaemon records rollouts and fails those it is told to.
type fakeDaemon struct {
	mu      sync.Mutex
	calls   []control.DeployRequest
	seen    []string // the live release at each call
	root    layout.Root
	fail    func(n int) error // error for the nth call (0-based)
	forgets int
	events  []string // pause, deploy and resume, in order
}

func (f *fakeDaemon) Deploy(ctx context.Context, app string, req control.DeployRequest, out io.Writer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.calls)
	f.calls = append(f.calls, req)
	f.events = append(f.events, "deploy")
	f.seen = append(f.seen, LiveID(f.root, app))
	io.WriteString(out, "rolling out\n")
	if f.fail != nil {
		return f.fail(n)
	}
	return nil
}

func (f *fakeDaemon) Pause(ctx context.Context, app string) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, "pause")
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.events = append(f.events, "resume")
	}, nil
}

func (f *fakeDaemon) Forget(ctx context.Context, app string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgets++
	return nil
}

func newRoot(t *testing.T) layout.Root {
	t.Helper()
	r, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Init(); err != nil {
		t.Fatal(err)
	}
	return r
}
