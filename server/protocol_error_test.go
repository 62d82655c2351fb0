//go:build linux

package server_test

import (
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ignis-go/wscomponent/server"
)

// A protocol error found by gorilla's reader is answered with close 1002
// through the client's outbox (gorilla's own write of it is intercepted):
// whole frames, then the close, then nothing.
func TestProtocolErrorCloseGoesThroughTheOutbox(t *testing.T) {
	ts := startServer(t, nil, server.Options{})
	c, err := dialRaw(strings.TrimPrefix(ts.srv.URL, "http://"), `{"token":"user:proto"}`)
	if err != nil {
		t.Fatal(err)
	}
	defer c.conn.Close()
	if err := ts.h.SendToClient(c.id, "before", 1); err != nil {
		t.Fatal(err)
	}
	// A masked, empty frame with the reserved opcode 3.
	if _, err := c.conn.Write([]byte{0x83, 0x80, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	// "before" may go out first or be dropped with the queue; the close
	// comes after it either way.
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	var payload []byte
	for payload == nil {
		var hdr [2]byte
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			t.Fatal(err)
		}
		if hdr[1] > 125 {
			t.Fatalf("frame header % x: longer than expected", hdr)
		}
		p := make([]byte, hdr[1])
		if _, err := io.ReadFull(c.br, p); err != nil {
			t.Fatal(err)
		}
		switch hdr[0] {
		case 0x80 | websocket.TextMessage:
			if !strings.Contains(string(p), `"before"`) {
				t.Fatalf("unexpected frame %q", p)
			}
		case 0x80 | websocket.CloseMessage:
			payload = p
		default:
			t.Fatalf("frame header % x", hdr)
		}
	}
	if len(payload) < 2 {
		t.Fatal("close frame without a code")
	}
	if code := binary.BigEndian.Uint16(payload); code != websocket.CloseProtocolError {
		t.Errorf("close code %d (%q), want %d", code, payload[2:], websocket.CloseProtocolError)
	}
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Errorf("after the close frame: %v, want the connection closed", err)
	}
}
