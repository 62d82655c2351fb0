//go:build linux

package encryption_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/browsertest"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/server/encryption"
)

const (
	// browserDeadline bounds the whole browser test, start-up included.
	browserDeadline = 45 * time.Second
)

// browserPage connects with the real client module, reports each stage to
// /report and also writes it into the page.
const browserPage = `<!doctype html>
<meta charset="utf-8">
<title>wscomponent encryption</title>
<pre id="log"></pre>
<script type="module">
import { connect } from "/js/ignis-ws-client.js";

const log = document.getElementById("log");
function report(stage, body) {
  log.textContent += stage + " " + JSON.stringify(body) + "\n";
  return fetch("/report", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ stage, ...body }),
  });
}
const failed = (err) => report("error", { message: String((err && err.message) || err) });
window.addEventListener("error", (e) => failed(e.error || e.message));
window.addEventListener("unhandledrejection", (e) => failed(e.reason));

const url = "ws://" + location.host + "/ws";
try {
  // A wrong pinned server key is refused before anything is sent.
  try {
    const s = await connect(url, { token: "user:browser", serverPublicKey: "B".repeat(87) + "=" });
    s.close();
    await report("error", { message: "connected despite a wrong pinned key" });
  } catch (err) {
    await report("pin-refused", { message: String(err.message) });
  }

  const socket = await connect(url, {
    token: "user:browser",
    serverPublicKey: new URLSearchParams(location.search).get("pin"),
    onMessage: (msg, meta) => report("message", { event: msg.event, data: msg.data, encrypted: meta.encrypted }),
    onError: failed,
  });
  await report("connected", { id: socket.clientId, encrypted: socket.encrypted });
  await socket.send("chat", { text: "sealed by WebCrypto" });
  await socket.join(["lobby"]);
  await socket.send("chat", { text: "joined" });
} catch (err) {
  await failed(err);
}
</script>
`

// browserReport is what the page POSTs to /report.
// PageStage implements browsertest.Report.
func (r browserReport) PageStage() (stage, message string) { return r.Stage, r.Message }

type browserReport struct {
	Stage     string          `json:"stage"`
	ID        string          `json:"id"`
	Encrypted bool            `json:"encrypted"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Message   string          `json:"message"`
}

// TestBrowserEndToEnd runs the browser client in headless Chromium against
// a real server with the Pair applied. The page refuses a wrong pinned
// server key, completes the handshake with the right one, sends encrypted
// frames the server decrypts (a chat message, a join), and decrypts a room
// message sent from server code.
func TestBrowserEndToEnd(t *testing.T) {
	if _, err := os.Stat(browsertest.Path); err != nil {
		t.Fatalf("%s is missing (%v): this test needs Debian's chromium package, which .ci/run (scripts/test.sh) installs; "+
			"install it with: apt-get install -y --no-install-recommends chromium", browsertest.Path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserDeadline)
	defer cancel()

	pair := newPair(t, encryption.Options{})
	handled := newRecorder[server.MessageEvent]()
	rs := redistest.Start(t)
	opts := server.Options{
		Redis:        rs.Client(t),
		Authenticate: tokenAuth,
		ValidateRoom: func(_ context.Context, req server.ValidateRoomRequest) ([]string, error) { return req.Rooms, nil },
		Message: func(_ context.Context, ev server.MessageEvent) error {
			handled.Add(ev)
			return nil
		},
	}
	pair.Apply(&opts)
	h, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Configure(ctx); err != nil {
		t.Fatal(err)
	}

	reports := make(chan browserReport, 64)
	mux := http.NewServeMux()
	mux.Handle("GET "+protocol.DefaultPath, h)
	mux.Handle("GET /js/"+encryption.ClientJSName, encryption.JSHandler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, browserPage)
	})
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
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
	mux.HandleFunc("/favicon.ico", http.NotFound)
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		srv.Close()
	})

	browser := browsertest.Start(t, srv.URL+"/?pin="+url.QueryEscape(pair.ServerPublicKey()))
	next := func(stage string) browserReport {
		t.Helper()
		return browsertest.Await(t, ctx, browser, reports, stage)
	}

	if rep := next("pin-refused"); !strings.Contains(rep.Message, "pinned") {
		t.Errorf("wrong pin refused with %q", rep.Message)
	}
	rep := next("connected")
	if !rep.Encrypted || rep.ID == "" {
		t.Fatalf("page connected without encryption: %+v", rep)
	}
	if info, ok := h.Client(rep.ID); !ok || !info.Encrypted || info.UserID != "browser" {
		t.Fatalf("server side of the page's client: %+v (found %v)", info, ok)
	}
	// Browser → server: WebCrypto sealed them, the Pair opened them. The
	// join between the two messages went encrypted as well, and frames of
	// one client are handled in order, so the second one proves the join.
	for _, want := range []string{`{"text":"sealed by WebCrypto"}`, `{"text":"joined"}`} {
		select {
		case ev := <-handled.C():
			if ev.ClientID != rep.ID || ev.Message.Event != "chat" || !jsonEqual(ev.Message.Data, want) {
				t.Fatalf("handler got %+v, want chat %s", ev, want)
			}
		case rep := <-reports: // e.g. the server answered "Invalid message format"
			t.Fatalf("page reported %+v before its encrypted frames reached the handler", rep)
		case <-browser.Exited():
			t.Fatalf("chromium exited early: %v\n%s", browser.Err(), browser.LogTail())
		case <-ctx.Done():
			t.Fatalf("the page's encrypted frames never reached the handler\n%s", browser.LogTail())
		}
	}
	if got := h.ClientsInRoom("lobby"); len(got) != 1 || got[0].ID != rep.ID {
		t.Fatalf("lobby holds %+v, want the page's client", got)
	}
	// The refused connection's key is dropped once the server has seen it
	// go; only the page's live connection keeps one.
	eventually(t, "one key left", func() bool { return pair.Len() == 1 })

	// Server → browser: a room message from server code.
	want := `{"headline":"decrypted in Chromium","n":42,"tags":["a","ü"]}`
	if err := h.SendToRoom("lobby", "news", json.RawMessage(want)); err != nil {
		t.Fatal(err)
	}
	rep = next("message")
	if rep.Event != "news" || !rep.Encrypted || !jsonEqual(rep.Data, want) {
		t.Errorf("page decrypted %+v, want encrypted news %s", rep, want)
	}
}
