package server

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// Instance-side catch-up after a Redis gap (issue 14). Redis Pub/Sub is at
// most once: what was published while this instance's subscription was
// down never reaches it. For history rooms the stream still has it, so the
// instance remembers, per history room with local members, the offset of
// the last message it delivered; when the subscription comes back it holds
// back live messages of those rooms, reads each stream after its offset,
// delivers what it missed in order, then releases the held-back messages
// newer than that. Live messages at or below a room's offset are always
// dropped, so nothing is delivered twice. For everything else the gap can
// only be made visible: with Config.GapNotice every local client is told
// {"event":"gap","data":{"from","to"}}.

// historyState is the instance's per-room position in the history streams.
type historyState struct {
	mu   sync.Mutex
	last map[string]string // room → offset of the last message delivered here
	// seeds is, for rooms that have had nothing delivered here yet, where
	// a catch-up would start: the stream's end when their first member
	// joined. It never drops a live message (only last does).
	seeds map[string]string
	// catching holds, per room being caught up, the live messages that
	// arrived meanwhile.
	catching map[string][]*message
}

// admit decides what happens to a history-room message from the
// subscription: delivered now (true), held back for a catch-up, or dropped
// as already delivered.
func (s *historyState) admit(m *message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if held, ok := s.catching[m.room]; ok {
		s.catching[m.room] = append(held, m)
		return false
	}
	return s.advanceLocked(m.room, m.offset)
}

// advanceLocked records offset as delivered for room unless it is not newer
// than what was delivered already (same epoch); a new epoch starts afresh.
func (s *historyState) advanceLocked(room, offset string) bool {
	if last, ok := s.last[room]; ok {
		lastEpoch, lastID, _ := parseOffset(last)
		epoch, id, _ := parseOffset(offset)
		if epoch == lastEpoch && !lastID.less(id) {
			return false
		}
	}
	if s.last == nil {
		s.last = map[string]string{}
	}
	s.last[room] = offset
	return true
}

// seed records a starting position for a room that has none yet (its
// first local member just joined), so that a gap before its first message
// can still be caught up. "-" means "from the start of the stream".
func (s *historyState) seed(room, offset string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seeds == nil {
		s.seeds = map[string]string{}
	}
	if _, ok := s.seeds[room]; !ok {
		s.seeds[room] = offset
	}
}

// seedHistory gives a history room with local members a position in its
// stream: the stream's last entry, or its start when it has none.
func (h *Helper) seedHistory(ctx context.Context, room string) {
	if size, _ := h.historyFor(room); size == 0 {
		return
	}
	h.hist.mu.Lock()
	_, delivered := h.hist.last[room]
	_, seeded := h.hist.seeds[room]
	h.hist.mu.Unlock()
	if delivered || seeded {
		return
	}
	pipe := h.rdb.Pipeline()
	epochCmd := pipe.Get(ctx, protocol.HistoryEpochKey(room))
	lastCmd := pipe.XRevRangeN(ctx, protocol.HistoryKey(room), "+", "-", 1)
	_, _ = pipe.Exec(ctx)
	offset := "-"
	if epoch := epochCmd.Val(); epoch != "" {
		offset = epoch + ":0-0"
		if entries := lastCmd.Val(); len(entries) == 1 {
			offset = epoch + ":" + entries[0].ID
		}
	}
	h.hist.seed(room, offset)
}

// forget drops a room this instance no longer has members in.
func (s *historyState) forget(room string) {
	s.mu.Lock()
	delete(s.last, room)
	delete(s.seeds, room)
	s.mu.Unlock()
}

// startCatchUp marks every known room as catching up and returns their
// offsets.
func (s *historyState) startCatchUp() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.last) == 0 && len(s.seeds) == 0 {
		return nil
	}
	rooms := make(map[string]string, len(s.last)+len(s.seeds))
	for room, off := range s.seeds {
		rooms[room] = off
	}
	for room, off := range s.last {
		rooms[room] = off // what was delivered wins over the seed
	}
	if s.catching == nil {
		s.catching = map[string][]*message{}
	}
	for room := range rooms {
		if _, already := s.catching[room]; already {
			delete(rooms, room)
			continue
		}
		s.catching[room] = nil
	}
	return rooms
}

