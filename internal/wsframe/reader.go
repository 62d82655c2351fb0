package wsframe

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// DefaultMaxMessageSize is the message size limit of a Reader whose
// Config.MaxMessageSize is zero. It matches the server's default
// MaxPayloadLength.
const DefaultMaxMessageSize = 128 << 10

// Kind is what an Event carries. Its values are the RFC 6455 opcodes, the
// same numbers as gorilla/websocket's message types.
type Kind uint8

// Event kinds. KindNone means that the bytes given so far hold no complete
// event.
const (
	KindNone   Kind = 0
	KindText   Kind = 1
	KindBinary Kind = 2
	KindClose  Kind = 8
	KindPing   Kind = 9
	KindPong   Kind = 10
)

// Event is one complete thing received from the client: a data message
// with its fragments reassembled, or a control frame.
//
// Payload is the message, the ping or pong payload, or the close reason. It
// points into the slice given to Next, or into a buffer that the Reader has
// already let go of; either way it is valid only until the next call to
// Next or until the caller reuses its read buffer, whichever comes first.
// Copy it to keep it.
type Event struct {
	Kind    Kind
	Payload []byte
	// Code is the close code of a KindClose event: CloseNoStatus when the
	// close frame had no payload. Zero for other kinds.
	Code int
}

// Config holds the Reader settings. A zero field means the default.
type Config struct {
	// MaxMessageSize is the largest data message accepted, in bytes after
	// reassembly. A frame that would take the message over it fails with
	// CloseMessageTooBig as soon as its header is complete, before any of its
	// payload is buffered. Default DefaultMaxMessageSize; negative means no
	// limit.
	MaxMessageSize int64
}

type state uint8

const (
	stHead0   state = iota // expecting the first header byte
	stHead1                // expecting the second header byte
	stExtLen               // collecting the 16- or 64-bit payload length
	stMaskKey              // collecting the masking key
	stPayload              // inside the payload; remaining bytes to go
	stClosed               // a close frame was received
	stFailed               // a protocol error was returned; failed says which
)

// Opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

const (
	finBit          = 0x80
	rsvBits         = 0x70
	opcodeBits      = 0x0F
	maskBit         = 0x80
	maxControlBytes = 125
)

// Reader parses the client side of one RFC 6455 connection (server role:
// every frame must be masked; no extension is negotiated). It is fed bytes
// as they arrive and returns complete events; it never reads from or
// writes to the connection, and it holds no buffer between messages.
//
// A Reader is not safe for concurrent use: it belongs to whichever
// goroutine currently processes the connection's input. The zero value is
// ready to use with the default Config.
type Reader struct {
	// buf holds the message received so far while a data message spans
	// frames or calls to Next; a control frame split between calls is
	// collected in its spare capacity. nil otherwise: an idle Reader holds
	// no buffer.
	buf []byte
	// remaining is the current frame's payload still to come; while
	// collecting an extended length, the length assembled so far.
	remaining uint64
	limit     int64 // Config.MaxMessageSize as given (0 means the default)
	mask      [4]byte
	state     state
	need      uint8     // header bytes still to collect in stExtLen and stMaskKey
	head      byte      // first header byte of the current frame
	ctlLen    uint8     // payload length of the current control frame
	msgOp     uint8     // opcode of the data message in progress; 0 when none
	utf8      utf8State // validation of the text message in progress
	maskPos   uint8     // offset in the masking key of the next payload byte
	failed    cause     // set in stFailed
}

// NewReader returns a Reader with the given configuration. A Reader can
// also be embedded in a connection struct by value and configured with
// Init, which saves an allocation per connection.
func NewReader(cfg Config) *Reader {
	r := &Reader{}
	r.Init(cfg)
	return r
}

// Init resets r to the start of a connection with the given configuration.
func (r *Reader) Init(cfg Config) {
	*r = Reader{limit: cfg.MaxMessageSize}
}

// Idle reports whether r is between messages: no frame and no fragmented
// message is partly received. An idle Reader holds no buffer, and a
// connection that ends there ended cleanly.
func (r *Reader) Idle() bool {
	return r.state == stHead0 && r.msgOp == 0
}

// Buffered returns the bytes of buffer r currently holds (its capacity), for
// memory accounting: zero when idle.
func (r *Reader) Buffered() int {
	return cap(r.buf)
}

