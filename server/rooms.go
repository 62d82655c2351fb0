package server

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// validRoomName reports whether name may be joined by request: non-empty,
// at most DefaultMaxRoomNameLength characters (Unicode code points) and not
// under the reserved "ws:" prefix.
func validRoomName(name string) bool {
	return name != "" &&
		utf8.ValidString(name) &&
		utf8.RuneCountInString(name) <= protocol.DefaultMaxRoomNameLength &&
		!strings.HasPrefix(name, protocol.InternalPrefix)
}

// decodeRooms reads {"rooms":[string…]} strictly: every element must be a
// JSON string (encoding/json would turn null into "").
func decodeRooms(data json.RawMessage) ([]string, bool) {
	if len(data) == 0 {
		return nil, false
	}
	var body struct {
		Rooms json.RawMessage `json:"rooms"`
	}
	if err := json.Unmarshal(data, &body); err != nil || len(body.Rooms) == 0 || body.Rooms[0] != '[' {
		return nil, false
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(body.Rooms, &elems); err != nil {
		return nil, false
	}
	rooms := make([]string, len(elems))
	for i, e := range elems {
		if len(e) == 0 || e[0] != '"' || json.Unmarshal(e, &rooms[i]) != nil {
			return nil, false
		}
	}
	return rooms, true
}

// sanitiseRooms keeps the valid names, once each, in request order, and
// lists the invalid ones as refused.
func sanitiseRooms(rooms []string) (valid []string, refused []protocol.RefusedRoom) {
	valid = rooms[:0:0]
	seen := make(map[string]struct{}, len(rooms))
	for _, r := range rooms {
		if _, dup := seen[r]; dup {
			continue
		}
		seen[r] = struct{}{}
		if !validRoomName(r) {
			refused = append(refused, protocol.RefusedRoom{Room: r, Reason: protocol.RefusedInvalidName})
			continue
		}
		valid = append(valid, r)
	}
	return valid, refused
}

// requestedRooms reads the rooms of a join or leave request, answering the
// client itself (with the request's id) when the request is malformed or
// too large.
func (h *Helper) requestedRooms(c *client, msg protocol.Message) (valid []string, refused []protocol.RefusedRoom, ok bool) {
	requested, ok := decodeRooms(msg.Data)
	if !ok {
		c.sendError(protocol.ErrMsgInvalidFormat, msg.ID)
		return nil, nil, false
	}
	if len(requested) > h.cfg.MaxRoomsPerRequest {
		c.sendError(protocol.ErrMsgTooManyRooms, msg.ID)
		return nil, nil, false
	}
	valid, refused = sanitiseRooms(requested)
	return valid, refused, true
}

// refuseAll lists rooms as refused for reason.
func refuseAll(refused []protocol.RefusedRoom, rooms []string, reason string) []protocol.RefusedRoom {
	for _, r := range rooms {
		refused = append(refused, protocol.RefusedRoom{Room: r, Reason: reason})
	}
	return refused
}

// handleJoin answers a join request. With an id it is acknowledged once the
// joined rooms are live fleet-wide; without one, only "Too many rooms" is
// reported, as in Ignis.
func (h *Helper) handleJoin(c *client, userID string, msg protocol.Message) {
	rooms, refused, ok := h.requestedRooms(c, msg)
	if !ok {
		return
	}
	since, ok := decodeSince(msg.Data)
	if !ok {
		c.sendError(protocol.ErrMsgInvalidFormat, msg.ID)
		return
	}
	ack := func(joined []string, refused []protocol.RefusedRoom) {
		if msg.ID != "" {
			c.sendSystem(ackFrame(msg.ID, protocol.AckData{Event: protocol.EventJoin, Rooms: joined, Refused: refused}))
		}
	}
	if len(rooms) == 0 {
		ack(nil, refused)
		return
	}
	if h.opts.ValidateRoom == nil {
		// Secure by default: without a validator nobody joins anything.
		h.logDebug("join refused: no validate-room handler", c.id, nil)
		ack(nil, refuseAll(refused, rooms, protocol.RefusedNotAllowed))
		return
	}
	var allowed []string
	req := ValidateRoomRequest{ClientID: c.id, UserID: userID, Metadata: c.info().Metadata, Rooms: append([]string(nil), rooms...)}
	err := h.callback("validate room", c.id, func() error {
		var err error
		allowed, err = h.opts.ValidateRoom(c.ctx, req)
		return err
	})
	if err != nil {
		c.answerError(err, msg.ID)
		return
	}
	// Only what was asked for (and survived sanitising) may be joined,
	// whatever the validator returned.
	permitted := make(map[string]bool, len(allowed))
	for _, r := range allowed {
		permitted[r] = true
	}
	var final []string
	for _, r := range rooms {
		if permitted[r] {
			final = append(final, r)
		} else {
			refused = append(refused, protocol.RefusedRoom{Room: r, Reason: protocol.RefusedNotAllowed})
		}
	}
	recover := h.startRecovery(c, final, since)
	joined, more, full := h.joinRooms(c, final, true)
	refused = append(refused, more...)
	if len(joined) > 0 {
		// Let the join take effect fleet-wide before it is acknowledged
		// and before the next frame of this client is read (the bus
		// returns at once when there is nothing to wait for).
		chans := make([]string, len(joined))
		for i, r := range joined {
			chans[i] = protocol.ChannelRoom(r)
		}
		ctx, cancel := context.WithTimeout(c.ctx, routeWait)
		h.bus.Await(ctx, chans)
		h.presenceSync(ctx, joined)
		cancel()
	}
	if h.cfg.HistoryFor != nil && len(joined) > 0 && h.bus.Health().Live {
		ctx, cancel := context.WithTimeout(c.ctx, routeWait)
		for _, r := range joined {
			h.seedHistory(ctx, r)
		}
		cancel()
	}
	if len(recover) > 0 {
		h.finishRecovery(c, msg, joined, refused, recover, since)
		return
	}
	if msg.ID != "" {
		ack(joined, refused)
	} else if full {
		c.sendError(protocol.ErrMsgTooManyRooms, "")
	}
}

// startRecovery marks the history rooms of a join with "since" that c is
// not in yet as recovering, before c joins them, so that no live message
// for them can reach c ahead of the replay. It returns those rooms.
func (h *Helper) startRecovery(c *client, rooms []string, since map[string]string) []string {
	if len(since) == 0 {
		return nil
	}
	var history []string
	for _, r := range rooms {
		if _, ok := since[r]; ok {
			if size, _ := h.historyFor(r); size > 0 {
				history = append(history, r)
			}
		}
	}
	if len(history) == 0 {
		return nil
	}
	h.mu.RLock()
	out := history[:0]
	for _, r := range history {
		if !c.rooms.has(r) {
			out = append(out, r)
		}
	}
	h.mu.RUnlock()
	c.mu.Lock()
	for _, r := range out {
		if c.recovering == nil {
			c.recovering = map[string][]*message{}
		}
		c.recovering[r] = nil
	}
	c.mu.Unlock()
	return out
}

// finishRecovery replays the recovering rooms c joined, acknowledges the
// join (with "recovered"), then releases what was held back: everything
// before the ack is history, everything after it is live.
func (h *Helper) finishRecovery(c *client, msg protocol.Message, joined []string, refused []protocol.RefusedRoom,
	recovering []string, since map[string]string) {
	in := make(map[string]bool, len(joined))
	for _, r := range joined {
		in[r] = true
	}
	type mark struct {
		room string
		last streamID
		have bool
	}
	var marks []mark
	recovered := map[string]bool{}
	ctx, cancel := context.WithTimeout(c.ctx, h.cfg.WriteTimeout)
	defer cancel()
	for _, r := range recovering {
		if !in[r] {
			h.releaseRoom(c, r, streamID{}, false) // not joined: just forget it
			continue
		}
		ok, last, have := h.replayRoom(ctx, c, r, since[r])
		recovered[r] = ok
		marks = append(marks, mark{r, last, have})
	}
	if msg.ID != "" {
		c.sendSystem(ackFrame(msg.ID, protocol.AckData{Event: protocol.EventJoin, Rooms: joined, Refused: refused, Recovered: recovered}))
	}
	for _, m := range marks {
		h.releaseRoom(c, m.room, m.last, m.have)
	}
}

// handleLeave answers a leave request; with an id it is acknowledged with
// the rooms the client left and those it could not (not a member, its own
// id, invalid names).
func (h *Helper) handleLeave(c *client, msg protocol.Message) {
	rooms, refused, ok := h.requestedRooms(c, msg)
	if !ok {
		return
	}
	left, more := h.leaveRooms(c, rooms)
	if msg.ID != "" {
		c.sendSystem(ackFrame(msg.ID, protocol.AckData{Event: protocol.EventLeave, Rooms: left, Refused: append(refused, more...)}))
	}
}

// joinRooms adds c to rooms, stopping at MaxRoomsPerClient. byClient
// refuses names that are another local client's id, so a client cannot
// receive what is addressed to someone else's own-id room. Rooms c is in
// already count as joined.
func (h *Helper) joinRooms(c *client, rooms []string, byClient bool) (joined []string, refused []protocol.RefusedRoom, full bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.removed {
		return nil, nil, false
	}
	for i, r := range rooms {
		if c.rooms.has(r) {
			joined = append(joined, r)
			continue
		}
		if byClient {
			if _, isClient := h.clients[r]; isClient && r != c.id {
				refused = append(refused, protocol.RefusedRoom{Room: r, Reason: protocol.RefusedNotAllowed})
				continue
			}
		}
		if c.rooms.len() >= h.cfg.MaxRoomsPerClient {
			return joined, refuseAll(refused, rooms[i:], protocol.RefusedTooManyRooms), true
		}
		h.addToRoomLocked(c, r)
		joined = append(joined, r)
	}
	return joined, refused, false
}

// leaveRooms removes c from the rooms it is in; its own-id room stays.
func (h *Helper) leaveRooms(c *client, rooms []string) (left []string, refused []protocol.RefusedRoom) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range rooms {
		if r == c.id {
			refused = append(refused, protocol.RefusedRoom{Room: r, Reason: protocol.RefusedNotAllowed})
			continue
		}
		if !c.rooms.has(r) {
			refused = append(refused, protocol.RefusedRoom{Room: r, Reason: protocol.RefusedNotMember})
			continue
		}
		h.removeFromRoomLocked(c, r)
		left = append(left, r)
	}
	return left, refused
}

