package proxy

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// summaryHandler keeps the proxy's warnings about one failing backend
// from flooding the daemon's log: the first of a run of identical
// warnings (same level, message and attributes but "err", which names
// ephemeral ports and such; the summary carries the last one) is written at once; the
// ones that follow within the interval are counted, and one line with
// the count (`repeated=N over=10s`) is written when the interval ends,
// then again each interval while they go on. A warning not seen for a
// whole interval is written at once again. Records below Warn pass
// through untouched, as do new kinds of warning once maxKeys are being
// counted.
//
// Without it, 400,000 requests to a failing app (151 bytes of "backend
// failed" each) rotated the whole history of the daemon's log away.
type summaryHandler struct {
	next  slog.Handler
	state *summaryState
	id    string // tells apart handlers made by WithAttrs and WithGroup
}

// summaryState is shared by a handler and those derived from it.
type summaryState struct {
	interval time.Duration
	now      func() time.Time

	mu     sync.Mutex
	runs   map[string]*summaryRun
	nextID int
}

// summaryRun is one run of identical warnings.
type summaryRun struct {
	h     slog.Handler // writes its summary
	rec   slog.Record  // the first of the run
	since time.Time    // the interval's start
	count int          // repeats not written since then
	err   slog.Attr    // the last repeat's "err"
}

const (
	// logSummaryInterval is how often a summary of repeated warnings is
	// written.
	logSummaryInterval = 10 * time.Second
	// logSummaryKeys bounds the kinds of warning counted at once.
	logSummaryKeys = 1024
)

func newSummaryHandler(next slog.Handler, interval time.Duration, now func() time.Time) *summaryHandler {
	return &summaryHandler{next: next, state: &summaryState{interval: interval, now: now, runs: map[string]*summaryRun{}}}
}

// Enabled reports what the wrapped handler does.
func (h *summaryHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle writes r, or counts it when it repeats a warning written less
// than an interval ago.
func (h *summaryHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	key := summaryKey(h.id, r)
	st := h.state
	st.mu.Lock()
	if run, ok := st.runs[key]; ok {
		run.count++
		run.err = errAttr(r)
		st.mu.Unlock()
		return nil
	}
	if len(st.runs) < logSummaryKeys {
		st.runs[key] = &summaryRun{h: h.next, rec: r.Clone(), since: st.now()}
	}
	st.mu.Unlock()
	return h.next.Handle(ctx, r)
}

// errAttr is r's "err" attribute, if any.
func errAttr(r slog.Record) (err slog.Attr) {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			err = a
			return false
		}
		return true
	})
	return err
}

// summaryKey is what makes two records identical: level, message and
// attributes but "err" (their time aside).
func summaryKey(id string, r slog.Record) string {
	var b strings.Builder
	b.WriteString(id)
	b.WriteByte(0)
	b.WriteString(r.Level.String())
	b.WriteByte(0)
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "err" {
			b.WriteByte(0)
			b.WriteString(a.String())
		}
		return true
	})
	return b.String()
}

// WithAttrs derives a handler whose records are counted apart.
func (h *summaryHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &summaryHandler{next: h.next.WithAttrs(as), state: h.state, id: h.state.newID()}
}

// WithGroup derives a handler whose records are counted apart.
func (h *summaryHandler) WithGroup(name string) slog.Handler {
	return &summaryHandler{next: h.next.WithGroup(name), state: h.state, id: h.state.newID()}
}

func (st *summaryState) newID() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.nextID++
	return strconv.Itoa(st.nextID)
}

// sweep ends the intervals that are over: a run with repeats gets its
// summary line and a new interval; a run without is forgotten, so its
// next warning is written at once. With all, every run with repeats gets
// its summary now (the proxy stopping).
func (h *summaryHandler) sweep(all bool) {
	st := h.state
	now := st.now()
	type summary struct {
		h   slog.Handler
		rec slog.Record
	}
	var out []summary
	st.mu.Lock()
	for key, run := range st.runs {
		over := now.Sub(run.since)
		if !all && over < st.interval {
			continue
		}
		if run.count == 0 {
			delete(st.runs, key)
			continue
		}
		rec := slog.NewRecord(now, run.rec.Level, run.rec.Message, 0)
		run.rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" && run.err.Key != "" {
				a = run.err
			}
			rec.AddAttrs(a)
			return true
		})
		rec.AddAttrs(slog.Int("repeated", run.count), slog.Duration("over", over.Round(time.Millisecond)))
		out = append(out, summary{run.h, rec})
		run.count, run.since = 0, now
	}
	st.mu.Unlock()
	for _, s := range out {
		s.h.Handle(context.Background(), s.rec)
	}
}

// run sweeps every half interval until ctx ends, then writes what is
// left.
func (h *summaryHandler) run(ctx context.Context) {
	t := time.NewTicker(h.state.interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.sweep(true)
			return
		case <-t.C:
			h.sweep(false)
		}
	}
}

var _ slog.Handler = (*summaryHandler)(nil)