// Next parses p, which holds the next bytes received from the client, and
// returns the first complete event found in it together with the number of
// bytes of p consumed. The caller passes the rest, p[n:], to the following
// call. When p completes no event, Next consumes all of it, keeps what it
// needs of a partial frame (a few header bytes, or the payload of a message
// that is not complete yet), and returns KindNone.
//
// Next unmasks payload bytes in place: p must be writable, and its contents
// are changed. A data message or control frame that lies wholly in p is
// returned without a copy (Event.Payload points into p).
//
// A *ProtocolError reports a violation; it carries the close code to send,
// and every later call returns it again. After a KindClose event Next
// returns ErrClosed. The caller sends the close frames: Next never writes.
func (r *Reader) Next(p []byte) (n int, ev Event, err error) {
	switch r.state {
	case stFailed:
		return 0, Event{}, r.failed.err()
	case stClosed:
		return 0, Event{}, ErrClosed
	}
	for {
		switch r.state {
		case stHead0:
			if n == len(p) {
				return n, Event{}, nil
			}
			r.head = p[n]
			n++
			r.state = stHead1
		case stHead1:
			if n == len(p) {
				return n, Event{}, nil
			}
			b := p[n]
			n++
			// Both bytes are checked together, as gorilla does, so that a
			// stream cut after the first byte ends the same way in both.
			if c := r.checkHeader(b); c != causeNone {
				return n, Event{}, r.fail(c)
			}
			r.remaining = 0
			switch l := b &^ maskBit; l {
			case 126:
				r.need, r.state = 2, stExtLen
			case 127:
				r.need, r.state = 8, stExtLen
			default:
				// Non-minimal encodings of the extended lengths are accepted,
				// as gorilla and most servers do: RFC 6455 says "minimal number
				// of bytes MUST be used" but gives no failure for it.
				r.remaining = uint64(l)
				r.need, r.state = 4, stMaskKey
			}
		case stExtLen:
			for r.need > 0 && n < len(p) {
				r.remaining = r.remaining<<8 | uint64(p[n])
				n++
				r.need--
			}
			if r.need > 0 {
				return n, Event{}, nil
			}
			if r.remaining > math.MaxInt64 {
				return n, Event{}, r.fail(causeLength)
			}
			r.need, r.state = 4, stMaskKey
		case stMaskKey:
			for r.need > 0 && n < len(p) {
				r.mask[4-r.need] = p[n]
				n++
				r.need--
			}
			if r.need > 0 {
				return n, Event{}, nil
			}
			if c := r.beginPayload(); c != causeNone {
				return n, Event{}, r.fail(c)
			}
			r.state = stPayload
		case stPayload:
			m, ev, c := r.payload(p[n:])
			n += m
			if c != causeNone {
				return n, Event{}, r.fail(c)
			}
			if ev.Kind != KindNone {
				return n, ev, nil
			}
			if r.state == stPayload { // the frame goes on in the next p
				return n, Event{}, nil
			}
		default:
			panic("wsframe: unreachable reader state")
		}
	}
}

// checkHeader checks the first two header bytes: r.head and b.
func (r *Reader) checkHeader(b byte) cause {
	h := r.head
	if h&rsvBits != 0 {
		return causeReservedBits
	}
	switch h & opcodeBits {
	case opClose, opPing, opPong:
		if h&finBit == 0 {
			return causeControlFragmented
		}
		if b&^maskBit > maxControlBytes {
			return causeControlTooLong
		}
	case opText, opBinary:
		if r.msgOp != 0 {
			return causeExpectedContinuation
		}
	case opContinuation:
		if r.msgOp == 0 {
			return causeContinuation
		}
	default:
		return causeOpcode
	}
	if b&maskBit == 0 {
		return causeUnmasked
	}
	return causeNone
}

// beginPayload runs once a header is complete, before any payload byte.
func (r *Reader) beginPayload() cause {
	r.maskPos = 0
	op := r.head & opcodeBits
	if op >= opClose {
		r.ctlLen = uint8(r.remaining)
		return causeNone
	}
	if op != opContinuation {
		r.msgOp, r.utf8 = op, utf8Accept
	}
	// The limit is checked on the declared length, so that nothing of a
	// message that will not fit is ever buffered. remaining fits in int64,
	// so the sum cannot wrap.
	size := uint64(len(r.buf)) + r.remaining
	if limit := r.maxSize(); limit > 0 && size > uint64(limit) {
		return causeTooBig
	}
	return causeNone
}

// maxSize is the message size limit; negative means none.
func (r *Reader) maxSize() int64 {
	if r.limit == 0 {
		return DefaultMaxMessageSize
	}
	return r.limit
}

// payload consumes payload bytes of the current frame from p.
func (r *Reader) payload(p []byte) (n int, ev Event, c cause) {
	if len(p) == 0 && r.remaining > 0 {
		// The header ended p: wait for payload bytes before deciding between
		// returning the payload in place and collecting it.
		return 0, Event{}, causeNone
	}
	if r.head&opcodeBits >= opClose {
		return r.controlPayload(p)
	}
	fin := r.head&finBit != 0
	if fin && len(r.buf) == 0 && uint64(len(p)) >= r.remaining {
		// The whole message is in p: return it in place. len(r.buf) == 0
		// means no byte of the message was seen before (earlier fragments,
		// if any, were empty), so the UTF-8 state is at a boundary.
		n = int(r.remaining)
		r.remaining = 0
		data := p[:n:n]
		maskBytes(r.mask, 0, data)
		if r.msgOp == opText && !utf8.Valid(data) {
			return n, Event{}, causeTextUTF8
		}
		ev = Event{Kind: Kind(r.msgOp), Payload: data}
		r.endMessage()
		return n, ev, causeNone
	}
	n = len(p)
	if uint64(n) > r.remaining {
		n = int(r.remaining)
	}
	chunk := p[:n]
	r.maskPos = maskBytes(r.mask, r.maskPos, chunk)
	if r.msgOp == opText {
		// Checked before the copy, on every chunk: an invalid prefix fails
		// the connection as soon as it arrives, even mid-frame.
		if r.utf8 = r.utf8.feed(chunk); r.utf8 == utf8Reject {
			return n, Event{}, causeTextUTF8
		}
	}
	r.appendData(chunk)
	r.remaining -= uint64(n)
	if r.remaining > 0 {
		return n, Event{}, causeNone
	}
	r.state = stHead0
	if !fin {
		return n, Event{}, causeNone
	}
	if r.msgOp == opText && r.utf8 != utf8Accept {
		return n, Event{}, causeTextUTF8
	}
	ev = Event{Kind: Kind(r.msgOp), Payload: r.buf}
	r.endMessage()
	return n, ev, causeNone
}

