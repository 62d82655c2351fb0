package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"net/http"
	"syscall"
	"time"
)

// socket is the transport of a client's outbox: the connection under
// gorilla's Conn.
type socket struct {
	conn net.Conn        // the socket itself, not gorilla's view of it
	rc   syscall.RawConn // conn's descriptor, for writes that never wait (nil unless TCP)
	h    *Helper
	id   string
	// pc is set, before reading starts, when the connection is read by a
	// poller rather than by a goroutine of its own.
	pc *pollConn
}

func newSocket(h *Helper, id string, conn net.Conn) socket {
	s := socket{conn: conn, h: h, id: id}
	if tcp, ok := conn.(*net.TCPConn); ok {
		s.rc, _ = tcp.SyscallConn()
	}
	return s
}

// write writes bufs, waiting for the socket until deadline (the writer
// goroutine). The deadline is cleared afterwards: writes that never wait
// would otherwise fail once it has passed.
func (s *socket) write(bufs [][]byte, deadline time.Time) error {
	_ = s.conn.SetWriteDeadline(deadline)
	var err error
	if tcp, ok := s.conn.(*net.TCPConn); ok {
		nb := net.Buffers(bufs)
		_, err = nb.WriteTo(tcp) // writev
	} else {
		var flat []byte
		for _, b := range bufs {
			flat = append(flat, b...)
		}
		_, err = s.conn.Write(flat)
	}
	if err != nil {
		s.h.logDebug("write failed", s.id, err)
		return err
	}
	_ = s.conn.SetWriteDeadline(time.Time{})
	return nil
}

// closeSent gives the peer CloseGrace to answer the close frame; then the
// reader fails (or the poller's connection is hung up) and the connection
// is cleaned up.
func (s *socket) closeSent() {
	if s.pc != nil {
		s.pc.closeSent()
		return
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(s.h.cfg.CloseGrace))
}

// close drops the connection: its reader sees it end.
func (s *socket) close() {
	if s.pc != nil {
		s.pc.hangup() // a polled socket that nobody reads would never tell
		return
	}
	s.closeConn()
}

func (s *socket) closeConn() { _ = s.conn.Close() }

// sockConn is the connection gorilla is given (by hijackWriter). Reads and
// deadlines go to the socket as they are; writes reach it only during the
// handshake. Afterwards gorilla writes only from the reader goroutine — the
// close frame it sends after a protocol error, or a control frame from a
// default handler (the Helper sets its own) — and those bytes go to the
// client's outbox instead, so that the outbox stays the socket's only
// writer.
type sockConn struct {
	net.Conn
	deflate bool    // the handshake accepted permessage-deflate
	c       *client // set before reading starts; nil during the handshake
}

// deflateAccepted is how gorilla's handshake response accepts
// permessage-deflate.
var deflateAccepted = []byte("\r\nSec-WebSocket-Extensions: permessage-deflate")

func (s *sockConn) Write(b []byte) (int, error) {
	if s.c == nil {
		if bytes.Contains(b, deflateAccepted) {
			s.deflate = true
		}
		return s.Conn.Write(b)
	}
	s.c.gorillaWrote(b)
	return len(b), nil
}

// hijackWriter hands gorilla's Upgrade a sockConn when it hijacks the
// connection.
type hijackWriter struct {
	http.ResponseWriter
	conn *sockConn
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &sockConn{Conn: c}
	return w.conn, brw, nil
}

// gorillaWrote takes the bytes gorilla's reader wrote (one whole frame per
// call): a close frame after a protocol error becomes the client's close —
// sent after a frame partly written, instead of what is queued — and the
// reader waits a moment for it to go out, as gorilla's own write did; any
// other frame is queued as it is.
func (c *client) gorillaWrote(b []byte) {
	if len(b) >= 2 && b[0]&0x0f == opClose {
		d := Disconnect{Code: closeNoStatus}
		if p := b[2:]; len(p) >= 2 {
			d = Disconnect{Code: int(binary.BigEndian.Uint16(p)), Reason: string(p[2:])}
		}
		c.close(d, true)
		c.out.waitClosed(closeEchoWait)
		return
	}
	if c.out.pushAlways(frame{kind: frameRaw, data: bytes.Clone(b)}) {
		c.out.flush()
	}
}

// closeNoStatus is RFC 6455's "no status code" (never sent on the wire:
// its close frame has no payload).
const closeNoStatus = 1005
