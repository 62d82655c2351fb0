//go:build linux

package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/server"
)

// The two read sides — a poller with the wsframe reader (Linux default) and
// a goroutine per connection with gorilla's reader (Config.Pollers Off, and
// every connection elsewhere) — must look the same from the wire. Each
// test here runs on both.
func forEachReadSide(t *testing.T, f func(t *testing.T, cfg server.Config)) {
	t.Run("poller", func(t *testing.T) { f(t, server.Config{}) })
	t.Run("goroutine", func(t *testing.T) { f(t, server.Config{Pollers: server.Off}) })
}

// echoServer answers every "say" with "said" carrying the same data.
func echoServer(t *testing.T, cfg server.Config) *testServer {
	return startServer(t, nil, server.Options{
		Config: cfg,
		Message: func(ctx context.Context, ev server.MessageEvent) error {
			return server.FromContext(ctx).SendToClient(ev.ClientID, "said", ev.Message.Data)
		},
	})
}

func dialRawTo(t *testing.T, ts *testServer, user string) *rawClient {
	t.Helper()
	c, err := dialRaw(strings.TrimPrefix(ts.srv.URL, "http://"), `{"token":"user:`+user+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.conn.Close() })
	return c
}

// frame builds one masked client frame (mask key 0x11223344).
func frame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	key := [4]byte{0x11, 0x22, 0x33, 0x44}
	out = append(out, key[:]...)
	for i, b := range payload {
		out = append(out, b^key[i%4])
	}
	return out
}

// readFrame reads one server frame as it is: opcode and payload.
func (c *rawClient) readFrame(t *testing.T) (byte, []byte) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	var hdr [2]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	n := int(hdr[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint64(ext[:]))
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.br, p); err != nil {
		t.Fatal(err)
	}
	return hdr[0] & 0x0f, p
}

// expectClose reads frames until the close frame and checks its code;
// then the server must hang up.
func (c *rawClient) expectClose(t *testing.T, code int) {
	t.Helper()
	for {
		op, p := c.readFrame(t)
		if op != opClose {
			continue
		}
		if len(p) < 2 || int(binary.BigEndian.Uint16(p)) != code {
			t.Fatalf("close payload %q, want code %d", p, code)
		}
		break
	}
	// Answer it, as a client does; the server then drops the socket (the
	// goroutine side may have dropped it already, so that the answer
	// meets a reset).
	_, _ = c.conn.Write(frame(true, opClose, binary.BigEndian.AppendUint16(nil, uint16(code))))
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := c.br.ReadByte(); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the close: %v, want the connection closed", err)
	}
}

func TestReadSidePingIsAnsweredWithItsPayload(t *testing.T) {
	forEachReadSide(t, func(t *testing.T, cfg server.Config) {
		ts := echoServer(t, cfg)
		c := dialRawTo(t, ts, "pinger")
		if _, err := c.conn.Write(frame(true, 0x9, []byte("are you there"))); err != nil {
			t.Fatal(err)
		}
		op, p := c.readFrame(t)
		if op != 0xA || string(p) != "are you there" {
			t.Fatalf("got opcode %#x %q, want a pong with the ping's payload", op, p)
		}
	})
}

// A message in fragments, a ping between them, and every byte written on
// its own: the server reassembles across reads and answers the ping first.
func TestReadSideFragmentsAndSplitWrites(t *testing.T) {
	forEachReadSide(t, func(t *testing.T, cfg server.Config) {
		ts := echoServer(t, cfg)
		c := dialRawTo(t, ts, "fragments")
		var stream []byte
		stream = append(stream, frame(false, opText, []byte(`{"event":"say",`))...)
		stream = append(stream, frame(true, 0x9, []byte("mid"))...)
		stream = append(stream, frame(false, opContinuation, []byte(`"data":"héllo`))...)
		stream = append(stream, frame(true, opContinuation, []byte(`"}`))...)
		for i := range stream {
			if _, err := c.conn.Write(stream[i : i+1]); err != nil {
				t.Fatal(err)
			}
		}
		if op, p := c.readFrame(t); op != 0xA || string(p) != "mid" {
			t.Fatalf("first frame %#x %q, want the pong", op, p)
		}
		if op, p := c.readFrame(t); op != opText || !bytes.Contains(p, []byte(`"said"`)) || !bytes.Contains(p, []byte("héllo")) {
			t.Fatalf("got %#x %q, want the echo", op, p)
		}
	})
}

// A message larger than any read buffer arrives whole.
func TestReadSideLargeMessage(t *testing.T) {
	forEachReadSide(t, func(t *testing.T, cfg server.Config) {
		cfg.MaxPayloadLength = 1 << 20
		ts := echoServer(t, cfg)
		c := dialRawTo(t, ts, "large")
		body := strings.Repeat("0123456789", 30_000) // 300 kB
		go func() { _, _ = c.conn.Write(frame(true, opText, []byte(`{"event":"say","data":"`+body+`"}`))) }()
		op, p := c.readFrame(t)
		if op != opText || !bytes.Contains(p, []byte(body)) {
			t.Fatalf("got %#x with %d bytes, want the echo of the 300 kB message", op, len(p))
		}
	})
}

