package server

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/jsonscan"
)

// fastPathSeeds are client frames the fast path reads, and ones it must
// leave to encoding/json.
var fastPathSeeds = []struct {
	give     string
	wantFast bool // parseFrameFast takes it
}{
	{give: `{"event":"echo","data":{"run":"r","seq":3,"t":1700000000000000001,"pad":"xxxx"}}`, wantFast: true},
	{give: `{"event":"join","data":{"rooms":["a","b"]},"id":"17"}`, wantFast: true},
	{give: `{"id":"17","data":{"rooms":["a"]},"event":"leave"}`, wantFast: true},
	{give: `{"event":"heartbeat"}`, wantFast: true},
	{give: " {\n\t\"event\" : \"x\" ,\r\"data\" : [ 1 , -2.5e+3 , true , false , null , { } , [ ] ] } \n", wantFast: true},
	{give: `{"event":"x","data":{ "a" : [ 1 ] }}`, wantFast: true}, // data keeps its inner white space
	{give: `{"event":"x","data":{"a":"\u00e9\n\"\\\/\b\f\r\t"}}`, wantFast: true},
	{give: `{"event":"x","data":null}`, wantFast: true}, // Data is the bytes null
	{give: `{"event":"x","data":0}`, wantFast: true},
	{give: `{"event":"x","data":-0.5E-3}`, wantFast: true},
	{give: `{"event":"x","data":""}`, wantFast: true},
	{give: `{"event":"x","id":""}`, wantFast: true},
	{give: `{"event":"é","id":"` + strings.Repeat("é", protocol.MaxIDLength) + `"}`, wantFast: true},
	{give: `{"event":"x","room":"r","extra":{"event":1}}`, wantFast: true}, // other keys are ignored
	{give: `{"event":"x","id":"` + strings.Repeat("a", protocol.MaxIDLength+1) + `"}`},
	{give: `{"event":"caf\u00e9"}`},
	{give: `{"event":"x","id":"\u0031"}`},
	{give: `{"ev\u0065nt":"x"}`},
	{give: `{"event":"x","event":"y"}`},
	{give: `{"event":"x","data":1,"data":2}`},
	{give: `{"event":"x","id":"1","id":"2"}`},
	{give: `{"Event":"x"}`},
	{give: `{"event":"x","EVENT":"y"}`},
	{give: `{"event":"x","Data":2}`},
	{give: `{"event":"x","iD":"3"}`},
	{give: `{"event":"x","ıd":"3"}`}, // dotless i folds to I
	{give: `{"event":"x","ſ":1}`},
	{give: `{"event":"x","e_vent":"y"}`},
	{give: `{"event":""}`},
	{give: `{"event":null}`},
	{give: `{"event":1}`},
	{give: `{"event":["x"]}`},
	{give: `{"event":"x","id":7}`},
	{give: `{"event":"x","id":null}`},
	{give: `{"id":"1"}`},
	{give: `{"data":{}}`},
	{give: `{}`},
	{give: `null`},
	{give: `[]`},
	{give: `"event"`},
	{give: ``},
	{give: ` `},
	{give: `{"event":"` + "\xff" + `"}`},
	{give: `{"event":"x","data":"` + "\xff" + `"}`},
	{give: "\xff" + `{"event":"x"}`},
	{give: `{"event":"x"} {}`},
	{give: `{"event":"x"}x`},
	{give: `{"event":"x",}`},
	{give: `{"event":"x"`},
	{give: `{"event":"x","data":{"a":1`},
	{give: `{"event":"x","data":01}`},
	{give: `{"event":"x","data":1.}`},
	{give: `{"event":"x","data":tru}`},
	{give: `{"event":"x","data":"\x"}`},
	{give: "{\"event\":\"x\",\"data\":\"\t\"}"},
	{give: "{\"event\":\"x\ty\"}"},
	{give: `{"event":"x","data":` + strings.Repeat("[", jsonscan.MaxDepth+1) + strings.Repeat("]", jsonscan.MaxDepth+1) + `}`},
	{give: `{"event":"x","data":` + strings.Repeat("[", jsonscan.MaxDepth) + strings.Repeat("]", jsonscan.MaxDepth) + `}`, wantFast: true},
}

// checkFastPath fails unless parseFrameFast, when it takes b, gives what
// parseFrameJSON gives, and parseFrame always does.
func checkFastPath(t *testing.T, b []byte) (fast bool) {
	t.Helper()
	want, wantErr := parseFrameJSON(b)
	buf := bytes.Clone(b)
	got, ok := parseFrameFast(buf)
	clear(buf) // the Message must not share the frame's buffer
	if ok && (wantErr != nil || !sameMessage(got, want)) {
		t.Fatalf("parseFrameFast(%q) = %+v; encoding/json: %+v, %v", b, got, want, wantErr)
	}
	got, err := parseFrame(b)
	if err != wantErr || !sameMessage(got, want) {
		t.Fatalf("parseFrame(%q) = %+v, %v; encoding/json: %+v, %v", b, got, err, want, wantErr)
	}
	return ok
}

func sameMessage(a, b protocol.Message) bool {
	return a.Event == b.Event && a.ID == b.ID && bytes.Equal(a.Data, b.Data) && (a.Data == nil) == (b.Data == nil)
}

func TestParseFrameFastPath(t *testing.T) {
	for _, tt := range fastPathSeeds {
		if fast := checkFastPath(t, []byte(tt.give)); fast != tt.wantFast {
			t.Errorf("parseFrameFast(%q) took it: %v, want %v", tt.give, fast, tt.wantFast)
		}
	}
	// The results encoding/json gives, which the fast path keeps.
	for _, tt := range []struct {
		give    string
		want    protocol.Message
		wantErr error
	}{
		{give: `{"event":"x","data":null}`, want: protocol.Message{Event: "x", Data: []byte("null")}},
		{give: `{"event":"x"}`, want: protocol.Message{Event: "x"}},
		{give: `{"event":"x","data":1,"data":2,"id":"a","id":"b"}`, want: protocol.Message{Event: "x", Data: []byte("2"), ID: "b"}},
		{give: `{"EVENT":"x","Id":"7"}`, want: protocol.Message{Event: "x", ID: "7"}},
		{give: `{"id":5}`, wantErr: errDropFrame},
		{give: `{"event":""}`, wantErr: errDropFrame},
		{give: `{"event":"x","id":5}`, wantErr: errInvalidFrame},
		{give: `{"event":5}`, wantErr: errInvalidFrame},
	} {
		got, err := parseFrame([]byte(tt.give))
		if err != tt.wantErr || !sameMessage(got, tt.want) {
			t.Errorf("parseFrame(%s) = %+v, %v; want %+v, %v", tt.give, got, err, tt.want, tt.wantErr)
		}
	}
}

// FuzzParseFrameFastPath checks that the fast path never decodes a frame
// other than encoding/json would.
func FuzzParseFrameFastPath(f *testing.F) {
	for _, tt := range fastPathSeeds {
		f.Add([]byte(tt.give))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkFastPath(t, b) })
}

// benchFrames are client frames as the echo load and the usual requests
// send them.
var benchFrames = []struct{ name, frame string }{
	{"echo", `{"event":"echo","data":{"run":"m4x2k1","seq":123,"t":1700000000000000001,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`},
	{"join", `{"event":"join","data":{"rooms":["lobby","room-42"]},"id":"17"}`},
	{"heartbeat", `{"event":"heartbeat"}`},
}

func BenchmarkParseFrame(b *testing.B) {
	for _, bf := range benchFrames {
		frame := []byte(bf.frame)
		b.Run(bf.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parseFrame(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
