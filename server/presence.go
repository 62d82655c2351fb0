package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// Presence (SPEC §9.4). Index changes (under the index lock) only append a
// join or leave to an in-memory queue; one worker goroutine turns them into
// Redis writes and presence events, in order, away from every lock and
// caller. The worker also owns this instance's view of its own entries,
// which it rewrites every PresenceRefresh together with the liveness key
// ws:alive:{serverId} (TTL 2×PresenceRefresh). Readers drop, and delete,
// entries whose instance has no liveness key: a killed instance's members
// vanish within twice the refresh interval.

// PresenceEntry is one member of a presence room.
type PresenceEntry struct {
	ClientID string
	UserID   string
	ServerID string
	JoinedAt time.Time
}

// PresenceStats counts a presence room's members fleet-wide.
type PresenceStats struct {
	Clients int // connections in the room
	Users   int // distinct users among them
}

// ErrPresenceOff is returned by Presence and PresenceStats when the room is
// not a presence room (Config.PresenceRooms is nil or says no).
var ErrPresenceOff = errors.New("server: presence is off for this room")

type presenceOp struct {
	join     bool
	room     string
	clientID string
	userID   string
	at       time.Time
	// synced, when set, makes the op a barrier: the worker closes it once
	// every op queued before it is written (see presenceSync).
	synced chan struct{}
}

// presenceQueue is the hand-off between the index (writers, any goroutine,
// possibly under h.mu) and the presence worker.
type presenceQueue struct {
	mu   sync.Mutex
	ops  []presenceOp
	wake chan struct{}
}

func (q *presenceQueue) push(op presenceOp) {
	q.mu.Lock()
	q.ops = append(q.ops, op)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *presenceQueue) take() []presenceOp {
	q.mu.Lock()
	defer q.mu.Unlock()
	ops := q.ops
	q.ops = nil
	return ops
}

// presenceJoinLocked and presenceLeaveLocked record index changes; h.mu is
// held (they only append to the queue).
func (h *Helper) presenceJoinLocked(c *client, room string) {
	if h.presence != nil && room != c.id {
		h.presence.push(presenceOp{join: true, room: room, clientID: c.id, userID: c.indexedUser, at: time.Now()})
	}
}

func (h *Helper) presenceLeaveLocked(c *client, room string) {
	if h.presence != nil && room != c.id {
		h.presence.push(presenceOp{room: room, clientID: c.id, userID: c.indexedUser})
	}
}

// presenceSync waits, at most until ctx ends, for the presence worker to
// have written every join and leave queued so far: a join into a presence
// room is acknowledged once its entry can be read.
func (h *Helper) presenceSync(ctx context.Context, rooms []string) {
	if h.presence == nil {
		return
	}
	on := false
	for _, r := range rooms {
		if h.presenceRoom(r) {
			on = true
			break
		}
	}
	if !on {
		return
	}
	synced := make(chan struct{})
	h.presence.push(presenceOp{synced: synced})
	select {
	case <-synced:
	case <-ctx.Done():
	}
}

func presenceKey(room string) string  { return protocol.KeyPresencePrefix + room }
func aliveKey(serverID string) string { return protocol.KeyAlivePrefix + serverID }

// presenceWriteTimeout bounds one batch of presence writes.
const presenceWriteTimeout = 5 * time.Second

// presenceLoop is the presence worker (one per Helper, started by Configure).
func (h *Helper) presenceLoop() {
	own := map[string]map[string]protocol.PresenceEntry{} // room → clientID → entry
	isPresence := map[string]bool{}
	want := func(room string) bool {
		v, ok := isPresence[room]
		if !ok {
			v = h.presenceRoom(room)
			isPresence[room] = v
		}
		return v
	}
	tick := time.NewTicker(h.cfg.PresenceRefresh)
	defer tick.Stop()
	h.presenceRefresh(own)
	for {
		select {
		case <-h.presence.wake:
			h.presenceApply(h.ctx, own, want, h.presence.take())
		case <-tick.C:
			h.presenceRefresh(own)
		case <-h.ctx.Done():
			// Shutdown closed every client first: write their leaves, then
			// say this instance is gone.
			ctx, cancel := context.WithTimeout(context.Background(), presenceWriteTimeout)
			h.presenceApply(ctx, own, want, h.presence.take())
			_ = h.rdb.Del(ctx, aliveKey(h.serverID)).Err()
			cancel()
			return
		}
	}
}

