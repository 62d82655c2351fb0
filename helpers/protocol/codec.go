package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// The envelope and control codec, shared by the server and the emitter so
// that both write (and the server reads) the same bytes.

// MaxCloseReason is the longest reason a close frame can carry (RFC 6455
// §5.5: 125 bytes of payload, two of them the code).
const MaxCloseReason = 123

// EncodeEnvelope encodes env as published on Redis. A nil Data is sent as
// JSON null, as Ignis does.
func EncodeEnvelope(env Envelope) ([]byte, error) {
	if env.Data == nil {
		env.Data = json.RawMessage("null")
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode envelope: %w", err)
	}
	return b, nil
}

// DecodeEnvelope decodes and checks an envelope read from Redis: a JSON
// object with a serverId, a known type, an event, and a target unless it
// is a broadcast. An empty Data becomes nil.
func DecodeEnvelope(b []byte) (Envelope, error) {
	var env Envelope
	if !bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("{")) {
		return env, errors.New("protocol: envelope is not a JSON object")
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return env, fmt.Errorf("protocol: envelope: %w", err)
	}
	if env.ServerID == "" {
		return env, errors.New("protocol: envelope without serverId")
	}
	if !env.Type.Valid() {
		return env, fmt.Errorf("protocol: envelope type %q unknown", env.Type)
	}
	if env.Event == "" {
		return env, errors.New("protocol: envelope without event")
	}
	if env.Type != TypeBroadcast && env.Target == "" {
		return env, fmt.Errorf("protocol: %s envelope without target", env.Type)
	}
	if len(env.Data) == 0 {
		env.Data = nil
	}
	return env, nil
}

// EncodeControl encodes a control message for ChannelControl.
func EncodeControl(m Control) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode control message: %w", err)
	}
	return b, nil
}

// DecodeControl decodes and checks a message from ChannelControl: a
// disconnect order from a known sender, for exactly one of a user and a
// client, with an application close code (4000–4999) and a reason that
// fits a close frame.
func DecodeControl(payload []byte) (Control, error) {
	var m Control
	if err := json.Unmarshal(payload, &m); err != nil {
		return m, fmt.Errorf("protocol: control message: %w", err)
	}
	if m.ServerID == "" {
		return m, errors.New("protocol: control message without serverId")
	}
	if m.Type != ControlDisconnect {
		return m, fmt.Errorf("protocol: control message type %q unknown", m.Type)
	}
	if (m.User == "") == (m.Client == "") {
		return m, errors.New("protocol: disconnect control message needs exactly one of user and client")
	}
	if m.Code < 4000 || m.Code > 4999 {
		return m, fmt.Errorf("protocol: disconnect control message: code %d: want 4000-4999", m.Code)
	}
	if len(m.Reason) > MaxCloseReason || !utf8.ValidString(m.Reason) {
		return m, fmt.Errorf("protocol: disconnect control message: reason must be UTF-8 of at most %d bytes", MaxCloseReason)
	}
	return m, nil
}
