package supervisor

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestOutputLimitBucket: a burst of a few seconds' worth, then the rate,
// with chunks that do not fit refused whole and counted.
func TestOutputLimitBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	l := &outputLimit{now: func() time.Time { return now }}
	l.setRate(100 << 10) // burst 400K
	for _, step := range []struct {
		after time.Duration
		n     int
		ok    bool
	}{
		{0, 300 << 10, true},
		{0, 100 << 10, true},
		{0, 1, false},                   // the burst is used up
		{time.Second, 100 << 10, true},  // a second refills the rate
		{time.Second, 200 << 10, false}, // more than a second's worth
		{time.Hour, 400 << 10, true},    // never more than the burst
		{0, 1, false},
	} {
		now = now.Add(step.after)
		if got := l.take(step.n); got != step.ok {
			t.Errorf("at %s, take(%d) = %v, want %v", now.Sub(t0), step.n, got, step.ok)
		}
	}
	if l.dropped != 200<<10+2 {
		t.Errorf("dropped = %d, want %d", l.dropped, 200<<10+2)
	}
	// No limit: everything goes.
	l.setRate(0)
	if !l.take(1 << 30) {
		t.Error("refused without a limit")
	}
}

// TestOutputOverRateIsDropped: an app that writes 4 MiB at once with a
// rate of 64K/s (a burst of 256K) and a clock that does not move keeps
// at most the burst in its log; the rest is dropped, counted, and said in
// the log, and the counts add up to what it wrote.
func TestOutputOverRateIsDropped(t *testing.T) {
	ts := startSup(t, "")
	frozen := time.Unix(1000, 0)
	ts.outputs.Store("spam", &outputLimit{now: func() time.Time { return frozen }})
	const total = 4 << 20
	spec := ts.spec("spam", ProcessSpec{Kind: "worker", Count: 1, Env: []string{"PATH=/usr/bin:/bin"},
		Command: "head -c " + strconv.Itoa(total) + " /dev/zero | tr '\\0' x; exec sleep 1000"})
	spec.Logs.Rate = 64 << 10
	if err := ts.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	// Every byte is either in the log or counted as dropped.
	var st InstanceStatus
	kept := 0
	eventually(t, "every byte written to be kept or dropped", func() bool {
		st = ts.Status("spam")[0]
		kept = strings.Count(readLog(t, filepath.Join(ts.logs, "worker.1.log")), "x")
		return int64(kept)+st.LogRateDropped == total
	})
	if err := ts.Stop(context.Background(), "spam"); err != nil {
		t.Fatal(err)
	}
	if st.Restarts != 0 || st.LogDropped != 0 {
		t.Errorf("restarts %d, dropped for write errors %d: want none", st.Restarts, st.LogDropped)
	}
	if kept > 256<<10 || kept == 0 {
		t.Errorf("%d bytes kept, want 1 to 256K (the burst)", kept)
	}
	log := readLog(t, filepath.Join(ts.logs, "worker.1.log"))
	said := int64(0)
	for _, m := range regexp.MustCompile(`piku: dropped (\d+) bytes of output \(rate limit 64K/s\)\n`).FindAllStringSubmatch(log, -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		said += n
	}
	if said != st.LogRateDropped {
		t.Errorf("the log says %d bytes were dropped, the count is %d", said, st.LogRateDropped)
	}
	if got := ts.OutputDropped("spam"); got != st.LogRateDropped {
		t.Errorf("OutputDropped = %d, want %d", got, st.LogRateDropped)
	}
}
