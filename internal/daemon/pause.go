package daemon

import (
	"context"
	"fmt"
	"sync"

	"github.com/piku/piku/internal/control"
)

// Pause implements control.Backend: the proxy holds app's requests until
// resume, as kamal-proxy's pause does. A deploy asks for it around the
// app's release command and rollout when the app sets PIKU_RELEASE_HOLD
// (a database migration the running version must not see half done).
// Apps cannot call it themselves: the control socket refuses their
// processes.
func (d *Daemon) Pause(ctx context.Context, app string) (resume func(), err error) {
	if !d.root.Exists(app) {
		return nil, fmt.Errorf("app %q: %w", app, control.ErrUnknownApp)
	}
	d.table.Pause(app)
	d.log.Info("holding the app's requests while its release runs (PIKU_RELEASE_HOLD)", "app", app)
	var once sync.Once
	return func() {
		once.Do(func() {
			d.table.Resume(app)
			d.log.Info("serving the app's requests again after its release", "app", app)
		})
	}, nil
}
