package wsframe

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// wire builds one client frame. The zero value of a field is the ordinary
// case: masked, minimal length encoding, no reserved bits.
type wire struct {
	head     byte   // FIN, RSV and opcode
	payload  []byte // before masking
	unmasked bool
	lenBytes int // 2 or 8 forces a non-minimal extended length
}

var keySeq uint32 = 0x37fa213d

func (w wire) bytes() []byte {
	out := []byte{w.head}
	mask := byte(maskBit)
	if w.unmasked {
		mask = 0
	}
	n := len(w.payload)
	switch {
	case w.lenBytes == 8 || (w.lenBytes == 0 && n > 0xFFFF):
		out = append(out, mask|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	case w.lenBytes == 2 || (w.lenBytes == 0 && n > 125):
		out = append(out, mask|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, mask|byte(n))
	}
	if w.unmasked {
		return append(out, w.payload...)
	}
	// Vary the key from frame to frame so that a reader that ignores it, or
	// carries the key offset over frames, fails.
	keySeq = keySeq*1664525 + 1013904223
	var key [4]byte
	binary.BigEndian.PutUint32(key[:], keySeq)
	out = append(out, key[:]...)
	start := len(out)
	out = append(out, w.payload...)
	for i := start; i < len(out); i++ {
		out[i] ^= key[(i-start)&3]
	}
	return out
}

// msg is a final frame, frag a non-final one.
func msg(op byte, payload string) []byte {
	return wire{head: finBit | op, payload: []byte(payload)}.bytes()
}
func frag(op byte, payload string) []byte { return wire{head: op, payload: []byte(payload)}.bytes() }

func closeFrame(code int, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return wire{head: finBit | opClose, payload: append(p, reason...)}.bytes()
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// got is an event with its payload copied, comparable with ==.
type got struct {
	kind    Kind
	payload string
	code    int
}

func (g got) String() string {
	p := g.payload
	if len(p) > 40 {
		p = fmt.Sprintf("%q…(%d bytes)", p[:40], len(p))
	} else {
		p = fmt.Sprintf("%q", p)
	}
	if g.kind == KindClose {
		return fmt.Sprintf("close(%d, %s)", g.code, p)
	}
	return fmt.Sprintf("%s(%s)", kindName(g.kind), p)
}

func kindName(k Kind) string {
	switch k {
	case KindText:
		return "text"
	case KindBinary:
		return "binary"
	case KindPing:
		return "ping"
	case KindPong:
		return "pong"
	case KindClose:
		return "close"
	}
	return fmt.Sprintf("kind%d", k)
}

func text(s string) got   { return got{kind: KindText, payload: s} }
func binMsg(s string) got { return got{kind: KindBinary, payload: s} }
func ping(s string) got   { return got{kind: KindPing, payload: s} }
func pong(s string) got   { return got{kind: KindPong, payload: s} }
func closed(code int, reason string) got {
	return got{kind: KindClose, payload: reason, code: code}
}

// outcome is what a Reader made of a whole byte stream.
type outcome struct {
	events      []got
	err         error // first error; nil when the stream ran out or a close came
	closed      bool  // stopped at a close event
	idle        bool  // Reader.Idle() at the end
	failAt      int   // bytes consumed when err was returned
	maxBuffered int
}

func (o outcome) String() string {
	return fmt.Sprintf("events=%v err=%v closed=%v idle=%v", o.events, o.err, o.closed, o.idle)
}

// same compares what matters for equivalence of two chunkings.
func (o outcome) same(p outcome) bool {
	if len(o.events) != len(p.events) || o.err != p.err || o.closed != p.closed {
		return false
	}
	if o.err == nil && !o.closed && o.idle != p.idle {
		return false
	}
	for i := range o.events {
		if o.events[i] != p.events[i] {
			return false
		}
	}
	return true
}

// feed runs a Reader over data cut into the given chunk sizes (the last
// chunk takes the rest). It checks Next's contract on every call.
func feed(tb testing.TB, cfg Config, data []byte, sizes []int) outcome {
	tb.Helper()
	data = bytes.Clone(data) // Next unmasks in place
	r := NewReader(cfg)
	var o outcome
	off := 0
	for i := 0; off < len(data); i++ {
		end := len(data)
		if i < len(sizes) && off+sizes[i] < end {
			end = off + sizes[i]
		}
		p := data[off:end]
		for len(p) > 0 {
			n, ev, err := r.Next(p)
			if n < 0 || n > len(p) {
				tb.Fatalf("Next consumed %d of %d bytes", n, len(p))
			}
			if b := r.Buffered(); b > o.maxBuffered {
				o.maxBuffered = b
			}
			off += n
			p = p[n:]
			if err != nil {
				o.err, o.failAt = err, off
				return o
			}
			if ev.Kind == KindNone {
				if len(p) != 0 {
					tb.Fatalf("Next returned no event with %d bytes left", len(p))
				}
				continue
			}
			o.events = append(o.events, got{kind: ev.Kind, payload: string(ev.Payload), code: ev.Code})
			if ev.Kind == KindClose {
				if _, _, err := r.Next(p); err != ErrClosed {
					tb.Fatalf("Next after a close: %v, want ErrClosed", err)
				}
				o.closed = true
				return o
			}
		}
		if end == len(data) {
			break
		}
	}
	o.idle = r.Idle()
	if o.idle && r.Buffered() != 0 {
		tb.Fatalf("idle Reader holds a %d-byte buffer", r.Buffered())
	}
	return o
}

// chunkings returns the ways every case is fed: in one piece, byte by byte,
// in random chunks, and in fixed chops when the case asks for them.
func chunkings(n, chop int, seed uint64) map[string][]int {
	ones := make([]int, n)
	for i := range ones {
		ones[i] = 1
	}
	m := map[string][]int{"whole": nil, "bytewise": ones}
	rng := rand.New(rand.NewPCG(seed, 42))
	for k := range 3 {
		var s []int
		for t := 0; t < n; {
			c := 1 + rng.IntN(1+rng.IntN(64))
			s = append(s, c)
			t += c
		}
		m[fmt.Sprintf("random%d", k)] = s
	}
	if chop > 0 {
		var s []int
		for t := 0; t < n; t += chop {
			s = append(s, chop)
		}
		m[fmt.Sprintf("chop%d", chop)] = s
	}
	return m
}
