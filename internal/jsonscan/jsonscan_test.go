package jsonscan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// valueSeeds are JSON texts, valid and not; the fuzz test starts from them.
var valueSeeds = []string{
	`{"event":"bench","data":{"run":"r","seq":3,"t":1700000000000000001,"pad":"xxxx"}}`,
	" {\n\t\"a\" : [ 1 , -2.5e+3 , true , false , null , { } , [ ] ] } ",
	`"\u00e9\n\"\\\/\b\f\r\t"`, `"` + "\xff" + `"`, `""`, `0`, `-0`, `-0.0e-0`, `1E+2`, `123456789`,
	`true`, `false`, `null`, `[]`, `{}`, `[[[]]]`,
	``, ` `, `{`, `[`, `"`, `"\`, `"\u12"`, `"\x"`, "\"\t\"", `01`, `1.`, `.5`, `-`, `1e`, `1e+`, `+1`,
	`tru`, `truex`, `nul`, `[1,]`, `[,1]`, `{"a"}`, `{"a":1,}`, `{"a" 1}`, `{1:2}`, `1 2`, `{} {}`,
	strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
	strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
}

// whole reports whether b is one value with white space around it, as
// the scanner sees it, and the value's bounds.
func whole(b []byte) (start, end int, ok bool) {
	start = SkipSpace(b, 0)
	end, ok = SkipValue(b, start)
	return start, end, ok && SkipSpace(b, end) == len(b)
}

// depth is the deepest nesting of arrays and objects in the valid JSON b.
func depth(b []byte) int {
	d, max, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			d++
			max = maxInt(max, d)
		case c == ']' || c == '}':
			d--
		}
	}
	return max
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// checkValue fails unless the scanner and encoding/json agree on b: the
// same texts are valid (but for nesting deeper than MaxDepth, which the
// scanner refuses) and a valid value spans the bytes json.RawMessage keeps.
func checkValue(t *testing.T, b []byte) {
	t.Helper()
	start, end, ok := whole(b)
	valid := json.Valid(b)
	switch {
	case ok && !valid:
		t.Fatalf("scanner takes %q, json.Valid does not", b)
	case !ok && valid && depth(b) <= MaxDepth:
		t.Fatalf("json.Valid takes %q (depth %d), the scanner does not", b, depth(b))
	case !ok:
		return
	}
	var raw json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || !bytes.Equal(raw, b[start:end]) {
		t.Fatalf("value of %q: scanner %q, json.RawMessage %q, %v", b, b[start:end], raw, err)
	}
	// The same value inside an array and an object ends where it did.
	v := b[start:end]
	for _, wrap := range [][2]string{{"[", ",0]"}, {`{"k":`, "}"}, {"[ ", " ]"}} {
		w := append(append([]byte(wrap[0]), v...), wrap[1]...)
		if depth(w) > MaxDepth {
			continue
		}
		if _, _, ok := whole(w); !ok {
			t.Fatalf("scanner refuses %q around valid %q", w, v)
		}
		if got, ok := SkipValue(w, len(wrap[0])); !ok || got != len(wrap[0])+len(v) {
			t.Fatalf("SkipValue(%q, %d) = %d, %v; want %d", w, len(wrap[0]), got, ok, len(wrap[0])+len(v))
		}
	}
}

func TestSkipValue(t *testing.T) {
	for _, s := range valueSeeds {
		checkValue(t, []byte(s))
	}
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	if _, _, ok := whole([]byte(deep)); ok {
		t.Errorf("scanner took %d levels, MaxDepth is %d", MaxDepth+1, MaxDepth)
	}
	for _, tt := range []struct {
		give string
		i    int
		end  int
		ok   bool
	}{
		{`[1, "a"]x`, 0, 8, true},
		{`x{"a":1}`, 1, 8, true},
		{`01`, 0, 1, true}, // 0 then a 1 the caller refuses
		{`truex`, 0, 4, true},
		{` 1`, 0, 0, false}, // no white space before the value
		{`1`, 1, 0, false},
		{`1`, 5, 0, false},
	} {
		end, ok := SkipValue([]byte(tt.give), tt.i)
		if end != tt.end || ok != tt.ok {
			t.Errorf("SkipValue(%q, %d) = %d, %v; want %d, %v", tt.give, tt.i, end, ok, tt.end, tt.ok)
		}
	}
}

func TestSkipSpace(t *testing.T) {
	for _, tt := range []struct {
		give string
		i    int
		want int
	}{
		{"", 0, 0}, {" \t\r\nx", 0, 4}, {"x ", 0, 0}, {"x  ", 1, 3}, {"\v", 0, 0}, {"\u00a0", 0, 0},
	} {
		if got := SkipSpace([]byte(tt.give), tt.i); got != tt.want {
			t.Errorf("SkipSpace(%q, %d) = %d, want %d", tt.give, tt.i, got, tt.want)
		}
	}
}

func TestPlainString(t *testing.T) {
	for _, tt := range []struct {
		give string
		want string
		end  int
		ok   bool
	}{
		{`"echo",`, "echo", 6, true},
		{`""`, "", 2, true},
		{`"é` + "\xff" + `"`, "é\xff", 5, true}, // UTF-8 is the caller's business
		{`"a\"b"`, "", 0, false},
		{`"a\u0062"`, "", 0, false},
		{"\"a\nb\"", "", 0, false},
		{`"abc`, "", 0, false},
		{`abc`, "", 0, false},
		{``, "", 0, false},
	} {
		s, end, ok := PlainString([]byte(tt.give), 0)
		if string(s) != tt.want || end != tt.end || ok != tt.ok {
			t.Errorf("PlainString(%q) = %q, %d, %v; want %q, %d, %v", tt.give, s, end, ok, tt.want, tt.end, tt.ok)
		}
		if ok && utf8.Valid(s) {
			// A plain string decodes to its own bytes.
			var dec string
			if err := json.Unmarshal([]byte(tt.give[:end]), &dec); err != nil || dec != string(s) {
				t.Errorf("json.Unmarshal(%q) = %q, %v; PlainString gave %q", tt.give[:end], dec, err, s)
			}
		}
	}
}

