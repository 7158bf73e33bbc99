package daemon

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/supervisor"
)

// reporter writes what a rollout tells its client, in the `----->` style
// of git push output: a step starts a line with "-----> ", a detail is
// indented under it.
type reporter struct {
	w   io.Writer
	log *slog.Logger
	app string
}

// step writes a line of its own.
func (r reporter) step(format string, args ...any) {
	fmt.Fprintf(r.w, "-----> "+format+"\n", args...)
}

// detail writes a line under the last step.
func (r reporter) detail(format string, args ...any) {
	fmt.Fprintf(r.w, "       "+format+"\n", args...)
}

// progress is the supervisor's progress while it starts instances; a
// transient line is replaced by the next one.
func (r reporter) progress(msg string, transient bool) {
	if transient {
		r.log.Debug(msg, "app", r.app)
		control.WriteProgress(r.w, "       "+msg)
		return
	}
	r.detail("%s", msg)
}

// outcome reports what the supervisor did with one kind. first is a
// deploy's first release, which is dropped when it does not come up.
func (r reporter) outcome(o supervisor.Outcome, first bool) {
	switch {
	case o.Result == supervisor.ResultReplacedFailing:
		// Not an error of the rollout: say why here.
		r.detail("%s: %s: %v", o.Kind, o.Result, o.Err)
	case o.Result == supervisor.ResultFirstFailing && first:
		r.detail("%s: failing", o.Kind)
	default:
		r.detail("%s: %s", o.Kind, o.Result)
	}
	if o.Strategy == supervisor.StrategyRecreate {
		r.detail("%s: replaced stop-then-start (recreate): the old instances were stopped before the new ones started", o.Kind)
	}
}
