package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// History and recovery (SPEC §9.5). A message to a history room is
// appended to the stream ws:history:{room} and published by one script
// (protocol.HistoryScript), so the stream's order is the order in which
// every instance receives the messages. Such messages are delivered from
// the subscription on every instance, this one included: local members see
// them in stream order too, with "room" and "offset" in the frame.
//
// A join with "since" recovers: the client is put in the room in a
// recovering state in which live messages for that room are held back,
// the stream is read after the offset and replayed, then the held-back
// messages newer than the last replayed one are delivered, and only then
// does the room go live for the client: no gap, no duplicate, one order.

var historyScript = redis.NewScript(protocol.HistoryScript)

// historyFor asks Config.HistoryFor (recovering a panic as "off").
func (h *Helper) historyFor(room string) (size int, ttl time.Duration) {
	if h.cfg.HistoryFor == nil || room == "" {
		return 0, 0
	}
	defer func() {
		if p := recover(); p != nil {
			h.stats.callbackPanics.Add(1)
			size, ttl = 0, 0
		}
	}()
	size, ttl = h.cfg.HistoryFor(room)
	return max(size, 0), max(ttl, 0)
}

func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// publishHistory appends m to the room's stream and publishes it, in one
// script call; every instance (this one included) delivers it from the
// subscription. While Redis is down the local members get it at once,
// without an offset, and the error is a *PublishError.
func (h *Helper) publishHistory(ctx context.Context, room string, m *message, exclude []string, size int, ttl time.Duration) error {
	if err := h.lifeErr(); err != nil {
		return err
	}
	b, err := protocol.EncodeEnvelope(protocol.Envelope{ServerID: h.serverID, Type: protocol.TypeRoom, Target: room, Event: m.event, Data: m.data, Exclude: exclude})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	channel := protocol.ChannelRoom(room)
	local := func(err error) error {
		n := h.deliverRoom(m, room, toSet(exclude), false)
		h.stats.publishErrors.Add(1)
		return &PublishError{Local: n, Err: err, h: h, channel: channel, payload: b, kind: "history"}
	}
	if !h.bus.Health().Live {
		return local(ErrNotReady)
	}
	minID := "0"
	if ttl > 0 {
		minID = strconv.FormatInt(time.Now().Add(-ttl).UnixMilli(), 10)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, h.cfg.PublishTimeout)
	defer cancel()
	err = historyScript.Run(ctx, h.rdb,
		[]string{protocol.HistoryKey(room), protocol.HistoryEpochKey(room)},
		newEpoch(), size, ttl.Milliseconds(), minID, channel, b[:len(b)-1], m.event, string(dataOrNull(m.data)),
	).Err()
	if obs := h.opts.Observer; obs != nil {
		obs.ObservePublish(time.Since(start), err)
	}
	if err != nil {
		return local(err)
	}
	h.stats.published.Add(1)
	return nil
}

func dataOrNull(d json.RawMessage) json.RawMessage {
	if d == nil {
		return json.RawMessage("null")
	}
	return d
}

// streamID is a parsed Redis stream id "<ms>-<seq>".
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, bool) {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, false
	}
	a, err1 := strconv.ParseUint(ms, 10, 64)
	b, err2 := strconv.ParseUint(seq, 10, 64)
	return streamID{a, b}, err1 == nil && err2 == nil
}

func (a streamID) less(b streamID) bool { return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq) }

func (a streamID) String() string {
	return strconv.FormatUint(a.ms, 10) + "-" + strconv.FormatUint(a.seq, 10)
}

// parseOffset splits "<epoch>:<stream id>".
func parseOffset(off string) (epoch string, id streamID, ok bool) {
	epoch, rest, found := strings.Cut(off, ":")
	if !found || epoch == "" {
		return "", streamID{}, false
	}
	id, ok = parseStreamID(rest)
	return epoch, id, ok
}

// ErrHistoryOff is returned by History for a room without history.
var ErrHistoryOff = errors.New("server: history is off for this room")

// HistoryMessage is one message kept in a history room's stream.
type HistoryMessage struct {
	Offset string
	Event  string
	Data   json.RawMessage
}

