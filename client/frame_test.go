package client

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/ignis-go/wscomponent/internal/jsonscan"
)

// frameSeeds are frames as servers write them, and spellings the fast
// path must leave to encoding/json (or reject like it).
var frameSeeds = []struct {
	give     string
	wantFast bool // parseFrame takes it
}{
	{give: `{"event":"bench","data":{"run":"r","seq":3,"t":1700000000000000001,"pad":"xxxx"}}`, wantFast: true},
	{give: `{"event":"ack","data":{"event":"join","rooms":["a"],"refused":[]},"id":"7"}`, wantFast: true},
	{give: `{"event":"chat","data":"hi","room":"r","offset":"e1:1-0"}`, wantFast: true},
	{give: " {\n\t\"event\" : \"x\" ,\r\"data\" : [ 1 , -2.5e+3 , true , false , null , { } , [ ] ] } ", wantFast: true},
	{give: `{"data":{"a":"\u00e9\n\"\\\/\b\f\r\t"},"event":"x"}`, wantFast: true},
	{give: `{"event":"heartbeat"}`, wantFast: true},
	{give: `{}`, wantFast: true},
	{give: `{"event":"x","data":null}`, wantFast: true},
	{give: `{"event":"x","data":"` + "\xff" + `"}`, wantFast: true}, // data keeps its bytes
	{give: `{"event":"x","data":0}`, wantFast: true},
	{give: `{"event":"caf\u00e9"}`},         // escape in a string field
	{give: `{"event":"caf` + "\xff" + `"}`}, // invalid UTF-8: json.Unmarshal replaces it
	{give: `{"Event":"x"}`},                 // json.Unmarshal matches keys case-insensitively
	{give: `{"event":"x","extra":1}`},
	{give: `{"event":"x","event":"y"}`},
	{give: `{"event":null}`},
	{give: `{"event":1}`},
	{give: `null`},
	{give: `[]`},
	{give: `{"event":"x"} {}`},
	{give: `{"event":"x",}`},
	{give: `{"event":"x","data":01}`},
	{give: `{"event":"x","data":1.}`},
	{give: `{"event":"x","data":-}`},
	{give: `{"event":"x","data":1e}`},
	{give: `{"event":"x","data":tru}`},
	{give: `{"event":"x","data":truex}`},
	{give: `{"event":"x","data":"\u12"}`},
	{give: `{"event":"x","data":"\x"}`},
	{give: "{\"event\":\"x\",\"data\":\"\t\"}"},
	{give: `{"event":"x","data":[1,]}`},
	{give: `{"event":"x","data":{"a"}}`},
	{give: `{"event":"x","data":{"a":1,}}`},
	{give: `{"event":"x","data":` + deep(jsonscan.MaxDepth+1) + `}`},
	{give: `{"event":"x"`},
	{give: ``},
}

// deep is n nested arrays.
func deep(n int) string {
	return string(bytes.Repeat([]byte("["), n)) + string(bytes.Repeat([]byte("]"), n))
}

// checkSame fails unless parseFrame, when it takes b, gives what
// json.Unmarshal gives, and decodeFrame always does.
func checkSame(t *testing.T, b []byte) (fast bool) {
	t.Helper()
	var want Frame
	wantErr := json.Unmarshal(b, &want)
	got, ok := parseFrame(b)
	if ok && (wantErr != nil || !sameFrame(got, want)) {
		t.Fatalf("parseFrame(%q) = %+v, json.Unmarshal = %+v, %v", b, got, want, wantErr)
	}
	got, err := decodeFrame(b)
	if (err != nil) != (wantErr != nil) || err == nil && !sameFrame(got, want) {
		t.Fatalf("decodeFrame(%q) = %+v, %v; json.Unmarshal = %+v, %v", b, got, err, want, wantErr)
	}
	return ok
}

func sameFrame(a, b Frame) bool {
	return a.Event == b.Event && a.ID == b.ID && a.Room == b.Room && a.Offset == b.Offset &&
		bytes.Equal(a.Data, b.Data) && (a.Data == nil) == (b.Data == nil)
}

