package bus

import (
	"context"
	"math/rand/v2"
	"time"
)

// The one retry policy of every reconnect and retry loop of the bus:
// capped exponential backoff with jitter. The first wait is about
// backoffMin, each failure doubles it up to backoffMax, and each wait is
// drawn from [d/2, d) so that instances that lost Redis together do not
// come back in lockstep.
const (
	backoffMin = 50 * time.Millisecond
	backoffMax = time.Second
)

// backoff is one loop's retry state; the zero value is ready. It is not
// safe for concurrent use: each loop has its own.
type backoff struct {
	next time.Duration
}

// Next returns the wait before the next attempt and lengthens the one
// after it.
func (b *backoff) Next() time.Duration {
	if b.next <= 0 {
		b.next = backoffMin
	}
	d := b.next
	b.next = min(2*b.next, backoffMax)
	half := d / 2
	return half + rand.N(d-half)
}

// Reset starts over after a success.
func (b *backoff) Reset() { b.next = 0 }

// Wait sleeps for Next() or until ctx ends; it reports whether ctx is
// still alive.
func (b *backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
