//go:build linux

package js_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/server"
)

const (
	// chromiumPath is Debian's chromium package; the test fails without
	// it, since it is the only check that a real browser interoperates.
	chromiumPath = "/usr/bin/chromium"
	// browserDeadline bounds one browser test, start-up included.
	browserDeadline = 60 * time.Second
	// reapTimeout bounds the wait for chromium's processes to die.
	reapTimeout = 5 * time.Second
)

// browserReport is what testdata/page.html POSTs to /report.
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
}

// TestBrowser runs testdata/page.html in headless Chromium against a real
// server, plain and encrypted: the page connects, joins "lobby" (the server
// sees it there), receives a room message from server code, then the server
// restarts (down for half a second) and the page reconnects,
// re-authenticates, rejoins "lobby" — told it was not recovered — and
// receives the next room message.
func TestBrowser(t *testing.T) {
	for _, tt := range []struct {
		name string
		mode serverMode
	}{
		{"plain", serverMode{}},
		{"encrypted", serverMode{encrypted: true}},
	} {
		t.Run(tt.name, func(t *testing.T) { testBrowser(t, tt.mode) })
	}
}

func testBrowser(t *testing.T, mode serverMode) {
	requireFile(t, chromiumPath, "apt-get install -y --no-install-recommends chromium")
	ctx, cancel := context.WithTimeout(context.Background(), browserDeadline)
	defer cancel()

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

	q := url.Values{}
	if mode.encrypted {
		q.Set("encrypt", "1")
		q.Set("pin", ts.pair.ServerPublicKey())
	}
	browser := startChromium(t, ts.pageURL()+"/?"+q.Encode())
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
	inLobby := func(id string) bool {
		return slices.ContainsFunc(ts.helper().ClientsInRoom("lobby"), func(c server.ClientInfo) bool { return c.ID == id })
	}
	publish := func(n int) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, waitTimeout)
		defer cancel()
		if err := ts.helper().PublishToRoom(pctx, "lobby", "news", map[string]int{"n": n}); err != nil {
			t.Fatal(err)
		}
		rep := next("message")
		if want := fmt.Sprintf(`{"n":%d}`, n); string(rep.Data) != want || rep.Encrypted != mode.encrypted {
			t.Fatalf("page got %s (encrypted %v), want %s (encrypted %v)", rep.Data, rep.Encrypted, want, mode.encrypted)
		}
	}

	if rep := next("connected"); rep.Reconnected || rep.Encrypted != mode.encrypted {
		t.Fatalf("first connection: %+v", rep)
	}
	joined := next("joined")
	if !slices.Equal(joined.Rooms, []string{"lobby"}) || !inLobby(joined.ID) {
		t.Fatalf("join: page says %+v; lobby holds %v", joined, ts.helper().ClientsInRoom("lobby"))
	}
	publish(1)

	if err := ts.restart(500 * time.Millisecond); err != nil {
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
		case <-browser.exited:
			t.Fatalf("chromium exited early: %v\n%s", browser.err, browser.logTail())
		case <-ctx.Done():
			t.Fatalf("the page did not reconnect within %v\n%s", browserDeadline, browser.logTail())
		}
	}
	rejoined := next("rejoined")
	if !slices.Equal(rejoined.Rooms, []string{"lobby"}) || len(rejoined.Recovered) != 1 || rejoined.Recovered["lobby"] {
		t.Fatalf("rejoin: %+v, want lobby, not recovered", rejoined)
	}
	if back.ID == joined.ID || !inLobby(back.ID) {
		t.Fatalf("after the restart the page is client %s; lobby holds %v", back.ID, ts.helper().ClientsInRoom("lobby"))
	}
	publish(2)
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
// (The same harness as server/encryption's browser test.)
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