func TestParseFrame(t *testing.T) {
	for _, tt := range frameSeeds {
		if fast := checkSame(t, []byte(tt.give)); fast != tt.wantFast {
			t.Errorf("parseFrame(%q) took it: %v, want %v", tt.give, fast, tt.wantFast)
		}
	}
}

// FuzzParseFrame checks that the fast path never decodes a frame other
// than encoding/json would.
func FuzzParseFrame(f *testing.F) {
	for _, tt := range frameSeeds {
		f.Add([]byte(tt.give))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkSame(t, b) })
}

func BenchmarkDecodeFrame(b *testing.B) {
	frame := []byte(`{"event":"bench","data":{"run":"m4x2k1","seq":123,"t":1700000000000000001,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`)
	b.Run("parseFrame", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := parseFrame(frame); !ok {
				b.Fatal("not taken")
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var f Frame
			if err := json.Unmarshal(frame, &f); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// rawFrameSeeds are frames with json.RawMessage data (Send, Request),
// and ones appendRawFrame must leave to json.Marshal.
var rawFrameSeeds = []struct {
	event, raw, id string
	wantFast       bool
}{
	{event: "echo", raw: `{"run":"","seq":3,"t":0,"pad":"xxxx"}`, wantFast: true},
	{event: "join", raw: `{"rooms":["a","b"],"since":{"a":"e:1-0"}}`, id: "12", wantFast: true},
	{event: "x", raw: `[1,-2.5e3,true,null,"\u00e9"]`, wantFast: true},
	{event: "x", raw: `"é"`, wantFast: true},
	{event: "x", raw: `{"a": 1}`},        // json.Marshal compacts it
	{event: "x", raw: `{"a":"<b>"}`},     // and escapes < and >
	{event: "x", raw: "\"\u2028\""},      // and U+2028
	{event: "x", raw: `{"a":}`},          // invalid: json.Marshal fails
	{event: "x", raw: ``},                // so does empty raw
	{event: `say "hi"`, raw: `1`},        // a quote in the event
	{event: "a&b", raw: `1`},             // HTML escaping of the event
	{event: "x", raw: `1`, id: "\u00e9"}, // non-ASCII id
	{event: "x", raw: `{"a":1}`, id: "r-1", wantFast: true},
}

func TestAppendRawFrame(t *testing.T) {
	for _, tt := range rawFrameSeeds {
		got, ok := checkRawFrame(t, tt.event, []byte(tt.raw), tt.id)
		if ok != tt.wantFast {
			t.Errorf("appendRawFrame(%q, %s, %q) took it: %v (%s), want %v", tt.event, tt.raw, tt.id, ok, got, tt.wantFast)
		}
	}
	if got, _ := encode("echo", json.RawMessage(`{"a":1}`), "7"); string(got) != `{"event":"echo","data":{"a":1},"id":"7"}` {
		t.Errorf("encode = %s", got)
	}
}

// checkRawFrame fails unless appendRawFrame, when it takes the frame,
// writes what json.Marshal writes.
func checkRawFrame(t *testing.T, event string, raw []byte, id string) ([]byte, bool) {
	t.Helper()
	got, ok := appendRawFrame(nil, event, raw, id)
	if !ok {
		return nil, false
	}
	want, err := json.Marshal(outFrame{Event: event, Data: json.RawMessage(raw), ID: id})
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("appendRawFrame(%q, %q, %q) = %s; json.Marshal = %s, %v", event, raw, id, got, want, err)
	}
	return got, true
}

// FuzzAppendRawFrame checks that the fast path never writes a frame other
// than json.Marshal would.
func FuzzAppendRawFrame(f *testing.F) {
	for _, tt := range rawFrameSeeds {
		f.Add(tt.event, []byte(tt.raw), tt.id)
	}
	f.Fuzz(func(t *testing.T, event string, raw []byte, id string) { checkRawFrame(t, event, raw, id) })
}
