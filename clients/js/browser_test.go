//go:build linux

package js_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/internal/browsertest"
	"github.com/ignis-go/wscomponent/server"
)

const (
	// browserDeadline bounds one browser test, start-up included.
	browserDeadline = 60 * time.Second
)

// browserReport is what testdata/page.html POSTs to /report.
// PageStage implements browsertest.Report.
func (r browserReport) PageStage() (stage, message string) { return r.Stage, r.Message }

type browserReport struct {
	Stage         string          `json:"stage"`
	ID            string          `json:"id"`
	Message       string          `json:"message"`
	Code          int             `json:"code"`
	WillReconnect bool            `json:"willReconnect"`
	WasConnected  bool            `json:"wasConnected"`
	Reconnected   bool            `json:"reconnected"`
	Encrypted     bool            `json:"encrypted"`
	Rooms         []string        `json:"rooms"`
	Recovered     map[string]bool `json:"recovered"`
	Data          json.RawMessage `json:"data"`
	Room          string          `json:"room"`
	Offset        string          `json:"offset"`
}

// browserMissed is how many messages the second instance publishes into a
// history room while the page's server is down.
const browserMissed = 20

// TestBrowser runs testdata/page.html in headless Chromium against a real
// server, plain and encrypted: the page connects, joins a room (the server
// sees it there), receives a room message from server code, then the server
// restarts and the page reconnects, re-authenticates, rejoins the room and
// receives the next room message.
//
// In "lobby" (no history) the restart keeps the port closed for half a
// second and the rejoin says recovered false. In the history room "h-lobby"
// a second instance on the same Redis publishes browserMissed messages
// after the page's connection has been closed and before the port opens
// again; the page must get exactly those, in order, with increasing offsets
// of one epoch, before the rejoin says recovered true, and then the live
// messages from both instances, nothing twice.
func TestBrowser(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mode    serverMode
		history bool
	}{
		{name: "plain", mode: serverMode{}},
		{name: "encrypted", mode: serverMode{encrypted: true}},
		{name: "history", mode: serverMode{edit: historyRooms, second: true}, history: true},
		{name: "history-encrypted", mode: serverMode{encrypted: true, edit: historyRooms, second: true}, history: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testBrowser(t, tt.mode, tt.history)
		})
	}
}

