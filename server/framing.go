package server

import (
	"encoding/binary"
	"net"
	"sync"
	"time"
)

// WebSocket opcodes (RFC 6455 §5.2) of the frames the raw path writes.
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// maxHeader is the longest header appendHeader writes.
const maxHeader = 10

// appendHeader appends the header of an unmasked, final server frame.
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

// rawWriter gathers frames and writes them with one system call ("corking"):
// headers are written into a small arena and every payload — for a fan-out
// the same bytes for every recipient — goes out as it is, through writev on
// TCP connections.
type rawWriter struct {
	c *client
	s *rawScratch
}

type rawScratch struct {
	nb   net.Buffers // handed to WriteTo; kept here so it does not escape per write
	bufs [][]byte
	hdr  []byte
	flat []byte // for connections that are not TCP (TLS): one Write
}

var rawScratchPool = sync.Pool{New: func() any {
	return &rawScratch{bufs: make([][]byte, 0, 16), hdr: make([]byte, 0, 160)}
}}

func (w *rawWriter) add(op byte, payload []byte) {
	if w.s == nil {
		w.s = rawScratchPool.Get().(*rawScratch)
	}
	start := len(w.s.hdr)
	w.s.hdr = appendHeader(w.s.hdr, op, len(payload))
	// A header slice stays valid when the arena grows: growing copies it
	// elsewhere and leaves the old bytes untouched.
	w.s.bufs = append(w.s.bufs, w.s.hdr[start:len(w.s.hdr):len(w.s.hdr)])
	if len(payload) > 0 {
		w.s.bufs = append(w.s.bufs, payload)
	}
}

// addFramed adds bytes that are already framed.
func (w *rawWriter) addFramed(b []byte) {
	if w.s == nil {
		w.s = rawScratchPool.Get().(*rawScratch)
	}
	w.s.bufs = append(w.s.bufs, b)
}

// flush writes what was added. On failure the connection is closed so the
// reader ends too.
func (w *rawWriter) flush() error {
	s := w.s
	if s == nil {
		return nil
	}
	defer w.release()
	if len(s.bufs) == 0 {
		return nil
	}
	c := w.c
	_ = c.netConn.SetWriteDeadline(time.Now().Add(c.h.cfg.WriteTimeout))
	var err error
	if tcp, ok := c.netConn.(*net.TCPConn); ok {
		s.nb = s.bufs
		_, err = s.nb.WriteTo(tcp)
		s.nb = nil
	} else {
		s.flat = s.flat[:0]
		for _, b := range s.bufs {
			s.flat = append(s.flat, b...)
		}
		_, err = c.netConn.Write(s.flat)
	}
	if err != nil {
		c.h.logDebug("write failed", c.id, err)
		_ = c.conn.Close()
	}
	return err
}

// maxScratch bounds what a pooled scratch keeps.
const maxScratch = 64 << 10

func (w *rawWriter) release() {
	s := w.s
	w.s = nil
	clear(s.bufs)
	s.bufs = s.bufs[:0]
	s.hdr = s.hdr[:0]
	if cap(s.flat) > maxScratch {
		s.flat = nil
	}
	s.flat = s.flat[:0]
	if cap(s.bufs) > 1024 || cap(s.hdr) > maxScratch {
		return
	}
	rawScratchPool.Put(s)
}
