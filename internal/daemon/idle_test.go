package daemon

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/supervisor"
)

// fakeActivity is the proxy's record of an app's last request.
type fakeActivity struct {
	mu   sync.Mutex
	last time.Time
}

func (f *fakeActivity) LastRequest(string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last, true
}

func (f *fakeActivity) set(t time.Time) { f.mu.Lock(); f.last = t; f.mu.Unlock() }

// countProcs notes the count of every kind applied.
type countProcs struct {
	fakeProcs
	mu     *sync.Mutex
	counts *[]string
}

func (p countProcs) Apply(ctx context.Context, spec supervisor.AppSpec) error {
	var parts []string
	for _, ps := range spec.Processes {
		parts = append(parts, ps.Kind+"="+string(rune('0'+ps.Count)))
	}
	p.mu.Lock()
	*p.counts = append(*p.counts, strings.Join(parts, " "))
	p.mu.Unlock()
	return p.fakeProcs.Apply(ctx, spec)
}

// TestSleepAndWake: an app idle for its PIKU_IDLE_TIMEOUT is held in the
// proxy and its web kind scaled to 0, the worker left as it runs; a wake
// rolls it out again and ends the hold.
func TestSleepAndWake(t *testing.T) {
	w := newWorld(t, map[string]string{
		"Procfile": "web: serve\nworker: work\n",
		"ENV":      "NGINX_SERVER_NAME=app.test\nPIKU_IDLE_TIMEOUT=1h\n",
	})
	var mu sync.Mutex
	var counts []string
	w.d.procs = countProcs{fakeProcs{w}, &mu, &counts}
	act := &fakeActivity{last: time.Now()}
	w.d.activity = act
	if _, err := w.deploy(control.DeployRequest{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.d.sleeper.Run(ctx, act) }()
	// Not idle yet: nothing sleeps. Then the last request is an hour ago.
	act.set(time.Now().Add(-2 * time.Hour))
	w.d.sleeper.poke()
	for w.d.sleeper.sleeping("app") == nil {
		time.Sleep(time.Millisecond) // the sleeper reports no event; the test's timeout bounds this
	}
	if got := w.d.sleeper.sleeping("app"); got["web"] != 1 || len(got) != 1 {
		t.Fatalf("asleep kinds %v, want web=1", got)
	}
	act.set(time.Now().Add(time.Hour))
	w.d.sleeper.wake("app")
	for w.d.sleeper.sleeping("app") != nil {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"web=1 worker=1", "web=0 worker=1", "web=1 worker=1"}
	if !slices.Equal(counts, want) {
		t.Errorf("applied %q, want %q", counts, want)
	}
	var calls []string
	for _, c := range w.calls {
		c, _, _ = strings.Cut(c, " ")
		if c == "hold" || c == "apply" || c == "release" {
			calls = append(calls, c)
		}
	}
	// deploy, sleep (hold, apply), wake (apply, release by the idle
	// publisher and after the wake).
	if wantCalls := []string{"apply", "hold", "apply", "apply", "release", "release"}; !slices.Equal(calls, wantCalls) {
		t.Errorf("calls %q, want %q", calls, wantCalls)
	}
}

// TestIdleCountsFromStart: a rollout of an app with PIKU_IDLE_TIMEOUT
// makes its idle time count from now, once its route is published: a
// route made before the app booted (a daemon that starts holds its known
// apps' routes) must not put it to sleep the moment it is ready.
func TestIdleCountsFromStart(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want []string
	}{
		{"NGINX_SERVER_NAME=app.test\nPIKU_IDLE_TIMEOUT=1\n", []string{"apply", "route app.test", "certificates app.test", "cron (LIVE_ENV written)", "active (LIVE_ENV written)"}},
		{"NGINX_SERVER_NAME=app.test\n", []string{"apply", "route app.test", "certificates app.test", "cron (LIVE_ENV written)"}},
	} {
		w := newWorld(t, map[string]string{"Procfile": "web: serve\n", "ENV": tc.env})
		if _, err := w.deploy(control.DeployRequest{}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(w.calls, tc.want) {
			t.Errorf("%q: calls\n%q\nwant\n%q", tc.env, w.calls, tc.want)
		}
	}
}
