package daemon

import (
	"slices"
	"testing"

	"github.com/piku/piku/internal/metrics"
	"github.com/piku/piku/internal/supervisor"
)

// TestEveryStateHasAMetric: the state metric has one series per state, so
// a state the supervisor can report and the metrics do not list would show
// a process in no state at all.
func TestEveryStateHasAMetric(t *testing.T) {
	for _, s := range supervisor.States {
		if !slices.Contains(metrics.States, string(s)) {
			t.Errorf("supervisor state %q is not in metrics.States", s)
		}
	}
	if len(metrics.States) != len(supervisor.States) {
		t.Errorf("metrics.States %q and supervisor.States %q differ", metrics.States, supervisor.States)
	}
}

func TestOutcomeLabels(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range []supervisor.Result{supervisor.ResultReady, supervisor.ResultKept,
		supervisor.ResultReplacedFailing, supervisor.ResultFirstFailing} {
		l := outcomeLabel(r)
		if l == "other" || seen[l] {
			t.Errorf("outcome %q has the label %q, which is not its own", r, l)
		}
		seen[l] = true
	}
}