func TestReadSideViolationsClose(t *testing.T) {
	tests := []struct {
		name  string
		bytes []byte
		code  int
	}{
		{"reserved opcode", frame(true, 0x3, nil), 1002},
		{"unmasked frame", []byte{0x81, 0x02, 'h', 'i'}, 1002},
		{"fragmented ping", frame(false, 0x9, nil), 1002},
		{"continuation without a message", frame(true, opContinuation, []byte("x")), 1002},
		{"invalid UTF-8 text", frame(true, opText, []byte{'{', 0xff, '}'}), 1007},
		{"over MaxPayloadLength", frame(true, opText, make([]byte, 2048)), 1009},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachReadSide(t, func(t *testing.T, cfg server.Config) {
				cfg.MaxPayloadLength = 1024
				disconnected := newRecorder[server.ClientDisconnectedEvent]()
				ts := startServer(t, nil, server.Options{Config: cfg,
					ClientDisconnected: func(_ context.Context, ev server.ClientDisconnectedEvent) error {
						disconnected.Add(ev)
						return nil
					}})
				c := dialRawTo(t, ts, "bad")
				if _, err := c.conn.Write(tt.bytes); err != nil {
					t.Fatal(err)
				}
				c.expectClose(t, tt.code)
				if ev := disconnected.Wait(t); ev.ClientID != c.id {
					t.Fatalf("disconnected %+v, want %s", ev, c.id)
				}
			})
		})
	}
}

func TestReadSidePeerCloseIsEchoed(t *testing.T) {
	forEachReadSide(t, func(t *testing.T, cfg server.Config) {
		ts := echoServer(t, cfg)
		c := dialRawTo(t, ts, "leaving")
		payload := append(binary.BigEndian.AppendUint16(nil, 4321), "bye"...)
		if _, err := c.conn.Write(frame(true, opClose, payload)); err != nil {
			t.Fatal(err)
		}
		op, p := c.readFrame(t)
		if op != opClose || len(p) < 2 || binary.BigEndian.Uint16(p) != 4321 {
			t.Fatalf("got %#x %q, want the close echoed with 4321", op, p)
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := c.br.ReadByte(); err != io.EOF {
			t.Fatalf("after the echo: %v, want EOF", err)
		}
		eventually(t, "client removed", func() bool { return ts.h.Stats().Connections == 0 })
	})
}

// A connection that sends nothing, not even pongs, ends after IdleTimeout;
// one that keeps sending pings does not.
func TestReadSideIdleTimeout(t *testing.T) {
	forEachReadSide(t, func(t *testing.T, cfg server.Config) {
		cfg.IdleTimeout = 300 * time.Millisecond
		cfg.SendPings = server.Bool(false)
		ts := echoServer(t, cfg)
		quiet := dialRawTo(t, ts, "quiet")
		busy := dialRawTo(t, ts, "busy")
		start := time.Now()
		deadline := start.Add(waitTimeout)
		for time.Now().Before(deadline) {
			if _, ok := ts.h.Client(quiet.id); !ok {
				break
			}
			if _, err := busy.conn.Write(frame(true, 0x9, nil)); err != nil {
				t.Fatal(err)
			}
			if op, _ := busy.readFrame(t); op != 0xA {
				t.Fatalf("opcode %#x, want a pong", op)
			}
			time.Sleep(50 * time.Millisecond) // the pace of the busy client's pings
		}
		if _, ok := ts.h.Client(quiet.id); ok {
			t.Fatal("the quiet client was never dropped")
		}
		if took := time.Since(start); took < cfg.IdleTimeout {
			t.Errorf("dropped after %v, before IdleTimeout", took)
		}
		if _, ok := ts.h.Client(busy.id); !ok {
			t.Error("the client sending pings was dropped")
		}
		_ = quiet.conn.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := io.ReadAll(quiet.br); err != nil {
			t.Errorf("quiet client's socket: %v, want EOF", err)
		}
	})
}

// On the poller an idle authenticated connection has no goroutine; on the
// portable side it has its reader.
func TestReadSideGoroutinesPerIdleConnection(t *testing.T) {
	const n = 200
	for _, tt := range []struct {
		name string
		cfg  server.Config
		min  float64
		max  float64
	}{
		{"poller", server.Config{}, -1, 0.1},
		{"goroutine", server.Config{Pollers: server.Off}, 0.9, 1.1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := echoServer(t, tt.cfg)
			g0 := runtime.NumGoroutine()
			clients := make([]*rawClient, n)
			for i := range clients {
				clients[i] = dialRawTo(t, ts, "idle")
			}
			var per float64
			defer func() { t.Logf("%.3f goroutines per connection", per) }()
			eventually(t, "goroutines settled", func() bool {
				per = float64(runtime.NumGoroutine()-g0) / n
				return per >= tt.min && per <= tt.max
			})
			// And every one of them still answers.
			for _, c := range clients[:10] {
				if err := c.writeText([]byte(`{"event":"say","data":1}`)); err != nil {
					t.Fatal(err)
				}
				if err := c.expectText(waitTimeout); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// A client that sends a message and shuts its side at once (the data and
// the end of input may arrive in one readiness event) is seen to go at
// once, not after IdleTimeout.
func TestReadSideEndOfInputRightAfterData(t *testing.T) {
	forEachReadSide(t, func(t *testing.T, cfg server.Config) {
		cfg.IdleTimeout = time.Minute
		disconnected := newRecorder[server.ClientDisconnectedEvent]()
		ts := startServer(t, nil, server.Options{Config: cfg,
			ClientDisconnected: func(_ context.Context, ev server.ClientDisconnectedEvent) error {
				disconnected.Add(ev)
				return nil
			}})
		const n = 20
		for i := range n {
			c := dialRawTo(t, ts, "leaver")
			msg := frame(true, opText, []byte(`{"event":"say","data":`+strconv.Itoa(i)+`}`))
			if _, err := c.conn.Write(msg); err != nil {
				t.Fatal(err)
			}
			if err := c.conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
		}
		for range n {
			disconnected.Wait(t) // within waitTimeout, far below IdleTimeout
		}
	})
}
