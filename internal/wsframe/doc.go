// Package wsframe reads the frames a WebSocket client sends (RFC 6455,
// server side) for a connection core that has no goroutine and no read
// buffer per idle connection.
//
// # Model
//
// A [Reader] is fed bytes as they arrive and returns complete events: a
// data message (text or binary, fragments reassembled), a ping, a pong or a
// close. It never reads from or writes to the connection. The caller owns
// the read buffer (typically borrowed from a sync.Pool while the socket is
// readable) and loops:
//
//	for len(p) > 0 {
//		n, ev, err := r.Next(p)
//		p = p[n:]
//		// err: send a close with err.(*ProtocolError).Code and hang up
//		// ev.Kind == KindNone: p is used up, wait for readiness
//	}
//
// A Reader is 56 bytes (on 64-bit platforms) and holds no buffer between
// messages. It allocates only for what must outlive the caller's buffer: a
// message (or control frame) that spans reads or fragments. That buffer
// grows with what arrived (to at most twice as much), never to a size the
// client merely declared, and never past the size limit. A message or
// control frame wholly in p is unmasked in place and returned without a
// copy. [StreamReader] wraps a Reader over an io.Reader for the portable,
// goroutine-per-connection path.
//
// The package starts no goroutine.
//
// # Checks
//
// Every violation fails the connection with a [*ProtocolError] carrying
// the close code to send:
//
//   - 1002: a frame without the mask bit; a reserved bit set (no extension
//     is negotiated on this path); an unknown opcode; a control frame without
//     FIN or with more than 125 payload bytes; a continuation frame with no
//     message to continue; a text or binary frame inside a fragmented
//     message; a 64-bit length with the most significant bit set; a close
//     payload of 1 byte; a close code other than 1000-1003, 1007-1011 and
//     3000-4999.
//   - 1007: invalid UTF-8 in a text message or a close reason. Text is
//     checked incrementally across reads and fragments and fails on the first
//     byte that no continuation can make valid (Autobahn 6.4.x "fail fast").
//   - 1009: a message over Config.MaxMessageSize, counted over its fragments
//     (control frames excluded), detected on the frame header before any of
//     its payload is buffered.
//
// Control frames between fragments are allowed and returned as they come.
// Non-minimal length encodings are accepted, as gorilla does: RFC 6455
// requires the minimal form but names no failure for it. Nothing after a
// close frame is read ([ErrClosed]). The header checks run in gorilla's
// order (the first two bytes together, then the length, the masking key,
// the size limit), so a stream that stops mid-header ends the same way in
// both readers.
//
// # Differences from gorilla/websocket's reader
//
// The differential fuzz test (FuzzGorillaDifferential) runs gorilla's
// server-side reader on the same bytes and requires the same events in the
// same order and the same close codes, except for these choices:
//
//   - Text is checked for UTF-8 (gorilla leaves it to the application).
//   - A 1-byte close payload fails with 1002 (Autobahn 7.3.2); gorilla
//     reports it as a close with no status (1005).
//   - Close codes 1012 and 1013 fail with 1002; gorilla accepts them. Both
//     refuse 1014 and 1016-2999.
//   - An invalid UTF-8 close reason fails with 1007 rather than gorilla's
//     1002 (Autobahn 7.5.1 accepts either).
//   - A 64-bit length with the top bit set fails with 1002; gorilla returns
//     ErrReadLimit and sends nothing.
//   - The Reader never writes. Gorilla's reader writes close frames itself
//     (1002 on a protocol error, 1009 over the read limit) from the reading
//     goroutine, behind whatever else writes to the socket; here the caller
//     sends the close through the connection's one writer.
//   - The end of input is not an error: [Reader.Idle] tells a clean end
//     from a cut one, where gorilla reports 1006 for both.
//   - A zero MaxMessageSize means [DefaultMaxMessageSize]; gorilla's zero
//     read limit means none (here, a negative size).
//
// # Why our own reader
//
// gorilla/websocket stays for the upgrade (origin check, subprotocols,
// permessage-deflate negotiation), but its reader cannot serve an
// event-driven core: it pulls from a bufio.Reader (4 KiB by default) that a
// goroutine blocks on for the life of the connection, it cannot suspend a
// half-received frame and resume it later on another goroutine, and it
// writes close frames to the socket from the reader. gobwas/ws has a
// maintained low-level frame API (ws.ReadHeader, ws.CheckHeader,
// wsutil.CipherReader, wsutil.UTF8Reader) but it too reads from an
// io.Reader and blocks until a whole header or payload is there, so a
// client that sends half a frame would pin a goroutine and a buffer, the
// cost this core exists to remove; fragmentation, the size limit and the
// close-frame checks would still be ours to assemble around it. What we
// need is the resumable state machine itself: it is a few hundred lines,
// has no dependency, and is checked against gorilla by differential fuzzing
// and against the Autobahn TestSuite cases written as Go tests.
package wsframe
