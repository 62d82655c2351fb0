package server

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"io"
	"sync"
)

// WebSocket opcodes (RFC 6455 §5.2) of the frames the server writes.
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// rsv1 marks a compressed data frame (RFC 7692 §6).
const rsv1 = 0x40

// maxHeader is the longest header appendHeader writes.
const maxHeader = 10

// appendHeader appends the header of an unmasked, final server frame; op
// may carry rsv1.
func appendHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// flight is what an outbox's writer took to write: the frames' bytes in
// order, ready for one gathering write. Headers are written into a small
// arena; payloads — for a fan-out the same bytes for every recipient — are
// not copied.
type flight struct {
	all   [][]byte // every buffer added
	bufs  [][]byte // what remains to write: a tail of all
	hdr   []byte   // the headers' arena
	close bool     // ends with the close frame
	batch []frame  // the queue slice the frames came in, handed back empty
}

var flightPool = sync.Pool{New: func() any {
	return &flight{all: make([][]byte, 0, 8), hdr: make([]byte, 0, 64)}
}}

func newFlight() *flight { return flightPool.Get().(*flight) }

// release returns fl to the pool (unless it grew large).
func (fl *flight) release() {
	clear(fl.all)
	if cap(fl.all) > 1024 || cap(fl.hdr) > 16<<10 {
		return
	}
	*fl = flight{all: fl.all[:0], hdr: fl.hdr[:0]}
	flightPool.Put(fl)
}

// add appends f's bytes; deflate compresses data frames.
func (fl *flight) add(f *frame, deflate bool) {
	switch f.kind {
	case frameText:
		fl.addData(f.data, deflate)
	case frameShared:
		if deflate {
			fl.addFramed(f.msg.deflated())
		} else {
			fl.addFramed(f.msg.wire)
		}
	case framePending:
		if f.pending.data != nil { // nil: the transformer dropped it
			fl.addData(f.pending.data, deflate)
		}
	case framePing:
		fl.addFrame(opPing, nil)
	case framePong:
		fl.addFrame(opPong, f.data)
	case frameClose:
		fl.addFrame(opClose, f.data)
		fl.close = true
	case frameRaw:
		fl.addFramed(f.data)
	}
	fl.bufs = fl.all
}

func (fl *flight) addData(payload []byte, deflate bool) {
	if deflate {
		fl.addFramed(deflateFrame(payload))
		return
	}
	fl.addFrame(opText, payload)
}

func (fl *flight) addFrame(op byte, payload []byte) {
	start := len(fl.hdr)
	fl.hdr = appendHeader(fl.hdr, op, len(payload))
	// A header slice stays valid when the arena grows: growing copies it
	// elsewhere and leaves the old bytes untouched.
	fl.all = append(fl.all, fl.hdr[start:len(fl.hdr):len(fl.hdr)])
	if len(payload) > 0 {
		fl.all = append(fl.all, payload)
	}
}

// addFramed adds bytes that are already framed.
func (fl *flight) addFramed(b []byte) { fl.all = append(fl.all, b) }

// remaining is how many bytes are left to write.
func (fl *flight) remaining() int {
	n := 0
	for _, b := range fl.bufs {
		n += len(b)
	}
	return n
}

// consume drops the first n bytes, which were written.
func (fl *flight) consume(n int) {
	for n > 0 && len(fl.bufs) > 0 {
		if n < len(fl.bufs[0]) {
			fl.bufs[0] = fl.bufs[0][n:]
			return
		}
		n -= len(fl.bufs[0])
		fl.bufs = fl.bufs[1:]
	}
	if len(fl.bufs) > 0 && len(fl.bufs[0]) == 0 {
		fl.bufs = fl.bufs[1:]
	}
}

// permessage-deflate (RFC 7692) as gorilla negotiates it: no context
// takeover either way, so each message is compressed on its own and the
// frames can be written by the outbox like any other.

// deflateLevel is gorilla's default compression level.
const deflateLevel = flate.BestSpeed

var flateWriters sync.Pool

// deflateFrame returns a whole compressed text frame for payload.
func deflateFrame(payload []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(maxHeader + len(payload)/2 + 16)
	buf.Write(make([]byte, maxHeader)) // room for the header, filled below
	fw, _ := flateWriters.Get().(*flate.Writer)
	if fw == nil {
		fw, _ = flate.NewWriter(&buf, deflateLevel)
	} else {
		fw.Reset(&buf)
	}
	_, _ = fw.Write(payload)
	_ = fw.Flush()
	fw.Reset(io.Discard)
	flateWriters.Put(fw)
	b := buf.Bytes()
	// A sync flush ends with an empty stored block, 00 00 ff ff, which
	// the sender leaves out (RFC 7692 §7.2.1).
	b = b[:len(b)-4]
	n := len(b) - maxHeader
	hdr := appendHeader(make([]byte, 0, maxHeader), rsv1|opText, n)
	start := maxHeader - len(hdr)
	copy(b[start:], hdr)
	return b[start:]
}
