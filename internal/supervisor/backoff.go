package supervisor

import (
	"math/rand/v2"
	"time"
)

// Restart pacing. An instance that stayed up for healthyRun is healthy: its
// backoff starts over. crashLoopExits short runs in a row make a crash loop.
const (
	healthyRun     = 10 * time.Second
	crashLoopExits = 5
)

// backoff paces the restarts of one instance: the first delay is initial,
// each short run doubles it up to max, with ±20% jitter so that instances
// that crash together do not restart in lockstep. After crashLoopExits
// short runs in a row it reports a crash loop and the delay is max.
type backoff struct {
	initial, max time.Duration
	healthy      time.Duration // a run at least this long resets the backoff
	next         time.Duration
	short        int // short runs in a row
	jitter       func(time.Duration) time.Duration
}

func newBackoff(initial, max, healthy time.Duration) *backoff {
	return &backoff{initial: initial, max: max, healthy: healthy, next: initial, jitter: jitter}
}

// exited records a run of length ran and returns the delay before the
// next start and whether the instance is crash-looping.
func (b *backoff) exited(ran time.Duration) (time.Duration, bool) {
	if ran >= b.healthy {
		b.next, b.short = b.initial, 0
	}
	b.short++
	if b.short >= crashLoopExits {
		return b.jitter(b.max), true
	}
	d := b.next
	b.next = min(b.next*2, b.max)
	return b.jitter(d), false
}

// jitter spreads d over [0.8d, 1.2d).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	spread := int64(d) * 2 / 5
	if spread <= 0 {
		return d
	}
	return time.Duration(int64(d) - spread/2 + rand.Int64N(spread))
}