// presenceRoom asks Config.PresenceRooms, recovering a panic (as off).
func (h *Helper) presenceRoom(room string) (on bool) {
	defer func() {
		if p := recover(); p != nil {
			h.stats.callbackPanics.Add(1)
			h.log.Error("PresenceRooms panicked", zap.String("room", room), zap.Any("panic", p))
			on = false
		}
	}()
	return h.cfg.PresenceRooms(room)
}

// presenceApply writes a batch of joins and leaves and sends the events.
func (h *Helper) presenceApply(ctx context.Context, own map[string]map[string]protocol.PresenceEntry,
	want func(string) bool, ops []presenceOp) {
	if len(ops) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, presenceWriteTimeout)
	defer cancel()
	pipe := h.rdb.Pipeline()
	ttl := 3 * h.cfg.PresenceRefresh
	var events []protocol.PresenceEvent
	var synced []chan struct{}
	defer func() {
		for _, ch := range synced {
			close(ch)
		}
	}()
	for _, op := range ops {
		if op.synced != nil {
			synced = append(synced, op.synced)
			continue
		}
		if !want(op.room) {
			continue
		}
		members := own[op.room]
		if op.join {
			e := protocol.PresenceEntry{ClientID: op.clientID, UserID: op.userID, ServerID: h.serverID,
				JoinedAt: op.at.UTC().Format(protocol.TimeFormat)}
			b, _ := json.Marshal(e)
			if members == nil {
				members = map[string]protocol.PresenceEntry{}
				own[op.room] = members
			}
			members[op.clientID] = e
			pipe.HSet(ctx, presenceKey(op.room), op.clientID, b)
			pipe.PExpire(ctx, presenceKey(op.room), ttl)
			events = append(events, protocol.PresenceEvent{Room: op.room, Action: "join", ClientID: op.clientID, UserID: op.userID})
			continue
		}
		if _, ok := members[op.clientID]; !ok {
			continue
		}
		delete(members, op.clientID)
		if len(members) == 0 {
			delete(own, op.room)
		}
		pipe.HDel(ctx, presenceKey(op.room), op.clientID)
		events = append(events, protocol.PresenceEvent{Room: op.room, Action: "leave", ClientID: op.clientID, UserID: op.userID})
	}
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			// The next refresh rewrites what this instance holds.
			h.stats.presenceErrors.Add(1)
			h.log.Warn("presence write failed; the next refresh repairs it", zap.Error(err))
		}
	}
	if h.cfg.PresenceEvents {
		for _, ev := range events {
			h.sendPresenceEvent(ctx, ev)
		}
	}
}

// sendPresenceEvent tells the room's members on every instance, except the
// client it is about.
func (h *Helper) sendPresenceEvent(ctx context.Context, ev protocol.PresenceEvent) {
	m, err := newMessage(protocol.EventPresence, ev)
	if err != nil {
		return
	}
	exclude := []string{ev.ClientID}
	n := h.deliverRoom(m, ev.Room, toSet(exclude), false)
	if err := h.publish(ctx, protocol.TypeRoom, ev.Room, m, exclude, n); err != nil && ctx.Err() == nil {
		h.logDebug("presence event not published", ev.ClientID, err)
	}
}

// presenceRefresh renews the liveness key and rewrites this instance's
// entries (they may have been lost with a Redis restart).
func (h *Helper) presenceRefresh(own map[string]map[string]protocol.PresenceEntry) {
	ctx, cancel := context.WithTimeout(h.ctx, presenceWriteTimeout)
	defer cancel()
	pipe := h.rdb.Pipeline()
	pipe.Set(ctx, aliveKey(h.serverID), time.Now().UTC().Format(protocol.TimeFormat), 2*h.cfg.PresenceRefresh)
	for room, members := range own {
		args := make([]any, 0, 2*len(members))
		for id, e := range members {
			b, _ := json.Marshal(e)
			args = append(args, id, b)
		}
		pipe.HSet(ctx, presenceKey(room), args...)
		pipe.PExpire(ctx, presenceKey(room), 3*h.cfg.PresenceRefresh)
	}
	if _, err := pipe.Exec(ctx); err != nil && ctx.Err() == nil {
		h.stats.presenceErrors.Add(1)
		h.log.Warn("presence refresh failed", zap.Error(err))
	}
}