func (h *Helper) addToRoomLocked(c *client, room string) {
	set, ok := h.rooms[room]
	if !ok {
		h.bus.Want(protocol.ChannelRoom(room))
	}
	set.add(c)
	h.rooms[room] = set
	c.rooms.add(room)
	h.presenceJoinLocked(c, room)
}

func (h *Helper) removeFromRoomLocked(c *client, room string) {
	c.rooms.remove(room)
	h.presenceLeaveLocked(c, room)
	if set, ok := h.rooms[room]; ok {
		set.remove(c)
		h.rooms[room] = set
		if set.len() == 0 {
			delete(h.rooms, room)
			h.bus.Unwant(protocol.ChannelRoom(room))
			h.hist.forget(room)
		}
	}
}

func (h *Helper) lookup(clientID string) (*client, bool) {
	h.mu.RLock()
	c, ok := h.clients[clientID]
	h.mu.RUnlock()
	return c, ok
}

// JoinRoom puts an authenticated local client into rooms without asking the
// ValidateRoom handler. Names must be valid room names.
func (h *Helper) JoinRoom(clientID string, rooms ...string) error {
	c, ok := h.lookup(clientID)
	if !ok {
		return ErrClientNotFound
	}
	if st, _ := c.getState(); st != protocol.StateAuthenticated {
		return fmt.Errorf("server: join %s: client is %s", clientID, st)
	}
	for _, r := range rooms {
		if !validRoomName(r) {
			return fmt.Errorf("%w: %q", ErrInvalidRoom, r)
		}
	}
	if _, _, full := h.joinRooms(c, rooms, false); full {
		return ErrTooManyRooms
	}
	return nil
}

