package daemon

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/supervisor"
)

// TestDeployFirstReleaseFailing: a first release whose processes did not
// come up is reported as kept (control.ErrKept), with the supervisor's
// reason and without the promise of retries, and the daemon does not
// forget the app itself: the deploy, which removes the app's files, owns
// that policy and forgets it once. A later release's failure says the
// processes are retried.
func TestDeployFirstReleaseFailing(t *testing.T) {
	reason := errors.New(`rolling out app: web: never became ready`)
	for _, tc := range []struct {
		first   bool
		wantErr string
	}{
		{true, reason.Error()},
		{false, (&supervisor.KeptError{Err: reason}).Error()},
	} {
		w := newWorld(t, appFiles)
		w.outcomes = []supervisor.Outcome{{Kind: "web", Result: supervisor.ResultFirstFailing, Err: reason}}
		w.applyErr = &supervisor.KeptError{Err: reason}
		var out bytes.Buffer
		err := w.d.Deploy(context.Background(), "app", control.DeployRequest{First: tc.first}, &out)
		if !errors.Is(err, control.ErrKept) || err.Error() != tc.wantErr {
			t.Errorf("first=%v: err = %v, want %q matching control.ErrKept", tc.first, err, tc.wantErr)
		}
		for _, c := range w.calls {
			if strings.HasPrefix(c, "stop") || strings.HasPrefix(c, "route forgotten") || strings.HasPrefix(c, "cron removed") {
				t.Errorf("first=%v: the daemon forgot the app itself (%q); the deploy does: calls %q", tc.first, c, w.calls)
			}
		}
		// Committed: the failing processes are supervised, and published.
		if want := []string{"apply", "route app.test", "certificates app.test", "cron (LIVE_ENV written)"}; !slices.Equal(w.calls, want) {
			t.Errorf("first=%v: calls %q, want %q", tc.first, w.calls, want)
		}
	}
}
