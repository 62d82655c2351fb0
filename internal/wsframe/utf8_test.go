package wsframe

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// canComplete is the oracle for fail-fast: whether some continuation of at
// most three bytes makes p valid UTF-8. Trying every continuation byte
// class boundary is enough, as the table of valid sequences has no other
// boundaries.
func canComplete(p []byte) bool {
	if utf8.Valid(p) {
		return true
	}
	probes := []byte{0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF}
	for _, a := range probes {
		for _, b := range probes {
			for _, c := range probes {
				for _, tail := range [][]byte{{a}, {a, b}, {a, b, c}} {
					if utf8.Valid(append(p[:len(p):len(p)], tail...)) {
						return true
					}
				}
			}
		}
	}
	return false
}

// checkFeed feeds p in the given pieces and checks, after every piece,
// that the validator rejects exactly when no continuation can be valid,
// and at the end that it accepts exactly the valid strings.
func checkFeed(t *testing.T, p []byte, cuts []int) {
	t.Helper()
	s := utf8Accept
	prev := 0
	for _, c := range append(cuts, len(p)) {
		if c < prev || c > len(p) {
			continue
		}
		s = s.feed(p[prev:c])
		if want := canComplete(p[:c]); (s != utf8Reject) != want {
			t.Fatalf("%q cut at %v: after %d bytes state %d, can complete %v", p, cuts, c, s, want)
		}
		if s == utf8Reject {
			return
		}
		prev = c
	}
	if (s == utf8Accept) != utf8.Valid(p) {
		t.Fatalf("%q cut at %v: final state %d, utf8.Valid %v", p, cuts, s, utf8.Valid(p))
	}
}

func TestUTF8Feed(t *testing.T) {
	for _, p := range utf8Payloads() {
		b := []byte(p.s)
		for i := 0; i <= len(b); i++ {
			checkFeed(t, b, []int{i})
		}
		var every []int
		for i := range b {
			every = append(every, i)
		}
		checkFeed(t, b, every)
	}
	// Random strings drawn from bytes that sit on the boundaries of the
	// UTF-8 tables, with ASCII runs for the utf8.Valid fast path.
	alphabet := []byte{'a', 0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
		0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		p := make([]byte, rng.IntN(24))
		for i := range p {
			p[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if rng.IntN(2) == 0 { // mostly valid text
			p = []byte(string([]rune(string(p))))
		}
		checkFeed(t, p, []int{rng.IntN(len(p) + 1), rng.IntN(len(p) + 1)})
	}
}

// FuzzUTF8Feed checks the incremental validator against utf8.Valid with
// the input cut in three at fuzzer-chosen places.
func FuzzUTF8Feed(f *testing.F) {
	for _, p := range utf8Payloads() {
		f.Add([]byte(p.s), uint8(1), uint8(3))
	}
	f.Fuzz(func(t *testing.T, p []byte, a, b uint8) {
		i, j := int(a)%(len(p)+1), int(b)%(len(p)+1)
		if i > j {
			i, j = j, i
		}
		checkFeed(t, p, []int{i, j})
	})
}