// LeaveRoom takes a local client out of rooms it is in. Its own-id room
// cannot be left.
func (h *Helper) LeaveRoom(clientID string, rooms ...string) error {
	c, ok := h.lookup(clientID)
	if !ok {
		return ErrClientNotFound
	}
	h.leaveRooms(c, rooms)
	return nil
}

// EnableClientEncryption marks a local client as encrypted: from now on
// every application message to it goes through the OutboundTransformer.
// It cannot be undone for the connection.
func (h *Helper) EnableClientEncryption(clientID string) error {
	return h.EnableClientEncryptionAfter(clientID, "", nil)
}

// EnableClientEncryptionAfter sends event with data to the client in
// plaintext and marks the client encrypted in the same step, so that the
// reply carrying the key material of an optional-encryption exchange is
// the last plaintext application message and everything sent after it, from
// any goroutine, is transformed. An empty event sends nothing.
func (h *Helper) EnableClientEncryptionAfter(clientID, event string, data any) error {
	var m *message
	if event != "" {
		var err error
		if m, err = newMessage(event, data); err != nil {
			return err
		}
	}
	c, ok := h.lookup(clientID)
	if !ok {
		return ErrClientNotFound
	}
	c.mu.Lock()
	r := pushRefused
	if m != nil && !c.closing && c.state == protocol.StateAuthenticated {
		r = c.out.push(frame{kind: frameText, size: len(m.frame), data: m.frame})
	}
	c.encrypted = true
	c.mu.Unlock()
	c.out.flush()
	c.pushed(r)
	return nil
}

