package wsframe

import "unicode/utf8"

// utf8State is where an incremental UTF-8 validator stands between chunks:
// either at a rune boundary, or inside a multi-byte sequence with the range
// the next byte must fall in (Unicode 15, table 3-7). One byte is enough to
// carry a text message's validation across frames and reads.
type utf8State uint8

const (
	utf8Accept  utf8State = iota // at a rune boundary
	utf8Need1                    // one more byte in 80..BF
	utf8Need2                    // two more, the next in 80..BF
	utf8Need3                    // three more, the next in 80..BF
	utf8AfterE0                  // next in A0..BF (no overlong), then one more
	utf8AfterED                  // next in 80..9F (no surrogate), then one more
	utf8AfterF0                  // next in 90..BF (no overlong), then two more
	utf8AfterF4                  // next in 80..8F (not above U+10FFFF), then two more
	utf8Reject                   // no continuation can make the bytes valid
)

// step advances the validator by one byte.
func (s utf8State) step(b byte) utf8State {
	switch s {
	case utf8Accept:
		switch {
		case b < 0x80:
			return utf8Accept
		case b < 0xC2: // continuation byte or overlong two-byte lead
			return utf8Reject
		case b < 0xE0:
			return utf8Need1
		case b == 0xE0:
			return utf8AfterE0
		case b == 0xED:
			return utf8AfterED
		case b < 0xF0:
			return utf8Need2
		case b == 0xF0:
			return utf8AfterF0
		case b < 0xF4:
			return utf8Need3
		case b == 0xF4:
			return utf8AfterF4
		}
	case utf8Need1:
		if b&0xC0 == 0x80 {
			return utf8Accept
		}
	case utf8Need2:
		if b&0xC0 == 0x80 {
			return utf8Need1
		}
	case utf8Need3:
		if b&0xC0 == 0x80 {
			return utf8Need2
		}
	case utf8AfterE0:
		if b >= 0xA0 && b <= 0xBF {
			return utf8Need1
		}
	case utf8AfterED:
		if b >= 0x80 && b <= 0x9F {
			return utf8Need1
		}
	case utf8AfterF0:
		if b >= 0x90 && b <= 0xBF {
			return utf8Need2
		}
	case utf8AfterF4:
		if b >= 0x80 && b <= 0x8F {
			return utf8Need2
		}
	}
	return utf8Reject
}

// feed validates the next chunk of a text message. It returns utf8Reject as
// soon as the bytes seen so far cannot be the start of valid UTF-8, whatever
// follows (Autobahn 6.4.x "fail fast"); a message is valid when the state
// after its last chunk is utf8Accept.
//
// The byte-wise automaton only runs on the few bytes of a sequence split
// between chunks; the rest goes through utf8.Valid, which has an ASCII fast
// path. That split is exact: in valid UTF-8 every byte that is not a
// continuation byte starts a rune, so the prefix up to the last such byte
// is valid on its own exactly when the whole can still be.
func (s utf8State) feed(p []byte) utf8State {
	i := 0
	for ; s != utf8Accept && i < len(p); i++ {
		if s = s.step(p[i]); s == utf8Reject {
			return s
		}
	}
	p = p[i:]
	// A sequence that may continue in the next chunk starts in the last
	// three bytes with a lead byte (C0 and above) followed only by
	// continuation bytes.
	cut := len(p)
	for j := len(p) - 1; j >= 0 && j >= len(p)-3; j-- {
		if p[j] < 0x80 {
			break
		}
		if p[j] >= 0xC0 {
			cut = j
			break
		}
	}
	if !utf8.Valid(p[:cut]) {
		return utf8Reject
	}
	for _, b := range p[cut:] {
		if s = s.step(b); s == utf8Reject {
			return s
		}
	}
	return s
}
