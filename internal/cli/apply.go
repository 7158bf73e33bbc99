package cli

import (
	"fmt"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/layout"
)

// apply asks the daemon to roll app out from its files and streams the
// rollout to stdout. The daemon's errors name the app already. what says what the files now hold, for the message
// shown when the daemon is not running: the files are right either way, and
// the daemon applies them when it starts.
func (c *cli) apply(root layout.Root, app string, req control.DeployRequest, what string) error {
	ctx, cancel := signalContext()
	defer cancel()
	err := c.client(root).Deploy(ctx, app, req, c.streamOut())
	if control.IsNotRunning(err) {
		return fmt.Errorf("%s, but %w; it will be applied when the daemon starts", what, err)
	}
	return err // the daemon names the app
}
