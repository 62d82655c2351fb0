package server

import (
	"encoding/json"
	"reflect"
	"sync"
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
	controlReceived, controlMalformed             atomic.Uint64
	sessionsExpired, refreshes, refreshFailures   atomic.Uint64
	logSuppressed, presenceErrors                 atomic.Uint64
	catchUpMessages                               atomic.Uint64
	redisDowntime, redisLastGap                   atomic.Int64
}

// Stats is a snapshot of the Helper's state and counters. Counters count
// since New.
type Stats struct {
	// Connections by state right now.
	Connections    int `json:"connections"`
	Unauthorized   int `json:"unauthorized"`
	Authenticating int `json:"authenticating"`
	Handshaking    int `json:"handshaking"`
	Authenticated  int `json:"authenticated"`
	Encrypted      int `json:"encrypted"`
	Backpressured  int `json:"backpressured"`
	// Users and Rooms with at least one local client right now.
	Users int `json:"users"`
	Rooms int `json:"rooms"`

	Accepted          uint64 `json:"accepted"` // connections upgraded
	Closed            uint64 `json:"closed"`   // connections ended
	AuthSuccesses     uint64 `json:"authSuccesses"`
	AuthFailures      uint64 `json:"authFailures"` // rejected or failed authenticate calls
	AuthTimeouts      uint64 `json:"authTimeouts"` // 4001 closes after authenticate was sent
	HandshakeFailures uint64 `json:"handshakeFailures"`
	HeartbeatTimeouts uint64 `json:"heartbeatTimeouts"`

	MessagesIn         uint64 `json:"messagesIn"`         // frames read from clients
	MessagesOut        uint64 `json:"messagesOut"`        // frames queued for clients
	MessagesDropped    uint64 `json:"messagesDropped"`    // frames not delivered: backpressure, transformer errors, closing
	BackpressureEvents uint64 `json:"backpressureEvents"` // times a client went over BackpressureLimit

	RedisPublished     uint64 `json:"redisPublished"`
	RedisPublishErrors uint64 `json:"redisPublishErrors"`
	RedisReceived      uint64 `json:"redisReceived"`
	RedisMalformed     uint64 `json:"redisMalformed"`
	RedisOutages       uint64 `json:"redisOutages"`      // times the subscription was lost
	RedisResubscribes  uint64 `json:"redisResubscribes"` // times it came back
	// RedisSubscribed tells whether the subscription is live right now.
	RedisSubscribed bool `json:"redisSubscribed"`
	// RedisDowntime adds up the time the subscription was down (finished
	// outages only); RedisLastGap is the length of the last one.
	RedisDowntime time.Duration `json:"redisDowntimeMs"`
	RedisLastGap  time.Duration `json:"redisLastGapMs"`

	RateLimited     uint64 `json:"rateLimited"`     // clients closed for sending too fast
	RefusedUpgrades uint64 `json:"refusedUpgrades"` // upgrades refused over MaxPendingConnections

	CallbackErrors uint64 `json:"callbackErrors"`
	CallbackPanics uint64 `json:"callbackPanics"`

	// ControlReceived counts control messages (fleet-wide disconnects) from
	// other instances and emitters; ControlMalformed the ones dropped.
	ControlReceived  uint64 `json:"controlReceived"`
	ControlMalformed uint64 `json:"controlMalformed"`
	SessionsExpired  uint64 `json:"sessionsExpired"` // 4006 closes at AuthResult.ExpiresAt
	Refreshes        uint64 `json:"refreshes"`       // successful "refresh" requests
	RefreshFailures  uint64 `json:"refreshFailures"` // refused or failed "refresh" requests
	// LogLinesSuppressed counts log lines left out by sampling (each
	// interval's summary line says how many of which kind).
	LogLinesSuppressed uint64 `json:"logLinesSuppressed"`
	// PresenceErrors counts presence writes and refreshes Redis refused
	// (the next refresh repairs them).
	PresenceErrors uint64 `json:"presenceErrors"`
	// CatchUpMessages counts history-room messages this instance missed
	// during Redis gaps and delivered from the streams afterwards.
	CatchUpMessages uint64 `json:"catchUpMessages"`
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
		RedisSubscribed:    h.bus.Health().Live,
		RedisDowntime:      time.Duration(h.stats.redisDowntime.Load()),
		RedisLastGap:       time.Duration(h.stats.redisLastGap.Load()),
		RateLimited:        h.stats.rateLimited.Load(),
		RefusedUpgrades:    h.stats.refusedPending.Load(),
		CallbackErrors:     h.stats.callbackErrors.Load(),
		CallbackPanics:     h.stats.callbackPanics.Load(),
		ControlReceived:    h.stats.controlReceived.Load(),
		ControlMalformed:   h.stats.controlMalformed.Load(),
		SessionsExpired:    h.stats.sessionsExpired.Load(),
		Refreshes:          h.stats.refreshes.Load(),
		RefreshFailures:    h.stats.refreshFailures.Load(),
		LogLinesSuppressed: h.stats.logSuppressed.Load(),
		PresenceErrors:     h.stats.presenceErrors.Load(),
		CatchUpMessages:    h.stats.catchUpMessages.Load(),
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
		c.mu.Unlock()
		if _, over := c.out.load(); over {
			s.Backpressured++
		}
	}
	return s
}

// statsJSON is Stats with every time.Duration field an int64 of
// milliseconds under the same tag, built by reflection so that a duration
// added to Stats is written in milliseconds too (its key ends in "Ms").
var statsJSON = sync.OnceValue(func() reflect.Type {
	t := reflect.TypeFor[Stats]()
	fields := make([]reflect.StructField, t.NumField())
	for i := range fields {
		f := t.Field(i)
		if f.Type == durationType {
			f.Type = reflect.TypeFor[int64]()
		}
		fields[i] = reflect.StructField{Name: f.Name, Type: f.Type, Tag: f.Tag}
	}
	return reflect.StructOf(fields)
})

// MarshalJSON writes s with camelCase keys and its durations as integer
// milliseconds ("redisDowntimeMs"), for dashboards and Ignis-style tools.
func (s Stats) MarshalJSON() ([]byte, error) {
	src := reflect.ValueOf(s)
	dst := reflect.New(statsJSON()).Elem()
	for i := range src.NumField() {
		if f := src.Field(i); f.Type() == durationType {
			dst.Field(i).SetInt(time.Duration(f.Int()).Milliseconds())
		} else {
			dst.Field(i).Set(f)
		}
	}
	return json.Marshal(dst.Interface())
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Stats) UnmarshalJSON(b []byte) error {
	src := reflect.New(statsJSON())
	if err := json.Unmarshal(b, src.Interface()); err != nil {
		return err
	}
	dst := reflect.ValueOf(s).Elem()
	for i := range dst.NumField() {
		if f := src.Elem().Field(i); dst.Field(i).Type() == durationType {
			dst.Field(i).SetInt(int64(time.Duration(f.Int()) * time.Millisecond))
		} else {
			dst.Field(i).Set(f)
		}
	}
	return nil
}