// afterGap runs when the subscription is back after an outage from..to:
// it starts the catch-up of the history rooms and tells local clients
// about the gap when GapNotice is set. It runs on the bus's goroutine.
func (h *Helper) afterGap(from, to time.Time) {
	if rooms := h.hist.startCatchUp(); len(rooms) > 0 {
		if !h.bg.tryGo(func() { h.catchUp(rooms) }) {
			return // shutting down
		}
	}
	if h.cfg.GapNotice {
		h.noticeGap(from, to)
	}
}

// catchUp delivers what the rooms missed, room by room, then releases what
// was held back meanwhile.
func (h *Helper) catchUp(rooms map[string]string) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.RedisTimeout)
	defer cancel()
	names := make([]string, 0, len(rooms))
	chans := make([]string, 0, len(rooms))
	for room := range rooms {
		names = append(names, room)
		chans = append(chans, protocol.ChannelRoom(room))
	}
	sort.Strings(names)
	// Read the streams only once the rooms' channels are subscribed again,
	// so that nothing published later can fall between the read and the
	// live messages.
	h.bus.Await(ctx, chans)
	caught := 0
	for _, room := range names {
		caught += h.catchUpRoom(ctx, room, rooms[room])
	}
	h.stats.catchUpMessages.Add(uint64(caught))
	h.log.Info("history rooms caught up after a Redis gap",
		zap.Int("rooms", len(names)), zap.Int("messages", caught), zap.Duration("took", time.Since(start)))
}

// catchUpRoom replays one room after last and releases its held-back
// messages; it returns how many missed messages it delivered.
func (h *Helper) catchUpRoom(ctx context.Context, room, last string) int {
	if last == "-" {
		last = "" // no stream when the room got its first member: all of it
	}
	msgs, recovered, err := h.historySince(ctx, room, last)
	if err != nil {
		h.log.Warn("history catch-up failed; the room's missed messages are lost here",
			zap.String("room", room), zap.Error(err))
		recovered, msgs = false, nil
	} else if !recovered {
		// The stream was lost (another epoch) or trimmed past our offset:
		// members must reload; they get what the stream has now.
		if msgs, _, err = h.historySince(ctx, room, ""); err != nil {
			msgs = nil
		}
	}
	if !recovered {
		h.tellRecovered(room, false)
	}
	n := 0
	for _, hm := range msgs {
		if h.deliverCaughtUp(room, hm.Event, hm.Data, hm.Offset) {
			n++
		}
	}
	// Release, batch by batch; the room is live again once nothing waits.
	for {
		h.hist.mu.Lock()
		held := h.hist.catching[room]
		if len(held) == 0 {
			delete(h.hist.catching, room)
			h.hist.mu.Unlock()
			return n
		}
		h.hist.catching[room] = nil
		h.hist.mu.Unlock()
		for _, m := range held {
			h.deliverCaughtUp(room, m.event, m.data, m.offset)
		}
	}
}

// deliverCaughtUp delivers one message of a room being caught up unless it
// was delivered already.
func (h *Helper) deliverCaughtUp(room, event string, data json.RawMessage, offset string) bool {
	h.hist.mu.Lock()
	fresh := h.hist.advanceLocked(room, offset)
	h.hist.mu.Unlock()
	if !fresh {
		return false
	}
	m, err := newFrame(event, data, frameExtra{room: room, offset: offset})
	if err != nil {
		return false
	}
	h.deliverRoom(m, room, nil, false)
	return true
}

// tellRecovered sends the room's local members
// {"event":"recovery","data":{"recovered":{room:false}}}: the signal a
// join's ack gives (SPEC §9.5), for a loss the server found itself.
func (h *Helper) tellRecovered(room string, ok bool) {
	b, _ := json.Marshal(protocol.OutMessage{Event: protocol.EventRecovery,
		Data: map[string]any{"recovered": map[string]bool{room: ok}}})
	h.mu.RLock()
	cs := collect(h.rooms[room])
	h.mu.RUnlock()
	for _, c := range cs {
		if st, _ := c.getState(); st == protocol.StateAuthenticated {
			c.sendSystem(b)
		}
	}
}

// noticeGap tells every authenticated local client that messages may have
// been lost between from and to.
func (h *Helper) noticeGap(from, to time.Time) {
	b, _ := json.Marshal(protocol.OutMessage{Event: protocol.EventGap, Data: protocol.GapData{
		From: from.UTC().Format(protocol.TimeFormat), To: to.UTC().Format(protocol.TimeFormat)}})
	for _, c := range h.allClients() {
		if st, _ := c.getState(); st == protocol.StateAuthenticated {
			c.sendSystem(b)
		}
	}
}