// appendData appends message bytes to r.buf. The buffer grows
// geometrically, so many small fragments cost amortised linear copying, but
// it never holds more than twice what the client actually sent (or 512
// bytes): a client that declares a large frame and sends it slowly does not
// get the declared size allocated up front. It never grows past the end of
// a final frame, nor past the message size limit.
func (r *Reader) appendData(chunk []byte) {
	if len(chunk) <= cap(r.buf)-len(r.buf) {
		r.buf = append(r.buf, chunk...)
		return
	}
	need := uint64(len(r.buf) + len(chunk))
	want := max(uint64(2*cap(r.buf)), need, 512)
	bound := uint64(len(r.buf)) + r.remaining // end of this frame
	if r.head&finBit == 0 {
		bound = math.MaxUint64
		if limit := r.maxSize(); limit > 0 {
			bound = uint64(limit)
		}
	}
	want = min(want, max(bound, need))
	nb := make([]byte, len(r.buf), int(want))
	copy(nb, r.buf)
	r.buf = append(nb, chunk...)
}

// endMessage forgets the message just returned: the event now holds the
// only reference to its buffer.
func (r *Reader) endMessage() {
	r.state = stHead0
	r.msgOp = 0
	r.buf = nil
}

// controlPayload consumes the payload of a ping, pong or close frame.
func (r *Reader) controlPayload(p []byte) (n int, ev Event, c cause) {
	var data []byte
	if got := uint64(r.ctlLen) - r.remaining; got == 0 && uint64(len(p)) >= r.remaining {
		n = int(r.remaining)
		r.remaining = 0
		data = p[:n:n]
		maskBytes(r.mask, 0, data)
	} else {
		// Split between calls: collect it after the message in progress,
		// in buf's spare capacity, so that the Reader needs no field for it.
		l := int(r.ctlLen)
		if got == 0 && cap(r.buf)-len(r.buf) < l {
			nb := make([]byte, len(r.buf), len(r.buf)+l)
			copy(nb, r.buf)
			r.buf = nb
		}
		n = len(p)
		if uint64(n) > r.remaining {
			n = int(r.remaining)
		}
		region := r.buf[len(r.buf) : len(r.buf)+l]
		dst := region[got : int(got)+n]
		copy(dst, p[:n])
		r.maskPos = maskBytes(r.mask, r.maskPos, dst)
		r.remaining -= uint64(n)
		if r.remaining > 0 {
			return n, Event{}, causeNone
		}
		data = region[:l:l]
		if r.msgOp == 0 {
			r.buf = nil
		}
	}
	r.state = stHead0
	switch r.head & opcodeBits {
	case opPing:
		return n, Event{Kind: KindPing, Payload: data}, causeNone
	case opPong:
		return n, Event{Kind: KindPong, Payload: data}, causeNone
	}
	switch len(data) {
	case 0:
		ev = Event{Kind: KindClose, Code: CloseNoStatus}
	case 1:
		return n, Event{}, causeCloseLength
	default:
		code := int(binary.BigEndian.Uint16(data))
		if !validCloseCode(code) {
			return n, Event{}, causeCloseCode
		}
		if !utf8.Valid(data[2:]) {
			return n, Event{}, causeCloseUTF8
		}
		ev = Event{Kind: KindClose, Payload: data[2:], Code: code}
	}
	r.state = stClosed
	r.msgOp = 0
	r.buf = nil
	return n, ev, causeNone
}

// fail puts r in its terminal failed state.
func (r *Reader) fail(c cause) error {
	r.state = stFailed
	r.failed = c
	r.buf = nil
	return c.err()
}

// maskBytes XORs b with the masking key, starting at key offset pos, and
// returns the offset after b. Eight bytes at a time: unmasking is the only
// per-byte work on the payload.
func maskBytes(key [4]byte, pos uint8, b []byte) uint8 {
	if len(b) >= 16 {
		var w [8]byte
		for j := range w {
			w[j] = key[(int(pos)+j)&3]
		}
		k := binary.LittleEndian.Uint64(w[:])
		for len(b) >= 8 {
			binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k)
			b = b[8:]
		}
	}
	for i := range b {
		b[i] ^= key[pos&3]
		pos++
	}
	return pos & 3
}