// Client returns a snapshot of one local client.
func (h *Helper) Client(clientID string) (ClientInfo, bool) {
	c, ok := h.lookup(clientID)
	if !ok {
		return ClientInfo{}, false
	}
	return h.snapshot(c), true
}

// Clients returns snapshots of every local client, in no particular order.
func (h *Helper) Clients() []ClientInfo {
	return h.snapshots(h.allClients())
}

// ClientsByUser returns snapshots of the local sessions of a user.
func (h *Helper) ClientsByUser(userID string) []ClientInfo {
	h.mu.RLock()
	cs := collect(h.users[userID])
	h.mu.RUnlock()
	return h.snapshots(cs)
}

// ClientsInRoom returns snapshots of the local members of a room.
func (h *Helper) ClientsInRoom(room string) []ClientInfo {
	h.mu.RLock()
	cs := collect(h.rooms[room])
	h.mu.RUnlock()
	return h.snapshots(cs)
}

// RoomSize returns how many local clients are in room.
func (h *Helper) RoomSize(room string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.rooms[room].len()
}

// Rooms returns the names of the rooms with at least one local member,
// sorted. Every client's own-id room is among them.
func (h *Helper) Rooms() []string {
	h.mu.RLock()
	out := make([]string, 0, len(h.rooms))
	for r := range h.rooms {
		out = append(out, r)
	}
	h.mu.RUnlock()
	sort.Strings(out)
	return out
}

func (h *Helper) snapshot(c *client) ClientInfo {
	ci := c.info()
	h.mu.RLock()
	ci.Rooms = c.rooms.list()
	h.mu.RUnlock()
	sort.Strings(ci.Rooms)
	return ci
}

func (h *Helper) snapshots(cs []*client) []ClientInfo {
	out := make([]ClientInfo, 0, len(cs))
	for _, c := range cs {
		out = append(out, h.snapshot(c))
	}
	return out
}
