package supervisor

import (
	"sync"
	"time"
)

// DefaultLogRate is the output of one app's processes the daemon copies to
// its logs per second, unless the app's LogPolicy says otherwise: far more
// than an app logs when it is well, far less than one writing as fast as
// it can, whose copying would take the CPU the proxy needs for every app.
const DefaultLogRate = 1 << 20

// logBurstSeconds is how many seconds of the rate an app may write at
// once, after it was quiet (a stack trace, a start-up banner).
const logBurstSeconds = 4

// minLogBurst is the smallest burst, so that one read of the output
// (32K) always fits.
const minLogBurst = 64 << 10

// dropPause is how long the copier waits before it reads again after a
// chunk it dropped: the pipe fills meanwhile and the app's writes wait,
// so that one app writing as fast as it can costs the daemon at most one
// read of a chunk per pause (a few MB/s), not a copy of everything it
// writes (GB/s). Its output is still read, dropped and counted.
const dropPause = 10 * time.Millisecond

// noticeEvery is how often, at most, a line saying what was dropped goes
// into the app's log while its output is over the rate.
const noticeEvery = 10 * time.Second

// outputLimit is the token bucket of one app's output, shared by all its
// instances: Rate bytes per second, a burst of logBurstSeconds of it. It
// also counts what it refused for the app's metrics.
type outputLimit struct {
	now func() time.Time

	mu      sync.Mutex
	rate    float64 // bytes per second; 0 for no limit
	burst   float64
	tokens  float64
	last    time.Time
	dropped int64 // bytes refused since the supervisor started
}

// outputLimit returns app's output limit, set to rate bytes per second
// (<= 0: no limit).
func (s *Supervisor) outputLimit(app string, rate int64) *outputLimit {
	v, _ := s.outputs.LoadOrStore(app, &outputLimit{now: time.Now})
	l := v.(*outputLimit)
	l.setRate(rate)
	return l
}

// OutputDropped returns the bytes of app's output dropped because it was
// over its rate (LogPolicy.Rate) since the supervisor started.
func (s *Supervisor) OutputDropped(app string) int64 {
	v, ok := s.outputs.Load(app)
	if !ok {
		return 0
	}
	l := v.(*outputLimit)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}

func (l *outputLimit) setRate(rate int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := max(float64(rate), 0)
	if r == l.rate {
		return
	}
	l.rate, l.burst = r, max(r*logBurstSeconds, minLogBurst)
	l.tokens, l.last = l.burst, l.now()
}

// take reports whether n bytes of output may be written now, and takes
// them from the bucket if so; a chunk that does not fit whole is refused
// whole, and counted.
func (l *outputLimit) take(n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate == 0 {
		return true
	}
	now := l.now()
	if d := now.Sub(l.last).Seconds(); d > 0 {
		l.tokens = min(l.burst, l.tokens+d*l.rate)
	}
	l.last = now
	if float64(n) <= l.tokens {
		l.tokens -= float64(n)
		return true
	}
	l.dropped += int64(n)
	return false
}

// limitText is the rate as the notice in the log says it: "1M/s".
func (l *outputLimit) limitText() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return formatRate(int64(l.rate))
}
