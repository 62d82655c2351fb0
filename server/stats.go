package server

import (
	"sync/atomic"
	"time"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

type counters struct {
	accepted, closed, authenticated               atomic.Uint64
	authFailures, authTimeouts, handshakeFailures atomic.Uint64
	heartbeatTimeouts                             atomic.Uint64
	in, out, dropped, backpressureEvents          atomic.Uint64
	published, publishErrors                      atomic.Uint64
	redisReceived, redisMalformed                 atomic.Uint64
	redisOutages, redisResubscribes               atomic.Uint64
	callbackErrors, callbackPanics                atomic.Uint64
	rateLimited, refusedPending                   atomic.Uint64
	redisDowntime, redisLastGap                   atomic.Int64
}

// Stats is a snapshot of the Helper's state and counters. Counters count
// since New.
type Stats struct {
	// Connections by state right now.
	Connections    int
	Unauthorized   int
	Authenticating int
	Handshaking    int
	Authenticated  int
	Encrypted      int
	Backpressured  int
	// Users and Rooms with at least one local client right now.
	Users int
	Rooms int

	Accepted          uint64 // connections upgraded
	Closed            uint64 // connections ended
	AuthSuccesses     uint64
	AuthFailures      uint64 // rejected or failed authenticate calls
	AuthTimeouts      uint64 // 4001 closes after authenticate was sent
	HandshakeFailures uint64
	HeartbeatTimeouts uint64

	MessagesIn         uint64 // frames read from clients
	MessagesOut        uint64 // frames queued for clients
	MessagesDropped    uint64 // frames not delivered: backpressure, transformer errors, closing
	BackpressureEvents uint64 // times a client went over BackpressureLimit

	RedisPublished     uint64
	RedisPublishErrors uint64
	RedisReceived      uint64
	RedisMalformed     uint64
	RedisOutages       uint64 // times the subscription was lost
	RedisResubscribes  uint64 // times it came back
	// RedisSubscribed tells whether the subscription is live right now.
	RedisSubscribed bool
	// RedisDowntime adds up the time the subscription was down (finished
	// outages only); RedisLastGap is the length of the last one.
	RedisDowntime time.Duration
	RedisLastGap  time.Duration

	RateLimited     uint64 // clients closed for sending too fast
	RefusedUpgrades uint64 // upgrades refused over MaxPendingConnections

	CallbackErrors uint64
	CallbackPanics uint64
}

// Stats returns a snapshot. It takes every client's lock briefly, so call it
// for monitoring, not per message.
func (h *Helper) Stats() Stats {
	s := Stats{
		Accepted:           h.stats.accepted.Load(),
		Closed:             h.stats.closed.Load(),
		AuthSuccesses:      h.stats.authenticated.Load(),
		AuthFailures:       h.stats.authFailures.Load(),
		AuthTimeouts:       h.stats.authTimeouts.Load(),
		HandshakeFailures:  h.stats.handshakeFailures.Load(),
		HeartbeatTimeouts:  h.stats.heartbeatTimeouts.Load(),
		MessagesIn:         h.stats.in.Load(),
		MessagesOut:        h.stats.out.Load(),
		MessagesDropped:    h.stats.dropped.Load(),
		BackpressureEvents: h.stats.backpressureEvents.Load(),
		RedisPublished:     h.stats.published.Load(),
		RedisPublishErrors: h.stats.publishErrors.Load(),
		RedisReceived:      h.stats.redisReceived.Load(),
		RedisMalformed:     h.stats.redisMalformed.Load(),
		RedisOutages:       h.stats.redisOutages.Load(),
		RedisResubscribes:  h.stats.redisResubscribes.Load(),
		RedisSubscribed:    h.subscribed.Load(),
		RedisDowntime:      time.Duration(h.stats.redisDowntime.Load()),
		RedisLastGap:       time.Duration(h.stats.redisLastGap.Load()),
		RateLimited:        h.stats.rateLimited.Load(),
		RefusedUpgrades:    h.stats.refusedPending.Load(),
		CallbackErrors:     h.stats.callbackErrors.Load(),
		CallbackPanics:     h.stats.callbackPanics.Load(),
	}
	h.mu.RLock()
	s.Users = len(h.users)
	s.Rooms = len(h.rooms)
	h.mu.RUnlock()
	for _, c := range h.allClients() {
		c.mu.Lock()
		s.Connections++
		switch c.state {
		case protocol.StateUnauthorized:
			s.Unauthorized++
		case protocol.StateAuthenticating:
			s.Authenticating++
		case protocol.StateHandshaking:
			s.Handshaking++
		case protocol.StateAuthenticated:
			s.Authenticated++
		}
		if c.encrypted {
			s.Encrypted++
		}
		if c.backpressured {
			s.Backpressured++
		}
		c.mu.Unlock()
	}
	return s
}
