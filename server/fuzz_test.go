package server

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// FuzzParseFrame: any client frame is either routed, dropped without a
// reply, or answered "Invalid message format"; nothing panics, and a routed
// frame always has an event.
func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{
		`{"event":"chat","data":{"a":1},"id":"x"}`, `{"event":"join","data":{"rooms":["a"]}}`,
		`{}`, `null`, `[]`, `"s"`, `{"event":5}`, `{"event":null}`, `{"event":""}`, " \t{\"event\":\"e\"}",
		"{\"event\":\"\xff\"}", `{"event":"a","event":"b"}`, `{"id":7,"event":"e"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := parseFrame(data)
		switch {
		case err == nil:
			if msg.Event == "" {
				t.Fatalf("routed a frame without event: %q", data)
			}
			if msg.Data != nil && !json.Valid(msg.Data) {
				t.Fatalf("routed invalid data %q", msg.Data)
			}
		case errors.Is(err, errDropFrame), errors.Is(err, errInvalidFrame):
		default:
			t.Fatalf("unexpected error %v", err)
		}
		if msg.ID != "" && utf8.RuneCountInString(msg.ID) > protocol.MaxIDLength {
			t.Fatalf("accepted an id of %d characters", utf8.RuneCountInString(msg.ID))
		}
		if rooms, ok := decodeRooms(data); ok {
			valid, refused := sanitiseRooms(rooms)
			if len(valid)+len(refused) > len(rooms) {
				t.Fatalf("sanitising %q gave %d valid and %d refused", rooms, len(valid), len(refused))
			}
			for _, r := range valid {
				if !validRoomName(r) {
					t.Fatalf("kept invalid room %q", r)
				}
			}
		}
	})
}

// FuzzParseEnvelope: a Redis message is either a complete envelope or
// rejected; nothing panics.
func FuzzParseEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"serverId":"a","type":"room","target":"r","event":"e","data":{"x":1},"exclude":["c"]}`,
		`{"serverId":"emitter","type":"broadcast","event":"e"}`,
		`garbage`, `null`, `{"serverId":7}`, `{"serverId":"a","type":"user","event":"e"}`,
		`{"serverId":"a","type":"broadcast","event":"e","data":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := parseEnvelope(data)
		if err != nil {
			return
		}
		if env.ServerID == "" || env.Event == "" || !env.Type.Valid() {
			t.Fatalf("accepted incomplete envelope %+v", env)
		}
		if env.Type != protocol.TypeBroadcast && env.Target == "" {
			t.Fatalf("accepted %s envelope without target", env.Type)
		}
		if _, err := newRawMessage(env.Event, env.Data); err != nil && json.Valid(env.Data) {
			t.Fatalf("valid envelope data not framable: %v", err)
		}
	})
}

// FuzzParseControl: a ws:control message is either a complete disconnect
// order with an application close code or rejected; nothing panics.
func FuzzParseControl(f *testing.F) {
	for _, s := range []string{
		`{"serverId":"a","type":"disconnect","user":"u","code":4005,"reason":"Disconnected"}`,
		`{"serverId":"emitter","type":"disconnect","client":"c","code":4100,"reason":""}`,
		`{"serverId":"a","type":"disconnect","user":"u","client":"c","code":4005}`,
		`{"serverId":"a","type":"disconnect","user":"u","code":1000}`,
		`null`, `[]`, `{"type":"disconnect"}`, `garbage`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseControl(data)
		if err != nil {
			return
		}
		if m.ServerID == "" || m.Type != protocol.ControlDisconnect || (m.User == "") == (m.Client == "") ||
			m.Code < 4000 || m.Code > 4999 || len(m.Reason) > maxCloseReason {
			t.Fatalf("accepted bad control message %+v", m)
		}
	})
}
