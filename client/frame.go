package client

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/ignis-go/wscomponent/internal/jsonscan"
)

// appendRawFrame appends the frame {"event","data":raw,"id"?} to b without
// reflection, when the bytes are exactly those json.Marshal writes for
// outFrame: event and id made of printable ASCII that neither JSON nor
// json.Marshal's HTML escaping changes, raw a valid JSON value without
// white space or characters json.Marshal would escape in it (<, >, &,
// U+2028, U+2029: any 0xE2 byte is left to it). ok is false otherwise,
// and the caller uses json.Marshal (FuzzAppendRawFrame checks both agree).
func appendRawFrame(b []byte, event string, raw json.RawMessage, id string) ([]byte, bool) {
	if !plainASCII(event) || !plainASCII(id) || len(raw) == 0 {
		return nil, false
	}
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r', '<', '>', '&', 0xE2:
			return nil, false
		}
	}
	if end, ok := jsonscan.SkipValue(raw, 0); !ok || end != len(raw) {
		return nil, false
	}
	b = append(b, `{"event":"`...)
	b = append(b, event...)
	b = append(b, `","data":`...)
	b = append(b, raw...)
	if id != "" {
		b = append(b, `,"id":"`...)
		b = append(b, id...)
		b = append(b, '"')
	}
	return append(b, '}'), true
}

// plainASCII reports whether s is printable ASCII that JSON strings and
// json.Marshal's HTML escaping keep as it is.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7E, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// decodeFrame decodes one frame from the server. Every frame goes through
// it on the reader goroutine, so the shape servers write —
// {"event":"…","data":…,"id":"…","room":"…","offset":"…"}, keys in any
// order, no escapes in the string values — is read by parseFrame without
// reflection; anything else (escapes, other keys, odd spellings, invalid
// JSON) goes to encoding/json, so the result is always what json.Unmarshal
// gives. Reflection, its allocations and the stack growth it causes on
// every reader cost more than the rest of the client's receive path.
func decodeFrame(b []byte) (Frame, error) {
	if f, ok := parseFrame(b); ok {
		return f, nil
	}
	var f Frame
	err := json.Unmarshal(b, &f)
	return f, err
}

// parseFrame reads b when it has the usual shape, and says ok only when the
// Frame is exactly the one json.Unmarshal would decode (FuzzParseFrame
// checks that): a JSON object whose keys are among event, data, id, room
// and offset, each at most once, spelled in lower case; the string values
// valid UTF-8 without escapes or control characters; data any valid JSON
// value nested at most jsonscan.MaxDepth levels (deeper goes to
// encoding/json), kept as its bytes; nothing but white space after the
// object.
func parseFrame(b []byte) (f Frame, ok bool) {
	i := jsonscan.SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return Frame{}, false
	}
	i = jsonscan.SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return Frame{}, jsonscan.SkipSpace(b, i+1) == len(b)
	}
	var seen uint8
	for {
		key, end, ok := jsonscan.PlainString(b, i)
		if !ok {
			return Frame{}, false
		}
		i = jsonscan.SkipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return Frame{}, false
		}
		i = jsonscan.SkipSpace(b, i+1)
		var bit uint8
		var dst *string
		switch string(key) {
		case "event":
			bit, dst = 1, &f.Event
		case "data":
			bit = 2
		case "id":
			bit, dst = 4, &f.ID
		case "room":
			bit, dst = 8, &f.Room
		case "offset":
			bit, dst = 16, &f.Offset
		default:
			return Frame{}, false
		}
		if seen&bit != 0 {
			return Frame{}, false // json.Unmarshal merges duplicates: leave it to it
		}
		seen |= bit
		if dst != nil {
			s, end, ok := jsonscan.PlainString(b, i)
			if !ok || !utf8.Valid(s) {
				return Frame{}, false
			}
			*dst = string(s)
			i = end
		} else {
			end, ok := jsonscan.SkipValue(b, i)
			if !ok {
				return Frame{}, false
			}
			f.Data = append(json.RawMessage(nil), b[i:end]...)
			i = end
		}
		i = jsonscan.SkipSpace(b, i)
		if i >= len(b) {
			return Frame{}, false
		}
		switch b[i] {
		case ',':
			i = jsonscan.SkipSpace(b, i+1)
		case '}':
			return f, jsonscan.SkipSpace(b, i+1) == len(b)
		default:
			return Frame{}, false
		}
	}
}
