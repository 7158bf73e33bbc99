package deploy

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/procfile"
)

// warningDaemon reports the Procfile's warnings in its rollout, as the
// daemon does for every rollout (push, restart, config:set).
type warningDaemon struct{ fakeDaemon }

func (f *warningDaemon) Deploy(ctx context.Context, app string, req control.DeployRequest, out io.Writer) error {
	b, err := os.ReadFile(f.root.App(app) + "/Procfile")
	if err != nil {
		return err
	}
	pf, err := procfile.Parse(strings.NewReader(string(b)), "Procfile")
	if err != nil {
		return err
	}
	for _, w := range pf.Warnings {
		fmt.Fprintf(out, "-----> Warning: %s\n", w)
	}
	return f.fakeDaemon.Deploy(ctx, app, req, out)
}

// TestProcfileWarningsOnce: a push shows each Procfile warning once: the
// daemon's rollout reports them, the deploy does not repeat them.
func TestProcfileWarningsOnce(t *testing.T) {
	root := newRoot(t)
	g := newGitRepo(t, root, "app")
	fd := &warningDaemon{fakeDaemon{root: root}}
	d, out := newDeployer(root, nil)
	d.Daemon = fd
	rev := g.commit(map[string]string{"Procfile": "web: ./run\nweb: ./run2\n"})
	if err := d.Deploy(context.Background(), g.push(rev)); err != nil {
		t.Fatal(err)
	}
	warning := `Procfile line 2: "web" repeats line 1; the last one wins`
	if n := strings.Count(out.String(), warning); n != 1 {
		t.Errorf("the warning is shown %d times, want once:\n%s", n, out)
	}
}