func testBrowser(t *testing.T, mode serverMode, history bool) {
	requireFile(t, browsertest.Path, "apt-get install -y --no-install-recommends chromium")
	ctx, cancel := context.WithTimeout(context.Background(), browserDeadline)
	defer cancel()

	room := "lobby"
	if history {
		room = "h-lobby"
	}
	ts := startServer(t, mode)
	reports := make(chan browserReport, 256)
	page, err := os.ReadFile(filepath.Join("testdata", "page.html"))
	if err != nil {
		t.Fatal(err)
	}
	ts.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
	ts.mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var rep browserReport
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&rep); err != nil {
			rep = browserReport{Stage: "error", Message: "unreadable report: " + err.Error()}
		}
		select {
		case reports <- rep:
		default: // the test has what it needs or has failed already
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ts.mux.HandleFunc("/favicon.ico", http.NotFound)

	q := url.Values{"room": {room}}
	if mode.encrypted {
		q.Set("encrypt", "1")
		q.Set("pin", ts.pair.ServerPublicKey())
	}
	browser := browsertest.Start(t, ts.pageURL()+"/?"+q.Encode())
	next := func(stage string) browserReport {
		t.Helper()
		return browsertest.Await(t, ctx, browser, reports, stage)
	}
	inRoom := func(id string) bool {
		return slices.ContainsFunc(ts.helper().ClientsInRoom(room), func(c server.ClientInfo) bool { return c.ID == id })
	}
	// received checks that the page's next report is message n of the
	// room, and in a history room that its offset follows the last one.
	var last offset
	received := func(n int) {
		t.Helper()
		rep := next("message")
		if want := fmt.Sprintf(`{"n":%d}`, n); string(rep.Data) != want || rep.Encrypted != mode.encrypted {
			t.Fatalf("page got %s (encrypted %v), want %s (encrypted %v)", rep.Data, rep.Encrypted, want, mode.encrypted)
		}
		if !history {
			if rep.Room != "" || rep.Offset != "" {
				t.Fatalf("message %d of a room without history carries room %q, offset %q", n, rep.Room, rep.Offset)
			}
			return
		}
		off, err := parseOffset(rep.Offset)
		if err != nil || rep.Room != room {
			t.Fatalf("message %d: room %q, offset %q (%v); want room %q and an offset", n, rep.Room, rep.Offset, err, room)
		}
		if last.epoch != "" && !last.before(off) {
			t.Fatalf("message %d has offset %s, not after the previous %s", n, rep.Offset, last)
		}
		last = off
	}
	publish := func(h *server.Helper, n int) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, waitTimeout)
		defer cancel()
		if err := h.PublishToRoom(pctx, room, "news", map[string]int{"n": n}); err != nil {
			t.Fatal(err)
		}
		received(n)
	}

	if rep := next("connected"); rep.Reconnected || rep.Encrypted != mode.encrypted {
		t.Fatalf("first connection: %+v", rep)
	}
	joined := next("joined")
	if !slices.Equal(joined.Rooms, []string{room}) || !inRoom(joined.ID) {
		t.Fatalf("join: page says %+v; %s holds %v", joined, room, ts.helper().ClientsInRoom(room))
	}
	publish(ts.helper(), 1)

	n := 1 // the last message published
	if history {
		// The old Helper has closed the page's socket when this runs and
		// the port stays closed until it returns: the page cannot get
		// these live, only from the stream when it rejoins.
		err = ts.restartWith(func() error {
			for range browserMissed {
				n++
				pctx, cancel := context.WithTimeout(ctx, waitTimeout)
				err := ts.other.PublishToRoom(pctx, room, "news", map[string]int{"n": n})
				cancel()
				if err != nil {
					return err
				}
			}
			return nil
		})
	} else {
		err = ts.restart(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	first := next("disconnected")
	if first.Code != 1001 || !first.WillReconnect || !first.WasConnected {
		t.Fatalf("first disconnect: %+v, want 1001 from a connected socket, reconnecting", first)
	}
	var back browserReport
	for back.Stage == "" {
		select {
		case rep := <-reports:
			switch {
			case rep.Stage == "disconnected" && rep.WillReconnect && !rep.WasConnected:
				// an attempt while the server was down
			case rep.Stage == "connected" && rep.Reconnected && rep.Encrypted == mode.encrypted:
				back = rep
			default:
				t.Fatalf("while reconnecting the page reported %+v", rep)
			}
		case <-browser.Exited():
			t.Fatalf("chromium exited early: %v\n%s", browser.Err(), browser.LogTail())
		case <-ctx.Done():
			t.Fatalf("the page did not reconnect within %v\n%s", browserDeadline, browser.LogTail())
		}
	}
	// The replay comes before the rejoin's ack: messages 2..n, each once.
	for m := 2; history && m <= n; m++ {
		received(m)
	}
	rejoined := next("rejoined")
	if !slices.Equal(rejoined.Rooms, []string{room}) || !maps.Equal(rejoined.Recovered, map[string]bool{room: history}) {
		t.Fatalf("rejoin: %+v, want %s, recovered %v", rejoined, room, history)
	}
	if back.ID == joined.ID || !inRoom(back.ID) {
		t.Fatalf("after the restart the page is client %s; %s holds %v", back.ID, room, ts.helper().ClientsInRoom(room))
	}
	// Live again, from this server and, in a history room, from the other
	// instance; a duplicate of anything before would be reported first.
	n++
	publish(ts.helper(), n)
	if history {
		n++
		publish(ts.other, n)
	}
}

// offset is a parsed history offset "<epoch>:<ms>-<seq>" (SPEC §9.5).
type offset struct {
	epoch   string
	ms, seq uint64
}

func parseOffset(s string) (offset, error) {
	epoch, id, ok := strings.Cut(s, ":")
	ms, seq, ok2 := strings.Cut(id, "-")
	if !ok || !ok2 || epoch == "" {
		return offset{}, fmt.Errorf("offset %q is not <epoch>:<ms>-<seq>", s)
	}
	a, err := strconv.ParseUint(ms, 10, 64)
	if err != nil {
		return offset{}, fmt.Errorf("offset %q: %w", s, err)
	}
	b, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return offset{}, fmt.Errorf("offset %q: %w", s, err)
	}
	return offset{epoch, a, b}, nil
}

// before reports whether o comes before p in the same stream epoch.
func (o offset) before(p offset) bool {
	return o.epoch == p.epoch && (o.ms < p.ms || (o.ms == p.ms && o.seq < p.seq))
}

func (o offset) String() string { return fmt.Sprintf("%s:%d-%d", o.epoch, o.ms, o.seq) }
