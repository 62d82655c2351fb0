package bus

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// pubReq is one PUBLISH waiting for the publisher.
type pubReq struct {
	channel string
	payload []byte
	start   time.Time
	err     error      // set by send
	done    chan error // nil for asynchronous publishes
}

// publisher batches publishes: whatever is waiting when Redis is free goes
// out in one pipeline, so concurrent senders share round trips. One
// goroutine (run) sends; send does the Redis I/O of one batch and sets
// each request's err.
type publisher struct {
	limit   int
	async   bool
	timeout time.Duration
	send    func(ctx context.Context, reqs []*pubReq)
	report  func(PublishResult)

	mu      sync.Mutex
	queue   []*pubReq
	spare   []*pubReq
	stopped bool
	wake    chan struct{}
}

func newPublisher(o Options, send func(context.Context, []*pubReq)) *publisher {
	report := o.Events.Published
	if report == nil {
		report = func(PublishResult) {}
	}
	return &publisher{limit: o.PublishQueue, async: o.AsyncPublish, timeout: o.PublishTimeout,
		send: send, report: report, wake: make(chan struct{}, 1)}
}

// publish queues payload for channel when live, and waits for Redis'
// answer unless the publisher is asynchronous.
func (p *publisher) publish(ctx context.Context, live bool, channel string, payload []byte) error {
	if !live {
		// Redis is down (the outage was logged once): fail at once rather
		// than queue behind go-redis' dial retries.
		return p.refuse(channel, ErrNotLive)
	}
	r := &pubReq{channel: channel, payload: payload, start: time.Now()}
	if !p.async {
		r.done = make(chan error, 1)
	}
	p.mu.Lock()
	switch {
	case p.stopped:
		p.mu.Unlock()
		return p.refuse(channel, ErrClosed)
	case len(p.queue) >= p.limit:
		p.mu.Unlock()
		return p.refuse(channel, ErrQueueFull)
	}
	p.queue = append(p.queue, r)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	if r.done == nil {
		return nil
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		// The publish is queued and may still go out.
		return fmt.Errorf("%w: %w", ErrUnconfirmed, ctx.Err())
	}
}

func (p *publisher) refuse(channel string, err error) error {
	p.report(PublishResult{Channel: channel, Err: err})
	return err
}

// run is the only goroutine that publishes. When ctx ends it fails what is
// still queued.
func (p *publisher) run(ctx context.Context) {
	for {
		select {
		case <-p.wake:
		case <-ctx.Done():
			p.stop()
			return
		}
		for {
			p.mu.Lock()
			batch := p.queue
			p.queue = p.spare[:0]
			p.spare = nil
			p.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for rest := batch; len(rest) > 0; {
				n := min(len(rest), publishBatch)
				p.sendNow(ctx, rest[:n])
				rest = rest[n:]
			}
			clear(batch)
			p.mu.Lock()
			if cap(batch) <= 4*publishBatch {
				p.spare = batch[:0]
			}
			p.mu.Unlock()
		}
	}
}

// stop refuses new publishes and fails the queued ones. Idempotent.
func (p *publisher) stop() {
	p.mu.Lock()
	p.stopped = true
	left := p.queue
	p.queue = nil
	p.mu.Unlock()
	for _, r := range left {
		r.err = ErrClosed
		p.finish(r)
	}
}

func (p *publisher) sendNow(ctx context.Context, reqs []*pubReq) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	p.send(ctx, reqs)
	for _, r := range reqs {
		p.finish(r)
	}
}

func (p *publisher) finish(r *pubReq) {
	p.report(PublishResult{Channel: r.channel, Queued: true, Took: time.Since(r.start), Err: r.err})
	if r.done != nil {
		r.done <- r.err
	}
}
