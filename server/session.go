package server

import (
	"context"
	"encoding/json"
	"time"

	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// Session expiry. A client authenticated with AuthResult.ExpiresAt gets one
// session-expiring notice RefreshWindow before it, and is closed with 4006
// at it, unless a refresh moved it. One timer per client does both: it is
// armed for the next of the two moments, and a refresh re-arms it. Timers
// that fire after being replaced see a newer generation and do nothing.

// armSessionLocked (re)starts c's session timer for c.expiresAt; c.mu must
// be held. A zero expiry means the session never ends.
func (c *client) armSessionLocked() {
	c.sessionGen++
	c.expiryNoticed = false
	if c.sessionTimer != nil {
		c.sessionTimer.Stop()
		c.sessionTimer = nil
	}
	if c.expiresAt.IsZero() || c.closing {
		return
	}
	gen := c.sessionGen
	c.sessionTimer = time.AfterFunc(c.nextSessionEventLocked(time.Now()), func() { c.sessionTick(gen) })
}

// nextSessionEventLocked is how long until the notice (if not sent yet) or
// the expiry.
func (c *client) nextSessionEventLocked(now time.Time) time.Duration {
	if !c.expiryNoticed {
		return max(0, c.expiresAt.Add(-c.h.cfg.RefreshWindow).Sub(now))
	}
	return max(0, c.expiresAt.Sub(now))
}

// sessionTick runs on the timer's goroutine: it sends the notice or closes
// the expired session, then re-arms for what comes next.
func (c *client) sessionTick(gen uint64) {
	now := time.Now()
	c.mu.Lock()
	if gen != c.sessionGen || c.closing || c.expiresAt.IsZero() {
		c.mu.Unlock()
		return
	}
	if !now.Before(c.expiresAt) {
		c.sessionTimer = nil
		c.mu.Unlock()
		c.h.stats.sessionsExpired.Add(1)
		c.close(DisconnectSessionExpired, false)
		return
	}
	notice := !c.expiryNoticed
	c.expiryNoticed = true
	expiresAt := c.expiresAt
	c.sessionTimer = time.AfterFunc(c.nextSessionEventLocked(now), func() { c.sessionTick(gen) })
	c.mu.Unlock()
	if notice {
		c.sendSystem(expiryFrame(protocol.EventSessionExpiring, expiresAt, ""))
	}
}

// expiryFrame encodes session-expiring or refreshed.
func expiryFrame(event string, expiresAt time.Time, id string) []byte {
	d := protocol.ExpiryData{}
	if !expiresAt.IsZero() {
		d.ExpiresAt = expiresAt.UTC().Format(time.RFC3339)
	}
	b, _ := json.Marshal(protocol.OutMessage{Event: event, Data: d, ID: id})
	return b
}

// handleRefresh runs the authenticate handler again for an authenticated
// client, on its own goroutine so the reader keeps reading. The same user
// gets a new expiry and metadata and "refreshed"; anything else gets
// "Refresh failed" and keeps the old expiry. One refresh at a time.
func (h *Helper) handleRefresh(c *client, msg protocol.Message) {
	c.mu.Lock()
	if c.closing || c.refreshing {
		busy := c.refreshing
		c.mu.Unlock()
		if busy {
			h.stats.refreshFailures.Add(1)
			c.sendError(protocol.ErrMsgRefreshFailed, msg.ID)
		}
		return
	}
	c.refreshing = true
	userID := c.userID
	c.mu.Unlock()
	h.conns.goAlways(func() {
		ctx, cancel := context.WithTimeout(c.ctx, 3*h.cfg.AuthTimeout)
		defer cancel()
		h.refresh(ctx, c, userID, msg)
	})
}

func (h *Helper) refresh(ctx context.Context, c *client, userID string, msg protocol.Message) {
	var res *AuthResult
	req := AuthenticateRequest{ClientID: c.id, Data: msg.Data, Refresh: true}
	err := h.callback("authenticate", c.id, func() error {
		var err error
		res, err = h.opts.Authenticate(ctx, req)
		return err
	})
	ok := err == nil && res != nil && res.UserID == userID
	c.mu.Lock()
	c.refreshing = false
	if c.closing {
		c.mu.Unlock()
		return
	}
	var expiresAt time.Time
	if ok {
		c.expiresAt = res.ExpiresAt
		c.metadata = res.Metadata
		expiresAt = res.ExpiresAt
		c.armSessionLocked()
	}
	c.mu.Unlock()
	if !ok {
		h.stats.refreshFailures.Add(1)
		h.sampled(sampleAuthFailure, "session refresh refused", zap.String("client_id", c.id), zap.String("user_id", userID))
		c.sendError(protocol.ErrMsgRefreshFailed, msg.ID)
		return
	}
	h.stats.refreshes.Add(1)
	c.sendSystem(expiryFrame(protocol.EventRefreshed, expiresAt, msg.ID))
}
