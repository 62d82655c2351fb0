package wsframe

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// memConn is a net.Conn that reads a fixed byte stream and records what is
// written to it. It lets gorilla run its server-side reader with no network
// and no goroutine: every Read returns at once.
type memConn struct {
	in  io.Reader
	out bytes.Buffer
}

func (c *memConn) Read(p []byte) (int, error)         { return c.in.Read(p) }
func (c *memConn) Write(p []byte) (int, error)        { return c.out.Write(p) }
func (c *memConn) Close() error                       { return nil }
func (c *memConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(t time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { return nil }

// hijacker is the http.ResponseWriter given to websocket.Upgrader: it
// hands over the memConn, as net/http hands over a TCP connection.
type hijacker struct {
	http.ResponseWriter
	conn *memConn
}

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(h.conn)), nil
}

// gorillaConn upgrades a memConn that will read data, the way the server
// does today (Upgrader, no compression), and drops the 101 response.
func gorillaConn(tb testing.TB, in io.Reader) (*websocket.Conn, *memConn) {
	tb.Helper()
	mc := &memConn{in: in}
	req := httptest.NewRequest(http.MethodGet, "http://example.com/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	up := websocket.Upgrader{}
	conn, err := up.Upgrade(hijacker{httptest.NewRecorder(), mc}, req, nil)
	if err != nil {
		tb.Fatalf("upgrade: %v", err)
	}
	mc.out.Reset()
	return conn, mc
}

// verdict is how a reader ended a stream, in terms both readers share.
type verdict struct {
	events []got
	end    string // "eof", "close" or "error"
	code   int    // close code to send, for "error"
	detail string // gorilla's error text or our cause, for messages
}

func (v verdict) String() string {
	return fmt.Sprintf("events=%v end=%s code=%d (%s)", v.events, v.end, v.code, v.detail)
}

func (v verdict) equal(w verdict) bool {
	if v.end != w.end || v.code != w.code || len(v.events) != len(w.events) {
		return false
	}
	for i := range v.events {
		if v.events[i] != w.events[i] {
			return false
		}
	}
	return true
}

// gorillaVerdict reads data with gorilla's server-side reader, recording
// control frames from the handlers and messages in order. Gorilla does not
// validate UTF-8 in text messages; the caller of NextReader must. This does
// it the way an application that wants Autobahn 6.4.x behaviour would: after
// every Read, so that the text fails where its first impossible byte is.
func gorillaVerdict(tb testing.TB, data []byte, limit int64) verdict {
	conn, mc := gorillaConn(tb, bytes.NewReader(data))
	conn.SetReadLimit(limit)
	var v verdict
	conn.SetPingHandler(func(s string) error { v.events = append(v.events, ping(s)); return nil })
	conn.SetPongHandler(func(s string) error { v.events = append(v.events, pong(s)); return nil })
	closeSeen := false
	conn.SetCloseHandler(func(code int, s string) error {
		v.events = append(v.events, closed(code, s))
		closeSeen = true
		return nil
	})
	buf := make([]byte, 512)
	for {
		mt, rd, err := conn.NextReader()
		if err != nil {
			return gorillaEnd(v, err, closeSeen, mc)
		}
		var payload []byte
		s := utf8Accept
		for {
			n, err := rd.Read(buf)
			payload = append(payload, buf[:n]...)
			if mt == websocket.TextMessage {
				if s = s.feed(buf[:n]); s == utf8Reject || (err == io.EOF && s != utf8Accept) {
					v.end, v.code, v.detail = "error", CloseInvalidPayload, "invalid UTF-8 in text message (checked by the caller)"
					return v
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return gorillaEnd(v, err, closeSeen, mc)
			}
		}
		v.events = append(v.events, got{kind: Kind(mt), payload: string(payload)})
	}
}

func gorillaEnd(v verdict, err error, closeSeen bool, mc *memConn) verdict {
	v.detail = err.Error()
	var ce *websocket.CloseError
	switch {
	case closeSeen:
		v.end = "close"
	case errors.As(err, &ce) && ce.Code == websocket.CloseAbnormalClosure, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// Gorilla reports every end of input as 1006, even between
		// messages; the tests below compare Idle separately.
		v.end = "eof"
	default:
		// The close code is the one gorilla wrote to the connection.
		v.end = "error"
		if out := mc.out.Bytes(); len(out) >= 4 && out[0] == finBit|opClose {
			v.code = int(binary.BigEndian.Uint16(out[2:4]))
		}
	}
	return v
}

// ourVerdict reads data with Reader, in the given chunks.
func ourVerdict(tb testing.TB, data []byte, limit int64, sizes []int) (verdict, outcome) {
	o := feed(tb, Config{MaxMessageSize: limit}, data, sizes)
	v := verdict{events: o.events, end: "eof"}
	var pe *ProtocolError
	switch {
	case errors.As(o.err, &pe):
		v.end, v.code, v.detail = "error", pe.Code, pe.Reason
	case o.err != nil:
		tb.Fatalf("unexpected error type %T: %v", o.err, o.err)
	case o.closed:
		v.end = "close"
	}
	return v, o
}

// reconcile turns gorilla's verdict into what our reader must report, by
// applying each intentional divergence. It returns the adjusted verdict and
// the name of the divergence applied, if any.
func reconcile(ours, theirs verdict, oursErr error) (verdict, string) {
	last := func() got {
		if len(theirs.events) == 0 {
			return got{}
		}
		return theirs.events[len(theirs.events)-1]
	}
	toError := func(c cause) verdict {
		w := theirs
		if w.end == "close" {
			w.events = w.events[:len(w.events)-1]
		}
		w.end, w.code, w.detail = "error", c.err().Code, c.err().Reason
		return w
	}
	switch oursErr {
	case causeLength.err():
		// Gorilla turns a length with the top bit set into a negative
		// int64 and returns ErrReadLimit without writing a close frame; it
		// is a framing error (RFC 6455 5.2: "the most significant bit MUST
		// be 0"), so we fail with 1002.
		if theirs.end == "error" && theirs.code == 0 && theirs.detail == websocket.ErrReadLimit.Error() {
			return toError(causeLength), "64-bit length with the top bit set"
		}
	case causeCloseLength.err():
		// Gorilla reads a 1-byte close payload as "no status" (1005);
		// RFC 6455 5.5.1 requires a 2-byte code first (Autobahn 7.3.2).
		if theirs.end == "close" && last() == closed(CloseNoStatus, "") {
			return toError(causeCloseLength), "1-byte close payload"
		}
	case causeCloseCode.err():
		// Gorilla accepts 1012 and 1013 from a client; we accept only the
		// codes RFC 6455 7.4.1 defines for the wire plus 3000-4999.
		if theirs.end == "close" && (last().code == 1012 || last().code == 1013) {
			return toError(causeCloseCode), "close code 1012/1013"
		}
	case causeCloseUTF8.err():
		// Gorilla answers an invalid close reason with 1002; we send 1007,
		// the code for inconsistent data (Autobahn 7.5.1 accepts both).
		if theirs.end == "error" && theirs.code == CloseProtocolError && theirs.detail == "websocket: invalid utf8 payload in close frame" {
			return toError(causeCloseUTF8), "close reason UTF-8 code"
		}
	}
	return theirs, ""
}

// differential checks one stream against gorilla and across chunkings.
func differential(t *testing.T, data []byte, limit int64) (divergence string) {
	t.Helper()
	theirs := gorillaVerdict(t, data, limit)
	ours, whole := ourVerdict(t, data, limit, nil)
	want, divergence := reconcile(ours, theirs, whole.err)
	if !ours.equal(want) {
		t.Fatalf("stream %x (limit %d):\n ours    %v\n gorilla %v\n wanted  %v", data, limit, ours, theirs, want)
	}
	for how, sizes := range chunkings(len(data), 0, uint64(len(data))) {
		if how == "whole" {
			continue
		}
		if _, o := ourVerdict(t, data, limit, sizes); !o.same(whole) {
			t.Fatalf("stream %x (limit %d): %s gives %v, whole gives %v", data, limit, how, o, whole)
		}
	}
	return divergence
}

// FuzzGorillaDifferential feeds the same client byte stream to gorilla's
// server-side reader and to Reader and requires the same messages, control
// frames and close, in the same order, and the same failure with the same
// close code, up to the divergences listed in reconcile.
func FuzzGorillaDifferential(f *testing.F) {
	for _, tc := range allProtocolCases() {
		if len(tc.give) <= 4096 {
			f.Add(tc.give, uint16(tc.limit))
		}
	}
	f.Add(cat(frag(opText, kosme), msg(opPing, "p"), msg(opContinuation, "\xff")), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		// Both readers get a limit from 1 byte to 64 KiB: gorilla has no
		// default and treats 0 as "none".
		differential(t, data, int64(limit)+1)
	})
}

// TestGorillaDifferentialCases runs every protocol case through the
// differential check and lists which divergences they exercise, so that
// each one in reconcile is known to be reached.
func TestGorillaDifferentialCases(t *testing.T) {
	seen := map[string]int{}
	for _, tc := range allProtocolCases() {
		limit := tc.limit
		switch {
		case limit == 0:
			limit = DefaultMaxMessageSize
		case limit < 0:
			limit = 1 << 40
		}
		t.Run(tc.name, func(t *testing.T) {
			if d := differential(t, tc.give, limit); d != "" {
				seen[d]++
			}
		})
	}
	for _, d := range []string{"64-bit length with the top bit set", "1-byte close payload", "close code 1012/1013", "close reason UTF-8 code"} {
		if seen[d] == 0 {
			t.Errorf("no case exercises the divergence %q", d)
		}
	}
	t.Logf("divergences exercised: %v", seen)
}

// TestGorillaAcceptsWhatWeRefuse pins the gorilla behaviour each divergence
// relies on, so that an upgrade of gorilla that changes it is noticed.
func TestGorillaAcceptsWhatWeRefuse(t *testing.T) {
	if v := gorillaVerdict(t, msg(opClose, "a"), 100); v.end != "close" || v.events[0] != closed(CloseNoStatus, "") {
		t.Errorf("1-byte close: gorilla %v", v)
	}
	if v := gorillaVerdict(t, closeFrame(1012, ""), 100); v.end != "close" {
		t.Errorf("close 1012: gorilla %v", v)
	}
	if v := gorillaVerdict(t, msg(opText, "\xff"), 100); v.end != "error" || v.code != CloseInvalidPayload {
		t.Errorf("invalid text: gorilla (with the caller's check) %v", v)
	}
	conn, _ := gorillaConn(t, bytes.NewReader(msg(opText, "\xff")))
	if mt, p, err := conn.ReadMessage(); err != nil || mt != websocket.TextMessage || utf8.Valid(p) {
		t.Errorf("gorilla checks UTF-8 itself now: %v %q %v", mt, p, err)
	}
}