// Presence lists the members of a presence room on every instance, oldest
// first. Entries of instances that are no longer alive are left out (and
// deleted).
func (h *Helper) Presence(ctx context.Context, room string) ([]PresenceEntry, error) {
	raw, err := h.presenceRead(ctx, room)
	if err != nil {
		return nil, err
	}
	out := make([]PresenceEntry, 0, len(raw))
	for _, e := range raw {
		at, _ := time.Parse(protocol.TimeFormat, e.JoinedAt)
		out = append(out, PresenceEntry{ClientID: e.ClientID, UserID: e.UserID, ServerID: e.ServerID, JoinedAt: at})
	}
	return out, nil
}

// PresenceStats counts the members of a presence room on every instance.
func (h *Helper) PresenceStats(ctx context.Context, room string) (PresenceStats, error) {
	raw, err := h.presenceRead(ctx, room)
	if err != nil {
		return PresenceStats{}, err
	}
	return PresenceStats{Clients: len(raw), Users: distinctUsers(raw)}, nil
}

func distinctUsers(entries []protocol.PresenceEntry) int {
	users := map[string]struct{}{}
	for _, e := range entries {
		users[e.UserID] = struct{}{}
	}
	return len(users)
}

// presenceRead reads a room's hash and keeps the entries of live instances.
func (h *Helper) presenceRead(ctx context.Context, room string) ([]protocol.PresenceEntry, error) {
	if err := h.lifeErr(); err != nil {
		return nil, err
	}
	if h.presence == nil || !h.presenceRoom(room) {
		return nil, ErrPresenceOff
	}
	all, err := h.rdb.HGetAll(ctx, presenceKey(room)).Result()
	if err != nil {
		return nil, fmt.Errorf("server: read presence of %q: %w", room, err)
	}
	entries := make([]protocol.PresenceEntry, 0, len(all))
	servers := map[string]bool{}
	var bad []string
	for id, v := range all {
		var e protocol.PresenceEntry
		if json.Unmarshal([]byte(v), &e) != nil || e.ClientID != id || e.ServerID == "" {
			bad = append(bad, id)
			continue
		}
		entries = append(entries, e)
		servers[e.ServerID] = false
	}
	if len(servers) > 0 {
		pipe := h.rdb.Pipeline()
		checks := map[string]interface{ Val() int64 }{}
		for s := range servers {
			checks[s] = pipe.Exists(ctx, aliveKey(s))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("server: check presence liveness: %w", err)
		}
		for s, c := range checks {
			servers[s] = c.Val() == 1
		}
	}
	live := entries[:0]
	for _, e := range entries {
		if servers[e.ServerID] {
			live = append(live, e)
		} else {
			bad = append(bad, e.ClientID)
		}
	}
	if len(bad) > 0 {
		// Pruned on read: the instance that wrote them is gone.
		_ = h.rdb.HDel(ctx, presenceKey(room), bad...).Err()
	}
	sort.Slice(live, func(i, j int) bool {
		if live[i].JoinedAt != live[j].JoinedAt {
			return live[i].JoinedAt < live[j].JoinedAt
		}
		return live[i].ClientID < live[j].ClientID
	})
	return live, nil
}

// handlePresenceRequest answers {"event":"presence","id":…,"data":{"room":r}}
// from a member of presence room r with the room's entries.
func (h *Helper) handlePresenceRequest(c *client, msg protocol.Message) {
	var d struct {
		Room json.RawMessage `json:"room"`
	}
	var room string
	if json.Unmarshal(msg.Data, &d) != nil || len(d.Room) == 0 || d.Room[0] != '"' || json.Unmarshal(d.Room, &room) != nil {
		c.sendError(protocol.ErrMsgInvalidFormat, msg.ID)
		return
	}
	h.mu.RLock()
	member := c.rooms.has(room)
	h.mu.RUnlock()
	if !member || !h.presenceRoom(room) {
		c.sendSystem(ackFrame(msg.ID, protocol.AckData{Event: protocol.EventPresence,
			Refused: []protocol.RefusedRoom{{Room: room, Reason: protocol.RefusedNotMember}}}))
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, presenceWriteTimeout)
	defer cancel()
	entries, err := h.presenceRead(ctx, room)
	if err != nil {
		h.logDebug("presence request failed", c.id, err)
		c.sendError(protocol.ErrMsgInternal, msg.ID)
		return
	}
	b, _ := json.Marshal(protocol.OutMessage{Event: protocol.EventAck, ID: msg.ID,
		Data: protocol.PresenceAck{Event: protocol.EventPresence, Room: room, Clients: entries, Users: distinctUsers(entries)}})
	c.sendSystem(b)
}