// historySince reads the room's stream after offset since ("" for all of
// it). recovered is false when since is from another epoch or older than
// what the stream still keeps; the messages are then those of the current
// stream from its start (for a since of another epoch) or nil.
func (h *Helper) historySince(ctx context.Context, room, since string) (msgs []HistoryMessage, recovered bool, err error) {
	key := protocol.HistoryKey(room)
	pipe := h.rdb.Pipeline()
	epochCmd := pipe.Get(ctx, protocol.HistoryEpochKey(room))
	infoCmd := pipe.XInfoStream(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) && !isNoSuchKey(err) {
		return nil, false, fmt.Errorf("server: read history of %q: %w", room, err)
	}
	epoch := epochCmd.Val()
	// Has trimming removed entries, and which is the oldest kept? An
	// offset older than that one may have lost successors. (Redis 7.0 does
	// not record the largest trimmed id, so an offset that is exactly the
	// last trimmed entry also counts as lost: the client reloads once more
	// than needed, never less.)
	var trimmed, haveFirst bool
	var first streamID
	if info := infoCmd.Val(); info != nil { // nil: no stream
		trimmed = info.EntriesAdded > info.Length
		first, haveFirst = parseStreamID(info.FirstEntry.ID)
	}
	start := "-"
	recovered = true
	if since != "" {
		sinceEpoch, id, ok := parseOffset(since)
		switch {
		case !ok || epoch == "" || sinceEpoch != epoch:
			// Another epoch (the stream was lost) or nothing kept.
			recovered = false
		case trimmed && haveFirst && id.less(first):
			// Entries after the offset may have been trimmed away.
			return nil, false, nil
		default:
			start = "(" + id.String()
		}
	}
	if epoch == "" {
		return nil, recovered, nil
	}
	entries, err := h.rdb.XRange(ctx, key, start, "+").Result()
	if err != nil {
		return nil, false, fmt.Errorf("server: read history of %q: %w", room, err)
	}
	msgs = make([]HistoryMessage, 0, len(entries))
	for _, e := range entries {
		ev, _ := e.Values["e"].(string)
		d, _ := e.Values["d"].(string)
		msgs = append(msgs, HistoryMessage{Offset: epoch + ":" + e.ID, Event: ev, Data: json.RawMessage(d)})
	}
	return msgs, recovered, nil
}

func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// History returns what a history room's stream keeps after offset since
// ("" for all), oldest first, and whether since could be recovered (false:
// another epoch, or older than what is kept).
func (h *Helper) History(ctx context.Context, room, since string) ([]HistoryMessage, bool, error) {
	if err := h.lifeErr(); err != nil {
		return nil, false, err
	}
	if size, _ := h.historyFor(room); size == 0 {
		return nil, false, ErrHistoryOff
	}
	return h.historySince(ctx, room, since)
}

// replayRoom replays the room's history after since to c, which has just
// joined the room in the recovering state. It reports whether the recovery
// is complete and the offset of the last message c has now (for
// releaseRoom).
func (h *Helper) replayRoom(ctx context.Context, c *client, room, since string) (recovered bool, last streamID, haveLast bool) {
	msgs, recovered, err := h.historySince(ctx, room, since)
	if err != nil {
		h.logDebug("history read failed", c.id, err)
		return false, last, false
	}
	if !recovered {
		// Another epoch or trimmed: the client reloads its state; nothing
		// is replayed from a stream it did not see the start of.
		return false, last, false
	}
	if since != "" {
		_, last, haveLast = parseOffset(since)
	}
	for _, hm := range msgs {
		m, err := newFrame(hm.Event, hm.Data, frameExtra{room: room, offset: hm.Offset})
		if err != nil {
			continue
		}
		h.deliverWith(m, []*client{c}, nil, true)
		if _, id, ok := parseOffset(hm.Offset); ok {
			last, haveLast = id, true
		}
	}
	return true, last, haveLast
}

// releaseRoom delivers to c what was held back while its room was
// recovering, newer than last, batch by batch, and makes the room live for
// c once nothing is held back.
func (h *Helper) releaseRoom(c *client, room string, last streamID, haveLast bool) {
	for {
		c.mu.Lock()
		held, recovering := c.recovering[room]
		if len(held) == 0 {
			if recovering {
				delete(c.recovering, room)
				if len(c.recovering) == 0 {
					c.recovering = nil
				}
				if haveLast {
					// The replay may be ahead of the live stream: live
					// copies of replayed messages can still be on their
					// way. Drop them until the stream passes the replay.
					if c.floors == nil {
						c.floors = map[string]streamID{}
					}
					c.floors[room] = last
				}
			}
			c.mu.Unlock()
			return
		}
		c.recovering[room] = nil
		c.mu.Unlock()
		for _, m := range held {
			if haveLast {
				if _, id, ok := parseOffset(m.offset); ok && !last.less(id) {
					continue // replayed already
				}
			}
			h.deliverWith(m, []*client{c}, nil, true)
		}
	}
}

// decodeSince reads the optional "since" of a join: {room: offset}.
func decodeSince(data json.RawMessage) (map[string]string, bool) {
	var body struct {
		Since json.RawMessage `json:"since"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return nil, false
	}
	if len(body.Since) == 0 || string(body.Since) == "null" {
		return nil, true
	}
	var since map[string]string
	if body.Since[0] != '{' || json.Unmarshal(body.Since, &since) != nil {
		return nil, false
	}
	return since, true
}

// holdOrDropLocked applies a recovery to a live history-room message for c
// (c.mu held): it is held back while the room is being recovered, or
// dropped when a replay already gave it; it reports whether either
// happened.
func (c *client) holdOrDropLocked(m *message) bool {
	if held, ok := c.recovering[m.room]; ok {
		c.recovering[m.room] = append(held, m)
		return true
	}
	floor, ok := c.floors[m.room]
	if !ok {
		return false
	}
	if _, id, ok := parseOffset(m.offset); ok && !floor.less(id) {
		return true
	}
	delete(c.floors, m.room) // the live stream has passed the replay
	if len(c.floors) == 0 {
		c.floors = nil
	}
	return false
}
