package supervisor

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// A kind that holds a lock cannot run two generations at once: the
// rolling replacement fails on the lock and keeps the old one; Recreate
// stops the old instances (routed away and drained first) and then starts
// the new ones.
func TestRecreateStopsOldFirst(t *testing.T) {
	ts := startSup(t, "")
	ctx := context.Background()
	lock := filepath.Join(ts.dir, "lock")
	worker := ProcessSpec{Kind: "worker", Count: 1, Command: "exec flock -n '" + lock + "' sleep 1000"}
	web := webSpec(2, "1")
	spec := ts.spec("lockapp", web, worker)
	if err := ts.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	old := ts.Status("lockapp")

	var mu sync.Mutex
	var outcomes []Outcome
	spec.Report = func(o Outcome) { mu.Lock(); outcomes = append(outcomes, o); mu.Unlock() }
	spec.Restart = []string{"*"}
	if err := ts.Apply(ctx, spec); err == nil {
		t.Fatal("the rolling replacement of a kind that holds a lock came up")
	}
	byKind := func() map[string]Outcome {
		mu.Lock()
		defer mu.Unlock()
		m := map[string]Outcome{}
		for _, o := range outcomes {
			m[o.Kind] = o
		}
		outcomes = nil
		return m
	}
	if o := byKind()["worker"]; o.Result != ResultKept || o.Strategy != StrategyRolling {
		t.Fatalf("rolling: worker outcome %+v, want kept, rolling", o)
	}

	ts.router.mu.Lock()
	routesBefore := len(ts.router.routes)
	ts.router.mu.Unlock()
	for i := range spec.Processes {
		spec.Processes[i].Recreate = true
	}
	spec.Processes[0].Env = helperEnvFor("2")
	if err := ts.Apply(ctx, spec); err != nil {
		t.Fatalf("recreate: %v", err)
	}
	for kind, o := range byKind() {
		if o.Result != ResultReady || o.Strategy != StrategyRecreate {
			t.Errorf("recreate: %s outcome %+v, want ready, recreate", kind, o)
		}
	}
	now := ts.Status("lockapp")
	for i, in := range now {
		if in.PID == old[i].PID || in.State != StateRunning {
			t.Errorf("%s.%d: pid %d (was %d), state %s", in.Kind, in.N, in.PID, old[i].PID, in.State)
		}
	}
	// The web kind was routed away (no backend: a proxy holds its
	// requests) before its new instances were routed.
	ts.router.mu.Lock()
	routes := slices.Clone(ts.router.routes[routesBefore:])
	ts.router.mu.Unlock()
	empty := slices.IndexFunc(routes, func(r []string) bool { return len(r) == 0 })
	if empty < 0 || empty == len(routes)-1 || len(routes[len(routes)-1]) != 2 {
		t.Errorf("routes during the recreate = %v, want the old ones routed away, then two new ones", routes)
	}
	if body, err := ts.router.do("/"); err != nil || body != "gen=2" {
		t.Errorf("after the recreate: %q %v", body, err)
	}
}
