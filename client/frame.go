package client

import (
	"encoding/json"
	"unicode/utf8"
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
	if end, ok := skipValue(raw, 0, 0); !ok || end != len(raw) {
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

// maxParseDepth bounds the nesting parseFrame follows inside data; deeper
// values go to encoding/json (which allows 10000 levels).
const maxParseDepth = 64

// parseFrame reads b when it has the usual shape, and says ok only when the
// Frame is exactly the one json.Unmarshal would decode (FuzzParseFrame
// checks that): a JSON object whose keys are among event, data, id, room
// and offset, each at most once, spelled in lower case; the string values
// valid UTF-8 without escapes or control characters; data any valid JSON
// value, kept as its bytes; nothing but white space after the object.
func parseFrame(b []byte) (f Frame, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return Frame{}, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return Frame{}, skipSpace(b, i+1) == len(b)
	}
	var seen uint8
	for {
		key, end, ok := plainString(b, i)
		if !ok {
			return Frame{}, false
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return Frame{}, false
		}
		i = skipSpace(b, i+1)
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
			s, end, ok := plainString(b, i)
			if !ok || !utf8.Valid(s) {
				return Frame{}, false
			}
			*dst = string(s)
			i = end
		} else {
			end, ok := skipValue(b, i, 0)
			if !ok {
				return Frame{}, false
			}
			f.Data = append(json.RawMessage(nil), b[i:end]...)
			i = end
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return Frame{}, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return f, skipSpace(b, i+1) == len(b)
		default:
			return Frame{}, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// plainString reads a string starting at b[i] that has no escape and no
// control character, and returns its content and the index after it.
func plainString(b []byte, i int) (s []byte, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// skipValue checks the JSON value starting at b[i] as strictly as
// encoding/json does and returns the index after it.
func skipValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '{':
		if depth >= maxParseDepth {
			return 0, false
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			end, ok := skipString(b, i)
			if !ok {
				return 0, false
			}
			i = skipSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			if i, ok = skipValue(b, skipSpace(b, i+1), depth+1); !ok {
				return 0, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case '}':
				return i + 1, true
			default:
				return 0, false
			}
		}
	case c == '[':
		if depth >= maxParseDepth {
			return 0, false
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = skipValue(b, i, depth+1); !ok {
				return 0, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case ']':
				return i + 1, true
			default:
				return 0, false
			}
		}
	case c == '"':
		return skipString(b, i)
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(b, i)
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	}
	return 0, false
}

// skipString checks a string with any escapes JSON allows.
func skipString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			j++
			if j >= len(b) {
				return 0, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return 0, false
				}
				for _, h := range b[j+1 : j+5] {
					if !isHex(h) {
						return 0, false
					}
				}
				j += 4
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// skipNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func skipNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func skipLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}
