package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/testdeps"
)

// clock hands out times a second apart, so release IDs differ.
func clock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

func newDeployer(root layout.Root, d *fakeDaemon) (*Deployer, *bytes.Buffer) {
	var out bytes.Buffer
	return &Deployer{Root: root, Daemon: d, Out: &syncWriter{w: &out}, Now: clock()}, &out
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDeployAndRedeploy(t *testing.T) {
	root := newRoot(t)
	g := newGitRepo(t, root, "app")
	fd := &fakeDaemon{root: root}
	d, out := newDeployer(root, fd)
	if err := os.MkdirAll(root.Env("app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.EnvFile("app"), []byte("SECRET=s1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rev1 := g.commit(map[string]string{
		"Procfile":  "web: ./run\npreflight: echo preflight in $PWD > preflight.out\nrelease: echo release $SECRET $GREETING > release.out\n",
		"ENV":       "GREETING=hi\n",
		"lib/a.txt": "v1\n",
	})
	if err := d.Deploy(context.Background(), g.push(rev1)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	id1 := LiveID(root, "app")
	if !strings.HasSuffix(id1, "-"+rev1[:7]) {
		t.Fatalf("live release %q is not named after %s", id1, rev1)
	}
	if got := readFile(t, filepath.Join(root.App("app"), "release.out")); got != "release s1 hi\n" {
		t.Errorf("release command saw %q", got)
	}
	if got := readFile(t, filepath.Join(root.App("app"), "preflight.out")); got != "preflight in "+root.Release("app", id1)+"\n" {
		t.Errorf("preflight ran in %q", got)
	}
	if got := revisionOf(root.App("app")); got != rev1 {
		t.Errorf("checkout is at %q, want %s", got, rev1)
	}
	for _, want := range []string{"-----> Generic app detected", "-----> Running release:", "rolling out"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	rev2 := g.commit(map[string]string{"lib/a.txt": "v2\n"})
	if err := d.Deploy(context.Background(), g.push(rev2)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := readFile(t, filepath.Join(root.App("app"), "lib/a.txt")); got != "v2\n" {
		t.Errorf("after redeploy apps/app/lib/a.txt = %q", got)
	}
	rels, err := Releases(root, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 2 || !rels[0].Live || rels[1].Live || rels[0].Revision != rev2 || rels[1].ID != id1 {
		t.Fatalf("releases = %+v", rels)
	}
	r := rels[0]
	if r.Fingerprint != "SHA256:test" || r.Branch != "main" || r.Config != "SECRET=s1\n" || r.Runtime != "Generic" {
		t.Errorf("release metadata = %+v", r)
	}
	if fi, err := os.Stat(root.ReleaseMeta("app", r.ID)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("metadata mode: %v %v", fi.Mode(), err)
	}
	if len(fd.calls) != 2 || !slices.Equal(fd.calls[1].Restart, []string{"*"}) || fd.seen[1] != r.ID {
		t.Errorf("daemon calls = %+v seen %v", fd.calls, fd.seen)
	}
}

func TestDeployFailuresLeaveTheLiveRelease(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"preflight", map[string]string{"Procfile": "web: ./run\npreflight: exit 4\n"}, "preflight failed"},
		{"release", map[string]string{"Procfile": "web: ./run\nrelease: echo migrating; exit 3\n"}, "release failed"},
		{"no Procfile", map[string]string{"Procfile": ""}, "no Procfile"},
		{"bad Procfile", map[string]string{"Procfile": "web ./run\n"}, "Procfile line 1"},
		{"missing toolchain", map[string]string{"Cargo.toml": "[package]\n", "ENV": "PATH=/nonexistent\n"}, "apt-get install cargo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newRoot(t)
			g := newGitRepo(t, root, "app")
			fd := &fakeDaemon{root: root}
			d, out := newDeployer(root, fd)
			rev1 := g.commit(map[string]string{"Procfile": "web: ./run\n"})
			if err := d.Deploy(context.Background(), g.push(rev1)); err != nil {
				t.Fatal(err)
			}
			live := LiveID(root, "app")
			rev2 := g.commit(tt.files)
			err := d.Deploy(context.Background(), g.push(rev2))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q\n%s", err, tt.want, out)
			}
			if LiveID(root, "app") != live {
				t.Errorf("live release changed to %s", LiveID(root, "app"))
			}
			if len(fd.calls) != 1 {
				t.Errorf("the daemon was asked %d times, want once", len(fd.calls))
			}
			entries, _ := os.ReadDir(root.Releases("app"))
			for _, e := range entries {
				if strings.Contains(e.Name(), rev2[:7]) {
					t.Errorf("failed release left behind: %s", e.Name())
				}
			}
		})
	}
}

func TestRolloutFailureSwitchesBack(t *testing.T) {
	root := newRoot(t)
	g := newGitRepo(t, root, "app")
	fd := &fakeDaemon{root: root}
	d, out := newDeployer(root, fd)
	rev1 := g.commit(map[string]string{"Procfile": "web: ./run\n"})
	if err := d.Deploy(context.Background(), g.push(rev1)); err != nil {
		t.Fatal(err)
	}
	prev := LiveID(root, "app")
	fd.fail = func(n int) error {
		if n == 1 {
			return errors.New("web.1 never became ready")
		}
		return nil
	}
	rev2 := g.commit(map[string]string{"Procfile": "web: ./run2\n"})
	err := d.Deploy(context.Background(), g.push(rev2))
	if err == nil || !strings.Contains(err.Error(), "never became ready") || !strings.Contains(err.Error(), prev+" is still live") {
		t.Fatalf("err = %v\n%s", err, out)
	}
	if LiveID(root, "app") != prev {
		t.Errorf("live = %s, want %s", LiveID(root, "app"), prev)
	}
	if len(fd.calls) != 3 || fd.seen[1] == prev || fd.seen[2] != prev || fd.calls[2].Restart != nil {
		t.Errorf("daemon calls = %+v, live at each: %v", fd.calls, fd.seen)
	}
	if _, err := os.Stat(root.Release("app", fd.seen[1])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed release %s is still on disk", fd.seen[1])
	}
}

func TestFirstDeployRolloutFailureDropsTheApp(t *testing.T) {
	root := newRoot(t)
	g := newGitRepo(t, root, "app")
	fd := &fakeDaemon{root: root, fail: func(int) error { return errors.New("boot failed") }}
	d, _ := newDeployer(root, fd)
	rev := g.commit(map[string]string{"Procfile": "web: ./run\n"})
	if err := d.Deploy(context.Background(), g.push(rev)); err == nil {
		t.Fatal("deploy succeeded")
	}
	if _, err := os.Lstat(root.App("app")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("apps/app still exists: %v", err)
	}
	if fd.forgets != 1 {
		t.Errorf("Forget called %d times", fd.forgets)
	}
}

func TestDaemonNotRunningStillDeploys(t *testing.T) {
	root := newRoot(t)
	g := newGitRepo(t, root, "app")
	fd := &fakeDaemon{root: root, fail: func(int) error {
		return &control.NotRunningError{Socket: root.Socket(), Err: errors.New("dial")}
	}}
	d, out := newDeployer(root, fd)
	rev := g.commit(map[string]string{"Procfile": "web: ./run\n", "ENV": "PIKU_AUTO_RESTART=false\n"})
	if err := d.Deploy(context.Background(), g.push(rev)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "will start with it") {
		t.Errorf("output:\n%s", out)
	}
	if LiveID(root, "app") == "" {
		t.Error("no live release")
	}
	if fd.calls[0].Restart != nil || !fd.calls[0].KeepRunning {
		t.Errorf("PIKU_AUTO_RESTART=false: request %+v, want no restart and the running processes kept", fd.calls[0])
	}
}

func TestRollbackRestoresCodeAndConfig(t *testing.T) {
	root := newRoot(t)
	g := newGitRepo(t, root, "app")
	fd := &fakeDaemon{root: root}
	d, out := newDeployer(root, fd)
	setConfig := func(s string) {
		t.Helper()
		if err := os.MkdirAll(root.Env("app"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root.EnvFile("app"), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setConfig("A=1\n")
	rev1 := g.commit(map[string]string{"Procfile": "web: ./v1\n"})
	if err := d.Deploy(context.Background(), g.push(rev1)); err != nil {
		t.Fatal(err)
	}
	id1 := LiveID(root, "app")
	rev2 := g.commit(map[string]string{"Procfile": "web: ./v2\n"})
	if err := d.Deploy(context.Background(), g.push(rev2)); err != nil {
		t.Fatal(err)
	}
	id2 := LiveID(root, "app")
	setConfig("A=2\n") // config:set while release 2 is live

	if err := d.Rollback(context.Background(), "app", ""); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if LiveID(root, "app") != id1 || readFile(t, root.EnvFile("app")) != "A=1\n" ||
		readFile(t, root.AppProcfile("app")) != "web: ./v1\n" {
		t.Fatalf("after rollback: live %s, config %q", LiveID(root, "app"), readFile(t, root.EnvFile("app")))
	}
	if err := d.Rollback(context.Background(), "app", ""); err == nil {
		t.Error("rolled back past the oldest release")
	}
	if err := d.Rollback(context.Background(), "app", id2); err != nil {
		t.Fatal(err)
	}
	if LiveID(root, "app") != id2 || readFile(t, root.EnvFile("app")) != "A=2\n" {
		t.Errorf("forward again: live %s, config %q", LiveID(root, "app"), readFile(t, root.EnvFile("app")))
	}
	if err := d.Rollback(context.Background(), "app", "nope"); err == nil || !strings.Contains(err.Error(), "no release") {
		t.Errorf("unknown release: %v", err)
	}
	// A failed rollout puts the live release back.
	fd.fail = func(n int) error {
		if n == len(fd.calls)-1 && fd.seen[n] == id1 {
			return errors.New("boot failed")
		}
		return nil
	}
	if err := d.Rollback(context.Background(), "app", id1); err == nil {
		t.Fatal("failed rollback succeeded")
	}
	if LiveID(root, "app") != id2 || readFile(t, root.EnvFile("app")) != "A=2\n" {
		t.Errorf("after a failed rollback: live %s, config %q", LiveID(root, "app"), readFile(t, root.EnvFile("app")))
	}
}

func TestPruneKeepsLiveAndBusy(t *testing.T) {
	root := newRoot(t)
	g := newGitRepo(t, root, "app")
	fd := &fakeDaemon{root: root}
	d, _ := newDeployer(root, fd)
	var ids []string
	for i := range 6 {
		rev := g.commit(map[string]string{"Procfile": fmt.Sprintf("web: ./v%d\n", i), "ENV": "PIKU_KEEP_RELEASES=3\n"})
		if err := d.Deploy(context.Background(), g.push(rev)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, LiveID(root, "app"))
	}
	rels, _ := Releases(root, "app")
	if len(rels) != 3 || rels[0].ID != ids[5] || rels[2].ID != ids[3] {
		t.Fatalf("kept %+v", rels)
	}
	// A process still running in an old release keeps it; so does
	// protecting it; the live one is never removed, even beyond keep.
	testdeps.Require(t, "sleep", "apt-get install coreutils")
	cmd := exec.Command("sleep", "30")
	cmd.Dir = root.Release("app", ids[4])
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := Switch(root, "app", ids[3]); err != nil {
		t.Fatal(err)
	}
	removed, err := Prune(root, "app", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 0 {
		// ids[5] is the newest (kept by count), ids[4] busy, ids[3] live.
		t.Errorf("removed %v", removed)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	removed, err = Prune(root, "app", 1, ids[5])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{ids[4]}) {
		t.Errorf("removed %v, want [%s]", removed, ids[4])
	}
}

func TestAdoptPlainAppDir(t *testing.T) {
	root := newRoot(t)
	if err := os.MkdirAll(root.App("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.AppProcfile("old"), []byte("web: ./old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Switch refuses to replace a directory.
	if err := os.MkdirAll(root.Release("old", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Switch(root, "old", "x"); err == nil {
		t.Fatal("Switch replaced a plain directory")
	}
	id, err := Adopt(root, "old", time.Now())
	if err != nil || id == "" {
		t.Fatalf("Adopt = %q, %v", id, err)
	}
	if LiveID(root, "old") != id || readFile(t, root.AppProcfile("old")) != "web: ./old\n" {
		t.Errorf("after adopting: live %q", LiveID(root, "old"))
	}
	if again, err := Adopt(root, "old", time.Now()); err != nil || again != "" {
		t.Errorf("second Adopt = %q, %v", again, err)
	}
	rels, _ := Releases(root, "old")
	if len(rels) != 1 || rels[0].Runtime != "adopted" || !rels[0].Live {
		t.Errorf("releases = %+v", rels)
	}
}

func TestSwitchIsARename(t *testing.T) {
	root := newRoot(t)
	for _, id := range []string{"a", "b"} {
		if err := os.MkdirAll(root.Release("app", id), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := Switch(root, "app", "a"); err != nil {
		t.Fatal(err)
	}
	// Keep apps/app open through the switch: readers see one release or
	// the other, never nothing.
	stop := make(chan struct{})
	var missing bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := os.Stat(root.App("app")); err != nil {
				missing = true
			}
		}
	}()
	for i := range 200 {
		if err := Switch(root, "app", []string{"a", "b"}[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if missing {
		t.Error("apps/app was missing during a switch")
	}
	if LiveID(root, "app") != "b" {
		t.Errorf("live = %q", LiveID(root, "app"))
	}
	if err := Switch(root, "app", "nope"); err == nil {
		t.Error("switched to a missing release")
	}
}

func TestSameAppDeploysSerialise(t *testing.T) {
	root := newRoot(t)
	g := newGitRepo(t, root, "app")
	fd := &fakeDaemon{root: root}
	d, out := newDeployer(root, fd)
	rev := g.commit(map[string]string{"Procfile": "web: ./run\nrelease: test ! -e $DATA_ROOT/busy && mkdir -p $DATA_ROOT && touch $DATA_ROOT/busy && sleep 0.3 && rm $DATA_ROOT/busy\n"})
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.Deploy(context.Background(), g.push(rev))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	if !strings.Contains(out.String(), "Another deploy of 'app' is running") {
		t.Errorf("nobody waited:\n%s", out)
	}
	if rels, _ := Releases(root, "app"); len(rels) != 3 {
		t.Errorf("%d releases, want 3", len(rels))
	}
}

func TestHookDeploysBranchesOnly(t *testing.T) {
	root := newRoot(t)
	g := newGitRepo(t, root, "app")
	fd := &fakeDaemon{root: root}
	d, out := newDeployer(root, fd)
	rev := g.commit(map[string]string{"Procfile": "web: ./run\n"})
	env := func(k string) string { return map[string]string{"FINGERPRINT": "SHA256:k"}[k] }
	in := zero + " " + rev + " refs/tags/v1\n" + rev + " " + zero + " refs/heads/old\n"
	if err := d.Hook(context.Background(), "app", strings.NewReader(in), env); err != nil {
		t.Fatal(err)
	}
	if len(fd.calls) != 0 || !strings.Contains(out.String(), "Nothing to deploy") {
		t.Fatalf("deployed a tag or deletion:\n%s", out)
	}
	in = zero + " " + rev + " refs/heads/main\n"
	if err := d.Hook(context.Background(), "app", strings.NewReader(in), env); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rels, _ := Releases(root, "app")
	if len(rels) != 1 || rels[0].Fingerprint != "SHA256:k" || rels[0].Revision != rev {
		t.Errorf("releases = %+v", rels)
	}
	// The new repository's HEAD now names the deployed branch, so clones
	// check it out.
	if got := g.git(root.Repo("app"), "symbolic-ref", "HEAD"); got != "refs/heads/main" {
		t.Errorf("HEAD = %q", got)
	}
}

// TestAdoptedReleaseSortsFirst deploys over a Python piku checkout in the
// same second it is adopted: the adopted release must be the one before
// the new one, whichever of the two revisions has the greater hash.
func TestAdoptedReleaseSortsFirst(t *testing.T) {
	for _, tt := range []struct {
		name         string
		adoptedAfter bool // the adopted revision's short hash sorts after the new one's
	}{
		{"adopted hash sorts after", true},
		{"adopted hash sorts before", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := newRoot(t)
			g := newGitRepo(t, root, "app")
			old := g.commit(map[string]string{"Procfile": "web: ./old\n"})
			var rev string
			for {
				rev = g.commit(map[string]string{"Procfile": "web: ./new\n"})
				if (short(old) > short(rev)) == tt.adoptedAfter {
					break
				}
			}
			// Python piku's checkout: a clone of the repository at old.
			g.git(root.AppsDir(), "clone", "-q", root.Repo("app"), root.App("app"))
			g.git(root.App("app"), "checkout", "-q", old)
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			if err := os.Chtimes(root.App("app"), now, now); err != nil {
				t.Fatal(err)
			}
			d, out := newDeployer(root, &fakeDaemon{root: root})
			d.Now = func() time.Time { return now }
			if err := d.Deploy(context.Background(), g.push(rev)); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			rels, err := Releases(root, "app")
			if err != nil {
				t.Fatal(err)
			}
			if len(rels) != 2 || rels[0].Revision != rev || rels[1].Revision != old || rels[1].Runtime != "adopted" {
				t.Fatalf("releases, newest first: %+v", rels)
			}
			if err := d.Rollback(context.Background(), "app", ""); err != nil {
				t.Fatalf("rollback to the adopted release: %v\n%s", err, out)
			}
			if LiveID(root, "app") != rels[1].ID || readFile(t, root.AppProcfile("app")) != "web: ./old\n" {
				t.Errorf("after rollback: live %s, want the adopted %s", LiveID(root, "app"), rels[1].ID)
			}
		})
	}
}

// TestReleasesInOneSecondSortByTime: two pushes within one second make
// releases whose IDs share their time; the newer is listed first (and so
// is what a rollback leaves) whatever the order of their hashes.
func TestReleasesInOneSecondSortByTime(t *testing.T) {
	root := newRoot(t)
	g := newGitRepo(t, root, "app")
	first := g.commit(map[string]string{"Procfile": "web: ./one\n"})
	var second string
	for { // a second revision whose short hash sorts before the first's
		second = g.commit(map[string]string{"Procfile": "web: ./two\n"})
		if short(second) < short(first) {
			break
		}
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 100e6, time.UTC)
	d, out := newDeployer(root, &fakeDaemon{root: root})
	d.Now = func() time.Time { return now }
	if err := d.Deploy(context.Background(), g.push(first)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	now = now.Add(500 * time.Millisecond)
	if err := d.Deploy(context.Background(), g.push(second)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rels, err := Releases(root, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 2 || rels[0].Revision != second || !rels[0].Live || rels[1].Revision != first {
		t.Fatalf("releases, newest first: %+v", rels)
	}
}

// TestDeployReleaseHold: with PIKU_RELEASE_HOLD the daemon holds the app's
// requests from before the release command until the new release is live
// (or the deploy failed); without it, or with no release command, it does
// not; a value it does not know refuses the push before anything runs.
func TestDeployReleaseHold(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		want    []string
		wantErr string
	}{
		{"hold", map[string]string{"Procfile": "web: ./run\nrelease: echo migrating\n", "ENV": "PIKU_RELEASE_HOLD=1\n"},
			[]string{"pause", "deploy", "resume"}, ""},
		{"failing release", map[string]string{"Procfile": "web: ./run\nrelease: exit 3\n", "ENV": "PIKU_RELEASE_HOLD=yes\n"},
			[]string{"pause", "resume"}, "release failed"},
		{"off", map[string]string{"Procfile": "web: ./run\nrelease: echo migrating\n", "ENV": "PIKU_RELEASE_HOLD=0\n"},
			[]string{"deploy"}, ""},
		{"no release command", map[string]string{"Procfile": "web: ./run\n", "ENV": "PIKU_RELEASE_HOLD=1\n"},
			[]string{"deploy"}, ""},
		{"bad value", map[string]string{"Procfile": "web: ./run\nrelease: touch ran\n", "ENV": "PIKU_RELEASE_HOLD=maybe\n"},
			nil, `app "app": PIKU_RELEASE_HOLD="maybe": want 1 (hold the app's requests while release runs) or 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newRoot(t)
			g := newGitRepo(t, root, "app")
			fd := &fakeDaemon{root: root}
			d, out := newDeployer(root, fd)
			err := d.Deploy(context.Background(), g.push(g.commit(tc.files)))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err %v, want %q\n%s", err, tc.wantErr, out)
			}
			if !slices.Equal(fd.events, tc.want) {
				t.Errorf("daemon calls %q, want %q\n%s", fd.events, tc.want, out)
			}
		})
	}
}
