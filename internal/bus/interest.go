package bus

import (
	"context"
	"sync"
)

// interest is the set of channels the interest and sharded modes want
// subscribed. Want and Unwant record what is needed (cheap map work, so the
// server may call them under its index lock); the subscriber goroutine
// turns the changes into commands, away from every caller.
type interest struct {
	mu      sync.Mutex
	desired map[string]bool
	dirty   map[string]struct{}
	wake    chan struct{}
	// confirmed holds the channels Redis has confirmed on the current
	// connection; waiters are woken when theirs is confirmed.
	confirmed map[string]bool
	waiters   map[string][]chan struct{}
}

func newInterest() *interest {
	return &interest{
		desired:   map[string]bool{},
		dirty:     map[string]struct{}{},
		wake:      make(chan struct{}, 1),
		confirmed: map[string]bool{},
		waiters:   map[string][]chan struct{}{},
	}
}

// desiredList returns the channels wanted right now.
func (in *interest) desiredList() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]string, 0, len(in.desired))
	for ch := range in.desired {
		out = append(out, ch)
	}
	return out
}

// set marks channel as needed (on) or no longer needed (off).
func (in *interest) set(channel string, on bool) {
	in.mu.Lock()
	if on {
		in.desired[channel] = true
	} else {
		delete(in.desired, channel)
	}
	in.dirty[channel] = struct{}{}
	in.mu.Unlock()
	in.poke()
}

func (in *interest) poke() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// confirm records Redis' confirmation of a channel and wakes its waiters.
func (in *interest) confirm(channel string) {
	in.mu.Lock()
	in.confirmed[channel] = true
	ws := in.waiters[channel]
	delete(in.waiters, channel)
	if len(in.waiters) == 0 && len(ws) > 0 {
		// A map keeps its peak size; start afresh once nobody waits.
		in.waiters = map[string][]chan struct{}{}
	}
	in.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

// unconfirm forgets every confirmation: the connection was lost, and go-redis
// will subscribe again (and Redis confirm again) on the next one.
func (in *interest) unconfirm() {
	in.mu.Lock()
	clear(in.confirmed)
	in.mu.Unlock()
}

// await waits until Redis has confirmed every wanted channel in channels,
// or ctx ends.
func (in *interest) await(ctx context.Context, channels []string) {
	var wait []chan struct{}
	in.mu.Lock()
	for _, ch := range channels {
		if !in.confirmed[ch] && in.desired[ch] {
			w := make(chan struct{})
			in.waiters[ch] = append(in.waiters[ch], w)
			wait = append(wait, w)
		}
	}
	in.mu.Unlock()
	for _, w := range wait {
		select {
		case <-w:
		case <-ctx.Done():
			return
		}
	}
}
