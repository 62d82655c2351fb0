package bus

import (
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// health is a Redis bus' live/down state and the outage bookkeeping: each
// outage is reported once (Events.Outage) and its end with its length
// (Events.Restored).
type health struct {
	log       *zap.Logger
	events    Events
	live      atomic.Bool
	downSince atomic.Int64  // unix nanoseconds; 0 while live
	outages   atomic.Uint64 // bumped by every outage, so a late up can tell
}

func (h *health) get() Health {
	if h.live.Load() {
		return Health{Live: true}
	}
	var hs Health
	if ns := h.downSince.Load(); ns != 0 {
		hs.DownSince = time.Unix(0, ns)
	}
	return hs
}

// started marks the first confirmation (not an outage's end).
func (h *health) started() { h.live.Store(true) }

// stopped marks the bus closed: not live, no outage.
func (h *health) stopped() {
	h.live.Store(false)
	h.downSince.Store(0)
}

// down records an outage once; it reports whether the bus was live until
// now.
func (h *health) down(err error) bool {
	if !h.live.CompareAndSwap(true, false) {
		return false
	}
	h.downSince.Store(time.Now().UnixNano())
	h.outages.Add(1)
	if h.events.Outage != nil {
		h.events.Outage(err)
	}
	h.log.Warn("redis subscription lost; retrying", zap.Error(err))
	return true
}

// generation identifies the current outage (see upIf).
func (h *health) generation() uint64 { return h.outages.Load() }

// upIf ends the outage of generation gen, unless another one began since.
func (h *health) upIf(gen uint64) {
	if h.outages.Load() == gen {
		h.up()
	}
}

// up records the end of an outage.
func (h *health) up() {
	if h.live.Load() {
		return
	}
	since := h.downSince.Swap(0)
	if since == 0 {
		// Not started, or closed: no outage to end.
		return
	}
	gap := time.Duration(time.Now().UnixNano() - since)
	h.live.Store(true)
	if h.events.Restored != nil {
		h.events.Restored(gap)
	}
	h.log.Info("redis subscriptions restored", zap.Duration("gap", gap))
}
