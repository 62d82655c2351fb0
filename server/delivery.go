package server

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// message is one application message on its way out: encoded once; its
// bytes are shared by every plain recipient.
type message struct {
	event string
	data  json.RawMessage // nil: the frame has no data
	id    string          // the request id a reply answers, or ""
	// room and offset are set on history-room messages (SPEC §9.5).
	room, offset string
	frame        []byte // the JSON text: the frame's payload
	wire         []byte // the whole WebSocket frame: header, then frame

	deflateOnce sync.Once
	dwire       []byte // the compressed frame, for permessage-deflate clients
}

// deflated returns the message as one compressed frame, made once for every
// connection that negotiated permessage-deflate.
func (m *message) deflated() []byte {
	m.deflateOnce.Do(func() { m.dwire = deflateFrame(m.frame) })
	return m.dwire
}

// newMessage encodes event and data. data may be json.RawMessage or []byte
// holding JSON, which are used as they are.
func newMessage(event string, data any) (*message, error) {
	if event == "" {
		return nil, ErrEmptyEvent
	}
	var raw json.RawMessage
	switch d := data.(type) {
	case nil:
	case json.RawMessage:
		raw = d
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("server: encode data of %q: %w", event, err)
		}
		raw = b
	}
	return newRawMessage(event, raw)
}

func newRawMessage(event string, raw json.RawMessage) (*message, error) {
	return newFrame(event, raw, frameExtra{})
}

// newRawMessageID is newRawMessage for a frame that answers a request: id
// ("" for none) goes in the frame's "id".
func newRawMessageID(event string, raw json.RawMessage, id string) (*message, error) {
	return newFrame(event, raw, frameExtra{id: id})
}

// frameExtra is what a frame may carry besides event and data: the id of
// the request it answers, or the room and stream offset of a history-room
// message (SPEC §9.5).
type frameExtra struct {
	id, room, offset string
}

// newFrame encodes {"event","data"?,"id"?,"room"?,"offset"?} once, with
// the WebSocket frame header in front.
func newFrame(event string, raw json.RawMessage, x frameExtra) (*message, error) {
	ev, err := json.Marshal(event)
	if err != nil {
		return nil, fmt.Errorf("server: encode event: %w", err)
	}
	var fields [3][2][]byte // key, JSON value
	nf := 0
	for _, kv := range [3][2]string{{`"id"`, x.id}, {`"room"`, x.room}, {`"offset"`, x.offset}} {
		if kv[1] != "" {
			v, _ := json.Marshal(kv[1])
			fields[nf] = [2][]byte{[]byte(kv[0]), v}
			nf++
		}
	}
	n := len(`{"event":}`) + len(ev)
	if raw != nil {
		n += len(`,"data":`) + len(raw)
	}
	for _, f := range fields[:nf] {
		n += 2 + len(f[0]) + len(f[1])
	}
	// The frame header goes in front of the payload, in the same buffer,
	// so that the raw path writes a whole frame from one slice.
	hdr := appendHeader(make([]byte, 0, maxHeader+n), opText, n)
	frame := hdr[len(hdr):]
	frame = append(frame, `{"event":`...)
	frame = append(frame, ev...)
	if raw != nil {
		frame = append(frame, `,"data":`...)
		frame = append(frame, raw...)
	}
	for _, f := range fields[:nf] {
		frame = append(frame, ',')
		frame = append(frame, f[0]...)
		frame = append(frame, ':')
		frame = append(frame, f[1]...)
	}
	frame = append(frame, '}')
	if raw != nil && !json.Valid(raw) {
		return nil, fmt.Errorf("server: data of %q is not valid JSON", event)
	}
	return &message{event: event, data: raw, id: x.id, room: x.room, offset: x.offset,
		frame: frame, wire: hdr[:len(hdr)+len(frame)]}, nil
}

// transformJob is one encrypted recipient of a message.
type transformJob struct {
	c    *client
	slot *pendingFrame
}

