package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// logRecorder is a slog.Handler that keeps each record as "LEVEL msg k=v...".
type logRecorder struct {
	mu    sync.Mutex
	lines *[]string
	attrs []slog.Attr
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	parts := []string{rec.Level.String(), rec.Message}
	for _, a := range r.attrs {
		parts = append(parts, a.String())
	}
	rec.Attrs(func(a slog.Attr) bool { parts = append(parts, a.String()); return true })
	r.mu.Lock()
	*r.lines = append(*r.lines, strings.Join(parts, " "))
	r.mu.Unlock()
	return nil
}
func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{lines: r.lines, attrs: append(slices.Clone(r.attrs), as...)}
}
func (r *logRecorder) WithGroup(string) slog.Handler { return r }

func TestSummaryHandler(t *testing.T) {
	var lines []string
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	h := newSummaryHandler(&logRecorder{lines: &lines}, 10*time.Second, func() time.Time { return now })
	log := slog.New(h)
	at := func(d time.Duration) { now = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC).Add(d) }
	failed := func(n int, app string) {
		for i := range n {
			err := "connection refused"
			if i > 0 && i == n-1 {
				err = "connection reset" // another error: the same warning, and the summary's
			}
			log.Warn("backend failed", "app", app, "err", err)
		}
	}
	steps := []struct {
		at   time.Duration
		do   func()
		want []string // the lines written by this step
	}{
		{0, func() { failed(1000, "a") }, []string{"WARN backend failed app=a err=connection refused"}},
		{time.Second, func() { failed(3, "b") }, []string{"WARN backend failed app=b err=connection refused"}},
		{2 * time.Second, func() {
			for range 3 {
				log.Info("listening")
			}
		}, []string{"INFO listening", "INFO listening", "INFO listening"}},
		{2 * time.Second, func() { log.With("part", "x").Warn("backend failed", "app", "a", "err", "connection refused") },
			[]string{"WARN backend failed part=x app=a err=connection refused"}}, // another logger: counted apart
		{9 * time.Second, func() { h.sweep(false) }, nil}, // a's interval is not over
		{10 * time.Second, func() { h.sweep(false) }, []string{"WARN backend failed app=a err=connection reset repeated=999 over=10s"}},
		{11 * time.Second, func() { h.sweep(false) }, []string{"WARN backend failed app=b err=connection reset repeated=2 over=10s"}},
		{12 * time.Second, func() { failed(5, "a") }, nil}, // a's second interval
		{20 * time.Second, func() { h.sweep(false) }, []string{"WARN backend failed app=a err=connection reset repeated=5 over=10s"}},
		{21 * time.Second, func() { h.sweep(false) }, nil}, // b quiet for an interval: forgotten
		{22 * time.Second, func() { failed(1, "b") }, []string{"WARN backend failed app=b err=connection refused"}},
		{30 * time.Second, func() { h.sweep(false) }, nil}, // a quiet for an interval: forgotten
		{31 * time.Second, func() { failed(2, "a") }, []string{"WARN backend failed app=a err=connection refused"}},
		{33 * time.Second, func() { h.sweep(true) }, []string{"WARN backend failed app=a err=connection reset repeated=1 over=2s"}},
	}
	for i, st := range steps {
		at(st.at)
		before := len(lines)
		st.do()
		got := lines[before:]
		slices.Sort(got)
		if !slices.Equal(got, st.want) {
			t.Fatalf("step %d at %v: wrote\n%q\nwant\n%q", i, st.at, got, st.want)
		}
	}
}

// TestSummaryHandlerBound checks that no more than logSummaryKeys kinds
// of warning are held; others are written as they come.
func TestSummaryHandlerBound(t *testing.T) {
	var lines []string
	h := newSummaryHandler(&logRecorder{lines: &lines}, time.Minute, time.Now)
	log := slog.New(h)
	for i := range logSummaryKeys + 10 {
		log.Warn(fmt.Sprint("warning ", i))
		log.Warn(fmt.Sprint("warning ", i))
	}
	if want := logSummaryKeys + 2*10; len(lines) != want {
		t.Errorf("%d lines, want %d", len(lines), want)
	}
	if n := len(h.state.runs); n != logSummaryKeys {
		t.Errorf("%d runs held", n)
	}
}
