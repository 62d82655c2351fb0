// Package jsonscan finds the boundaries of JSON values in a byte slice
// without decoding them and without reflection. It accepts exactly what
// encoding/json accepts (checked by FuzzSkipValue), so a caller can take a
// fast path over the usual shape of a frame and leave anything else to
// encoding/json.
//
// Every function takes the input b and the index i where the value starts,
// and returns the index just after it; ok is false when b[i:] does not
// start with such a value. None of them allocates.
package jsonscan

// MaxDepth bounds the nesting of arrays and objects SkipValue follows;
// deeper values are refused, and left to encoding/json by the callers
// (which allows 10000 levels).
const MaxDepth = 64

// SkipSpace returns the index of the first byte at or after i that is not
// JSON white space (space, tab, line feed, carriage return), or len(b).
func SkipSpace(b []byte, i int) int {
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

// PlainString reads a string starting at b[i] that has no escape and no
// control character, and returns its content (a sub-slice of b, not
// checked for valid UTF-8) and the index after the closing quote. ok is
// false for anything else, including valid strings with escapes.
func PlainString(b []byte, i int) (s []byte, end int, ok bool) {
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

// SkipValue checks the JSON value starting at b[i] (no white space before
// it) as strictly as encoding/json does, nested at most MaxDepth levels,
// and returns the index after it. Invalid UTF-8 inside strings is not
// refused, as encoding/json does not refuse it either.
func SkipValue(b []byte, i int) (end int, ok bool) {
	return skipValue(b, i, 0)
}

func skipValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '{':
		if depth >= MaxDepth {
			return 0, false
		}
		i = SkipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			end, ok := SkipString(b, i)
			if !ok {
				return 0, false
			}
			i = SkipSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			if i, ok = skipValue(b, SkipSpace(b, i+1), depth+1); !ok {
				return 0, false
			}
			var done bool
			if i, done, ok = afterElement(b, i, '}'); done || !ok {
				return i, ok
			}
		}
	case c == '[':
		if depth >= MaxDepth {
			return 0, false
		}
		i = SkipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = skipValue(b, i, depth+1); !ok {
				return 0, false
			}
			var done bool
			if i, done, ok = afterElement(b, i, ']'); done || !ok {
				return i, ok
			}
		}
	case c == '"':
		return SkipString(b, i)
	case c == '-' || c >= '0' && c <= '9':
		return SkipNumber(b, i)
	case c == 't':
		return SkipLiteral(b, i, "true")
	case c == 'f':
		return SkipLiteral(b, i, "false")
	case c == 'n':
		return SkipLiteral(b, i, "null")
	}
	return 0, false
}

// SkipString checks a string starting at b[i], with any escape JSON
// allows, and returns the index after its closing quote.
func SkipString(b []byte, i int) (end int, ok bool) {
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

// SkipNumber checks a number -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
// starting at b[i] and returns the index after it. It does not look past
// the number: "01" is the number 0 followed by a 1, which the caller
// refuses as it would refuse any other byte there.
func SkipNumber(b []byte, i int) (end int, ok bool) {
	if i < len(b) && b[i] == '-' {
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

// SkipLiteral checks that b[i:] starts with lit (true, false or null) and
// returns the index after it. Like SkipNumber it does not look past it.
func SkipLiteral(b []byte, i int, lit string) (end int, ok bool) {
	if i < 0 || len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// afterElement reads what follows a member of an object or an element of an
// array at b[i:]: a comma (j is where the next one starts) or closing (done;
// j is just past it). ok is false for anything else.
func afterElement(b []byte, i int, closing byte) (j int, done, ok bool) {
	i = SkipSpace(b, i)
	switch {
	case i >= len(b):
		return 0, false, false
	case b[i] == ',':
		return SkipSpace(b, i+1), false, true
	case b[i] == closing:
		return i + 1, true, true
	}
	return 0, false, false
}