// deliver queues m for every recipient that is authenticated and not in
// exclude (a history-room message for a client still recovering that room
// is held back for it, see holdOrDropLocked), and writes it to each socket right away unless someone is
// already writing there (see outbox). It never blocks on a socket and
// allocates nothing per plain recipient: they share m's bytes; encrypted
// ones get an ordered slot that transform workers fill. A large fan-out is
// split over up to GOMAXPROCS goroutines, so that the writes run on every
// core; deliver returns once each recipient has the message queued or
// written.
func (h *Helper) deliver(m *message, recipients []*client, exclude map[string]struct{}) int {
	return h.deliverWith(m, recipients, exclude, false)
}

// deliverWith is deliver; replay is set by a recovery, whose messages go
// to a client whose room is still recovering (others are held back for it).
func (h *Helper) deliverWith(m *message, recipients []*client, exclude map[string]struct{}, replay bool) int {
	if len(recipients) == 0 {
		return 0
	}
	parts := min(runtime.GOMAXPROCS(0), len(recipients)/minPerDeliveryWorker)
	var res delivery
	if parts <= 1 {
		h.deliverPart(m, recipients, exclude, replay, &res)
	} else {
		results := make([]delivery, parts)
		per := (len(recipients) + parts - 1) / parts
		var wg sync.WaitGroup
		for i := 1; i < parts; i++ {
			part := recipients[min(i*per, len(recipients)):min((i+1)*per, len(recipients))]
			wg.Add(1)
			work := func() {
				defer wg.Done()
				h.deliverPart(m, part, exclude, replay, &results[i])
			}
			if !h.conns.tryGo(work) {
				work() // stopping: no new goroutines; do it here
			}
		}
		h.deliverPart(m, recipients[:per], exclude, replay, &results[0])
		wg.Wait()
		for i := range results {
			res.delivered += results[i].delivered
			res.jobs = append(res.jobs, results[i].jobs...)
		}
	}
	h.stats.out.Add(uint64(res.delivered))
	if len(res.jobs) > 0 {
		h.runTransforms(m, res.jobs)
	}
	return res.delivered
}

// minPerDeliveryWorker is the fewest recipients worth a delivery goroutine
// of their own: below it, starting one costs more than the writes it takes
// over.
const minPerDeliveryWorker = 64

// delivery is what one part of a fan-out did.
type delivery struct {
	delivered int
	jobs      []transformJob
}

// deliverPart queues and writes m for recipients (see deliver).
func (h *Helper) deliverPart(m *message, recipients []*client, exclude map[string]struct{}, replay bool, res *delivery) {
	transform := h.opts.OutboundTransformer != nil
	for _, c := range recipients {
		if exclude != nil {
			if _, skip := exclude[c.id]; skip {
				continue
			}
		}
		f := frame{kind: frameShared, size: len(m.frame), msg: m}
		// The state and the encryption switch are read under c.mu and the
		// frame queued in the same step, so that nothing queued after
		// "connected" or an encryption switch overtakes it.
		c.mu.Lock()
		if c.closing || c.state != protocol.StateAuthenticated {
			c.mu.Unlock()
			continue
		}
		if m.room != "" && !replay && (c.recovering != nil || c.floors != nil) && c.holdOrDropLocked(m) {
			c.mu.Unlock()
			continue
		}
		if c.encrypted && transform {
			f = frame{kind: framePending, size: len(m.frame), pending: &pendingFrame{}}
		}
		r := c.out.push(f)
		c.mu.Unlock()
		if r != pushQueued {
			c.pushed(r)
			continue
		}
		res.delivered++
		if f.pending != nil {
			res.jobs = append(res.jobs, transformJob{c: c, slot: f.pending})
			continue // its transform worker writes it
		}
		c.out.flush()
	}
}

