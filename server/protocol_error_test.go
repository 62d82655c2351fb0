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
// through the client's outbox (gorilla's own write of it is intercepted),
// after what was queued.
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
	if err := c.expectText(waitTimeout); err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	var hdr [2]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		t.Fatal(err)
	}
	if hdr[0] != 0x80|websocket.CloseMessage || hdr[1] < 2 || hdr[1] > 125 {
		t.Fatalf("frame header % x, want a close frame", hdr)
	}
	payload := make([]byte, hdr[1])
	if _, err := io.ReadFull(c.br, payload); err != nil {
		t.Fatal(err)
	}
	if code := binary.BigEndian.Uint16(payload); code != websocket.CloseProtocolError {
		t.Errorf("close code %d (%q), want %d", code, payload[2:], websocket.CloseProtocolError)
	}
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Errorf("after the close frame: %v, want the connection closed", err)
	}
}
