package benchserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/ignis-go/wscomponent/internal/benchserver"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestPayload(t *testing.T) {
	tests := []struct {
		give     int
		wantSize int
	}{
		{give: 100, wantSize: 100},
		{give: 1000, wantSize: 1000},
		{give: 10, wantSize: len(`{"run":"r1","seq":7,"t":123,"pad":""}`)},
	}
	for _, tt := range tests {
		p := benchserver.Payload("r1", 7, 123, tt.give)
		if len(p) != tt.wantSize {
			t.Errorf("Payload(size %d) is %d bytes, want %d: %s", tt.give, len(p), tt.wantSize, p)
		}
		var d benchserver.BenchData
		if err := json.Unmarshal(p, &d); err != nil || d.Run != "r1" || d.Seq != 7 || d.T != 123 {
			t.Errorf("Payload(size %d) = %s decodes to %+v, %v", tt.give, p, d, err)
		}
	}
}

func TestParseBench(t *testing.T) {
	fast := `{"event":"bench","data":` + string(benchserver.Payload("r1", 42, 1700000000000000001, 100)) + `}`
	tests := []struct {
		name        string
		give        string
		wantSeq     int
		wantT       int64
		wantSameRun bool
		wantOK      bool
	}{
		{"fast path", fast, 42, 1700000000000000001, true, true},
		{"other run", strings.Replace(fast, `"r1"`, `"r2"`, 1), 42, 1700000000000000001, false, true},
		{"spaces take the slow path", `{ "event": "bench", "data": {"t": 5, "seq": 3, "run": "r1"} }`, 3, 5, true, true},
		{"escaped run", `{"event":"bench","data":{"run":"r\u0031","seq":1,"t":2}}`, 1, 2, true, true},
		{"other event", `{"event":"echo","data":{"run":"r1","seq":1,"t":2}}`, 0, 0, false, false},
		{"not JSON", `nope`, 0, 0, false, false},
		{"t past int64", `{"event":"bench","data":{"run":"r1","seq":1,"t":99999999999999999999}}`, 0, 0, false, false},
		{"max int64", `{"event":"bench","data":{"run":"r1","seq":1,"t":9223372036854775807}}`, 1, 9223372036854775807, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, ts, same, ok := benchserver.ParseBench([]byte(tt.give), "r1")
			if seq != tt.wantSeq || ts != tt.wantT || same != tt.wantSameRun || ok != tt.wantOK {
				t.Errorf("got (%d, %d, %v, %v), want (%d, %d, %v, %v)", seq, ts, same, ok,
					tt.wantSeq, tt.wantT, tt.wantSameRun, tt.wantOK)
			}
		})
	}
}

func TestParseBenchData(t *testing.T) {
	tests := []struct {
		name        string
		give        string
		wantSeq     int
		wantT       int64
		wantSameRun bool
		wantOK      bool
	}{
		{"fast path", string(benchserver.Payload("r1", 42, 1700000000000000001, 100)), 42, 1700000000000000001, true, true},
		{"other run", string(benchserver.Payload("r2", 7, 5, 0)), 7, 5, false, true},
		{"spaces take the slow path", `{ "t": 5, "seq": 3, "run": "r1" }`, 3, 5, true, true},
		{"not an object", `[1]`, 0, 0, false, false},
		{"t past int64", `{"run":"r1","seq":1,"t":99999999999999999999}`, 0, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, ts, same, ok := benchserver.ParseBenchData([]byte(tt.give), "r1")
			if seq != tt.wantSeq || ts != tt.wantT || same != tt.wantSameRun || ok != tt.wantOK {
				t.Errorf("got (%d, %d, %v, %v), want (%d, %d, %v, %v)", seq, ts, same, ok,
					tt.wantSeq, tt.wantT, tt.wantSameRun, tt.wantOK)
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	tests := []struct {
		give     string
		wantUser string // "" means rejected
	}{
		{give: `{"token":"user-7"}`, wantUser: "user-7"},
		{give: `{"token":""}`},
		{give: `{}`},
		{give: `"user-7"`},
	}
	for _, tt := range tests {
		res, err := benchserver.Authenticate(context.Background(), server.AuthenticateRequest{Data: json.RawMessage(tt.give)})
		if err != nil {
			t.Fatalf("%s: %v", tt.give, err)
		}
		got := ""
		if res != nil {
			got = res.UserID
		}
		if got != tt.wantUser {
			t.Errorf("Authenticate(%s) user %q, want %q", tt.give, got, tt.wantUser)
		}
	}
}

// TestServer drives the whole contract once: authenticate, echo, fan-out
// by frame and by HTTP, stats, bad requests.
func TestServer(t *testing.T) {
	rs := redistest.Start(t)
	s, err := benchserver.New(benchserver.Config{Redis: rs.Client(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Configure(ctx); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		hs.Close()
	})

	conn, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	send := func(s string) {
		t.Helper()
		if err := conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	read := func() string {
		t.Helper()
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	send(`{"event":"authenticate","data":{"token":"user-1"}}`)
	if got := read(); !strings.Contains(got, `"userId":"user-1"`) {
		t.Fatalf("after authenticate got %s", got)
	}
	send(`{"event":"echo","data":{"seq":1,"pad":"xx"}}`)
	if got, want := read(), `{"event":"echo","data":{"seq":1,"pad":"xx"}}`; got != want {
		t.Fatalf("echo reply %s, want %s", got, want)
	}
	send(`{"event":"fanout","data":{"n":2,"size":60,"run":"w"}}`)
	for i := range 2 {
		seq, _, same, ok := benchserver.ParseBench([]byte(read()), "w")
		if !ok || !same || seq != i {
			t.Fatalf("fan-out message %d: seq %d, same run %v, ok %v", i, seq, same, ok)
		}
	}

	resp, err := http.Post(hs.URL+"/broadcast?n=3&size=80&run=h&room=ws-default", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var res benchserver.FanoutResult
	_ = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || res.Sent != 3 || res.PublishErrors != 0 {
		t.Fatalf("POST /broadcast: %s %+v", resp.Status, res)
	}
	for i := range 3 {
		seq, _, same, ok := benchserver.ParseBench([]byte(read()), "h")
		if !ok || !same || seq != i {
			t.Fatalf("broadcast message %d: seq %d, same run %v, ok %v", i, seq, same, ok)
		}
	}

	for _, q := range []string{"n=0", "n=x", "size=-1", "n=1&interval=1h"} {
		resp, err := http.Post(hs.URL+"/broadcast?"+q, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST /broadcast?%s: %s, want 400", q, resp.Status)
		}
	}

	resp, err = http.Get(hs.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st server.Stats
	_ = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.Authenticated != 1 || st.MessagesOut < 7 {
		t.Errorf("stats %+v: want 1 authenticated client and at least 7 messages out", st)
	}
}
