package bus

import (
	"context"
	"sync/atomic"
)

// local is the bus of a single instance without Redis: there is nobody to
// hear a publish, so Publish succeeds at once and reaches no one (the
// caller has already delivered to its local clients), Want and Unwant have
// nothing to subscribe, and every channel is live at once.
type local struct {
	state atomic.Int32 // 0 new, 1 started, 2 closed
}

// NewLocal returns the local bus. It starts no goroutine and needs no
// Redis.
func NewLocal() Bus { return &local{} }

func (l *local) Start(context.Context, Handler) error {
	if !l.state.CompareAndSwap(0, 1) && l.state.Load() == 2 {
		return ErrClosed
	}
	return nil
}

func (l *local) Want(string)                     {}
func (l *local) Unwant(string)                   {}
func (l *local) Await(context.Context, []string) {}
func (l *local) Health() Health                  { return Health{Live: l.state.Load() == 1} }
func (l *local) Close()                          { l.state.Store(2) }

func (l *local) Publish(_ context.Context, _ string, _ []byte) error {
	switch l.state.Load() {
	case 0:
		return ErrNotLive
	case 2:
		return ErrClosed
	}
	return nil
}