// runTransforms fills the slots of jobs with at most EncryptedBatchLimit
// transformer calls in flight. The workers are counted by the Helper; if it
// is stopping, the slots are released empty (the message is dropped).
func (h *Helper) runTransforms(m *message, jobs []transformJob) {
	workers := min(h.cfg.EncryptedBatchLimit, len(jobs))
	var next atomic.Int64
	work := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= len(jobs) {
				return
			}
			h.transform(m, jobs[i])
		}
	}
	started := 0
	for range workers {
		if !h.conns.tryGo(work) {
			break
		}
		started++
	}
	if started == 0 {
		// Stopping: nobody may run the transformer any more, and running
		// it here would block the caller. The message is dropped.
		for _, j := range jobs {
			h.stats.dropped.Add(1)
			j.c.out.fill(j.slot, nil)
			j.c.out.flush()
		}
	}
}

// transform runs the OutboundTransformer for one recipient, fills its slot
// and writes what that made ready.
func (h *Helper) transform(m *message, j transformJob) {
	var out []byte // nil: dropped
	defer func() {
		j.c.out.fill(j.slot, out)
		j.c.out.flush()
	}()
	data := m.data
	if data == nil {
		data = json.RawMessage("null")
	}
	req := OutboundRequest{Client: j.c.info(), Event: m.event, ID: m.id, Data: data}
	var res *OutboundResult
	err := h.callback("outbound transformer", j.c.id, func() error {
		var err error
		res, err = h.opts.OutboundTransformer(j.c.ctx, req)
		return err
	})
	if err != nil {
		h.stats.dropped.Add(1)
		return
	}
	if res == nil {
		out = m.frame
		return
	}
	msg, err := newMessage(res.Event, res.Data)
	if err == nil && (m.id != "" || m.offset != "") {
		// The request id and a history room's position stay outside the
		// envelope: the client needs them to match replies and to recover.
		msg, err = newFrame(res.Event, msg.data, frameExtra{id: m.id, room: m.room, offset: m.offset})
	}
	if err != nil {
		h.stats.dropped.Add(1)
		h.log.Warn("outbound transformer result not encodable", zap.String("client_id", j.c.id), zap.Error(err))
		return
	}
	out = msg.frame
}

// SendToClient sends to one local client. It returns ErrClientNotFound when
// no local client has that id; a client that is not authenticated yet
// receives nothing.
func (h *Helper) SendToClient(clientID, event string, data any) error {
	m, err := newMessage(event, data)
	if err != nil {
		return err
	}
	c, ok := h.lookup(clientID)
	if !ok {
		return ErrClientNotFound
	}
	h.deliver(m, []*client{c}, nil)
	return nil
}

// SendToUser sends to every local session of a user.
func (h *Helper) SendToUser(userID, event string, data any) error {
	m, err := newMessage(event, data)
	if err != nil {
		return err
	}
	h.deliverUser(m, userID, nil)
	return nil
}

// SendToRoom sends to every local member of a room except the clients in
// exclude.
func (h *Helper) SendToRoom(room, event string, data any, exclude ...string) error {
	m, err := newMessage(event, data)
	if err != nil {
		return err
	}
	h.deliverRoom(m, room, toSet(exclude), false)
	return nil
}

// Broadcast sends to every authenticated local client except those in
// exclude.
func (h *Helper) Broadcast(event string, data any, exclude ...string) error {
	m, err := newMessage(event, data)
	if err != nil {
		return err
	}
	h.deliverBroadcast(m, toSet(exclude))
	return nil
}

func (h *Helper) deliverUser(m *message, userID string, exclude map[string]struct{}) int {
	h.mu.RLock()
	cs := collect(h.users[userID])
	h.mu.RUnlock()
	return h.deliver(m, cs, exclude)
}

// deliverRoom delivers to a room's local members. When targetClient is set
// and room is a local client's id, only that client gets the message: an
// Ignis server publishes messages for unknown destinations as room messages,
// and nobody else may read a client's own-id room.
func (h *Helper) deliverRoom(m *message, room string, exclude map[string]struct{}, targetClient bool) int {
	h.mu.RLock()
	var cs []*client
	if c, ok := h.clients[room]; ok && targetClient {
		cs = []*client{c}
	} else {
		cs = collect(h.rooms[room])
	}
	h.mu.RUnlock()
	return h.deliver(m, cs, exclude)
}

