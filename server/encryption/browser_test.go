//go:build linux

package encryption_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/server/encryption"
)

const (
	// chromiumPath is Debian's chromium package; the test fails without
	// it, since it is the only check that a real browser interoperates.
	chromiumPath = "/usr/bin/chromium"
	// browserDeadline bounds the whole browser test, start-up included.
	browserDeadline = 45 * time.Second
	// reapTimeout bounds the wait for chromium's processes to die.
	reapTimeout = 5 * time.Second
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
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing (%v): this test needs Debian's chromium package, which .ci/run (scripts/test.sh) installs; "+
			"install it with: apt-get install -y --no-install-recommends chromium", chromiumPath, err)
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

	browser := startChromium(t, srv.URL+"/?pin="+url.QueryEscape(pair.ServerPublicKey()))
	next := func(stage string) browserReport {
		t.Helper()
		select {
		case rep := <-reports:
			if rep.Stage == "error" {
				t.Fatalf("page reported an error: %s", rep.Message)
			}
			if rep.Stage != stage {
				t.Fatalf("page reported %+v, want stage %q", rep, stage)
			}
			return rep
		case <-browser.exited:
			t.Fatalf("chromium exited early: %v\n%s", browser.err, browser.logTail())
		case <-ctx.Done():
			t.Fatalf("no %q report from the page within %v\n%s", stage, browserDeadline, browser.logTail())
		}
		return browserReport{}
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
		case <-browser.exited:
			t.Fatalf("chromium exited early: %v\n%s", browser.err, browser.logTail())
		case <-ctx.Done():
			t.Fatalf("the page's encrypted frames never reached the handler\n%s", browser.logTail())
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

// chromium is one headless browser run in its own process group.
type chromium struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error // set before exited is closed
}

// startChromium opens pageURL in a fresh headless Chromium and registers a
// cleanup that kills its whole process group and removes its profile.
func startChromium(t *testing.T, pageURL string) *chromium {
	t.Helper()
	profile, err := os.MkdirTemp("", "wscomponent-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "chromium.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	cmd := exec.Command(chromiumPath,
		"--headless",
		"--no-sandbox",
		"--disable-gpu",
		"--disable-background-networking",
		"--disable-quic",
		"--no-first-run",
		"--disable-component-update",
		"--disable-sync",
		// Small container /dev/shm mounts crash the renderer otherwise.
		"--disable-dev-shm-usage",
		// Nothing but the test server: any host name fails to resolve.
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--user-data-dir="+profile,
		pageURL,
	)
	// Keep the profile, cache and config inside the throwaway directory.
	cmd.Env = append(os.Environ(), "HOME="+profile, "XDG_CONFIG_HOME="+profile, "XDG_CACHE_HOME="+profile)
	cmd.Stdout = logFile // an *os.File: no copying goroutines to leak
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(profile)
		t.Fatalf("start chromium: %v", err)
	}
	b := &chromium{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		b.err = cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		pgid := cmd.Process.Pid // Setpgid: the group id is the leader's pid
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-b.exited
		if err := waitGroupGone(pgid, reapTimeout); err != nil {
			t.Logf("chromium: %v", err)
		}
		if err := os.RemoveAll(profile); err != nil {
			t.Errorf("remove chromium profile: %v", err)
		}
	})
	return b
}

// waitGroupGone waits until no process of group pgid is left. Killed
// children are reaped by init, not by us, so this polls until a deadline.
func waitGroupGone(pgid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Kill(-pgid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process group %d still has members after %v (%v)", pgid, timeout, err)
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		time.Sleep(20 * time.Millisecond)
	}
}

// logTail returns the end of chromium's output, for failure messages.
func (b *chromium) logTail() string {
	data, err := os.ReadFile(b.logPath)
	if err != nil {
		return "(no chromium log: " + err.Error() + ")"
	}
	const max = 4096
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return "chromium output:\n" + string(data)
}