func TestSkipStringNumberLiteral(t *testing.T) {
	for _, tt := range []struct {
		name string
		f    func([]byte, int) (int, bool)
		give string
		end  int
		ok   bool
	}{
		{"string", SkipString, `"a\"b\u00E9\/"x`, 14, true},
		{"string", SkipString, `"\u00G0"`, 0, false},
		{"string", SkipString, `"\u00e`, 0, false},
		{"string", SkipString, `"\`, 0, false},
		{"string", SkipString, `'a'`, 0, false},
		{"number", SkipNumber, `-12.5e-3,`, 8, true},
		{"number", SkipNumber, `0.0`, 3, true},
		{"number", SkipNumber, `-`, 0, false},
		{"number", SkipNumber, ``, 0, false},
		{"number", SkipNumber, `1.e3`, 0, false},
		{"number", SkipNumber, `1e+`, 0, false},
		{"number", SkipNumber, `+1`, 0, false},
		{"literal", func(b []byte, i int) (int, bool) { return SkipLiteral(b, i, "null") }, `null]`, 4, true},
		{"literal", func(b []byte, i int) (int, bool) { return SkipLiteral(b, i, "null") }, `nul`, 0, false},
		{"literal", func(b []byte, i int) (int, bool) { return SkipLiteral(b, i, "true") }, `True`, 0, false},
	} {
		end, ok := tt.f([]byte(tt.give), 0)
		if end != tt.end || ok != tt.ok {
			t.Errorf("%s %q = %d, %v; want %d, %v", tt.name, tt.give, end, ok, tt.end, tt.ok)
		}
	}
}

// FuzzSkipValue checks that the scanner accepts the same texts as
// json.Valid (up to MaxDepth levels) and ends values where encoding/json
// does.
func FuzzSkipValue(f *testing.F) {
	for _, s := range valueSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkValue(t, b) })
}

func BenchmarkSkipValue(b *testing.B) {
	v := []byte(`{"run":"m4x2k1","seq":123,"t":1700000000000000001,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","a":[1,2.5,true,null]}`)
	b.ReportAllocs()
	for b.Loop() {
		if end, ok := SkipValue(v, 0); !ok || end != len(v) {
			b.Fatal(end, ok)
		}
	}
}