func (h *Helper) deliverClient(m *message, clientID string, exclude map[string]struct{}) int {
	c, ok := h.lookup(clientID)
	if !ok {
		return 0
	}
	return h.deliver(m, []*client{c}, exclude)
}

func (h *Helper) deliverBroadcast(m *message, exclude map[string]struct{}) int {
	return h.deliver(m, h.allClients(), exclude)
}

func toSet(ids []string) map[string]struct{} {
	if len(ids) == 0 {
		return nil
	}
	s := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		s[id] = struct{}{}
	}
	return s
}

// Send delivers locally and publishes on Redis so that every instance
// delivers too. destination "" broadcasts; a local client id targets that
// client; a local room targets the room; anything else is published as a
// room message, since the target may live on another instance (own-id rooms
// make client ids reachable that way).
//
// A nil error means Redis took the message (see the README's delivery
// guarantees). If publishing fails after the local delivery, the error is a
// *PublishError: do not call Send again for the same message (local
// clients would get it twice); use its RetryPublish. The same holds for the
// Publish… methods.
func (h *Helper) Send(ctx context.Context, destination, event string, data any) error {
	m, err := newMessage(event, data)
	if err != nil {
		return err
	}
	if destination == "" {
		n := h.deliverBroadcast(m, nil)
		return h.publish(ctx, protocol.TypeBroadcast, "", m, nil, n)
	}
	if _, ok := h.lookup(destination); ok {
		n := h.deliverClient(m, destination, nil)
		return h.publish(ctx, protocol.TypeClient, destination, m, nil, n)
	}
	if size, ttl := h.historyFor(destination); size > 0 {
		return h.publishHistory(ctx, destination, m, nil, size, ttl)
	}
	n := h.deliverRoom(m, destination, nil, false)
	return h.publish(ctx, protocol.TypeRoom, destination, m, nil, n)
}

// PublishToUser reaches every session of a user on every instance: it
// delivers locally and publishes on ws:user:{userID}. On a *PublishError
// the local sessions have the message: retry with its RetryPublish, not by
// calling PublishToUser again.
func (h *Helper) PublishToUser(ctx context.Context, userID, event string, data any) error {
	m, err := newMessage(event, data)
	if err != nil {
		return err
	}
	n := h.deliverUser(m, userID, nil)
	return h.publish(ctx, protocol.TypeUser, userID, m, nil, n)
}

// PublishToRoom reaches a room's members on every instance, except the
// clients in exclude. On a *PublishError the local members have the
// message: retry with its RetryPublish, not by calling PublishToRoom again.
func (h *Helper) PublishToRoom(ctx context.Context, room, event string, data any, exclude ...string) error {
	m, err := newMessage(event, data)
	if err != nil {
		return err
	}
	if size, ttl := h.historyFor(room); size > 0 {
		// Appended and published in one step, delivered to every member
		// (here too) from the subscription, in stream order.
		return h.publishHistory(ctx, room, m, exclude, size, ttl)
	}
	n := h.deliverRoom(m, room, toSet(exclude), false)
	return h.publish(ctx, protocol.TypeRoom, room, m, exclude, n)
}

// PublishToClient reaches one client on whichever instance holds it. On a
// *PublishError a local client has the message: retry with its
// RetryPublish, not by calling PublishToClient again.
func (h *Helper) PublishToClient(ctx context.Context, clientID, event string, data any) error {
	m, err := newMessage(event, data)
	if err != nil {
		return err
	}
	n := h.deliverClient(m, clientID, nil)
	return h.publish(ctx, protocol.TypeClient, clientID, m, nil, n)
}

// PublishBroadcast reaches every authenticated client on every instance,
// except the clients in exclude. On a *PublishError the local clients have
// the message: retry with its RetryPublish, not by calling PublishBroadcast
// again.
func (h *Helper) PublishBroadcast(ctx context.Context, event string, data any, exclude ...string) error {
	m, err := newMessage(event, data)
	if err != nil {
		return err
	}
	n := h.deliverBroadcast(m, toSet(exclude))
	return h.publish(ctx, protocol.TypeBroadcast, "", m, exclude, n)
}
