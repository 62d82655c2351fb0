package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
)

// sessionAuth accepts {"token":"user:<id>","ttl":"<duration>"}; the session
// ends ttl after authentication. "user:other" names another user.
type sessionAuth struct {
	mu    sync.Mutex
	calls []server.AuthenticateRequest
}

func (a *sessionAuth) authenticate(ctx context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
	a.mu.Lock()
	a.calls = append(a.calls, req)
	a.mu.Unlock()
	var d struct {
		Token string `json:"token"`
		TTL   string `json:"ttl"`
	}
	_ = json.Unmarshal(req.Data, &d)
	if !strings.HasPrefix(d.Token, "user:") {
		return nil, nil
	}
	res := &server.AuthResult{UserID: strings.TrimPrefix(d.Token, "user:"), Metadata: map[string]any{"ttl": d.TTL}}
	if d.TTL != "" {
		ttl, err := time.ParseDuration(d.TTL)
		if err != nil {
			return nil, err
		}
		res.ExpiresAt = time.Now().Add(ttl)
	}
	return res, nil
}

func expiresAt(t *testing.T, f inFrame) time.Time {
	t.Helper()
	var d protocol.ExpiryData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		t.Fatalf("%s data %s: %v", f.Event, f.Data, err)
	}
	at, err := time.Parse(time.RFC3339, d.ExpiresAt)
	if err != nil {
		t.Fatalf("%s expiresAt %q: %v", f.Event, d.ExpiresAt, err)
	}
	return at
}

func TestSessionExpiresWithNoticeFirst(t *testing.T) {
	auth := &sessionAuth{}
	ts := startServer(t, nil, server.Options{
		Authenticate: auth.authenticate,
		Config:       server.Config{RefreshWindow: 30 * time.Second},
	})
	c := ts.dial(t)
	// A 2 s session with a 30 s window: the notice comes at once, the
	// close when the session ends.
	c.Send(protocol.EventAuthenticate, map[string]string{"token": "user:u1", "ttl": "2s"})
	c.Expect(protocol.EventConnected)
	at := expiresAt(t, c.Expect(protocol.EventSessionExpiring))
	if d := time.Until(at); d > 3*time.Second || d < -time.Second {
		t.Fatalf("expiresAt %v is not about 2 s away", at)
	}
	c.ExpectClose(protocol.CloseSessionExpired, protocol.ReasonSessionExpired)
	if time.Now().Before(at.Add(-time.Second)) { // RFC 3339 drops the fraction
		t.Fatalf("closed before the session's end %v", at)
	}
	eventually(t, "expiry counted", func() bool { return ts.h.Stats().SessionsExpired == 1 })
}

func TestRefreshExtendsTheSession(t *testing.T) {
	auth := &sessionAuth{}
	ts := startServer(t, nil, server.Options{
		Authenticate: auth.authenticate,
		Config:       server.Config{RefreshWindow: 30 * time.Second},
	})
	c := ts.dial(t)
	c.Send(protocol.EventAuthenticate, map[string]string{"token": "user:u1", "ttl": "1500ms"})
	var connected protocol.ConnectedData
	_ = json.Unmarshal(c.Expect(protocol.EventConnected).Data, &connected)
	c.ID = connected.ID
	c.Expect(protocol.EventSessionExpiring)

	// Another user's token is refused and the old expiry stays.
	c.SendID(protocol.EventRefresh, "r0", map[string]string{"token": "user:other", "ttl": "1h"})
	c.ExpectErrorID(protocol.ErrMsgRefreshFailed, "r0")
	c.SendID(protocol.EventRefresh, "r1", map[string]string{"token": "user:u1", "ttl": "1h"})
	f := c.Expect(protocol.EventRefreshed)
	if f.ID != "r1" {
		t.Fatalf("refreshed id %q", f.ID)
	}
	if at := expiresAt(t, f); time.Until(at) < 59*time.Minute {
		t.Fatalf("refreshed expiresAt %v", at)
	}
	info, _ := ts.h.Client(c.ID)
	if info.Metadata["ttl"] != "1h" {
		t.Errorf("metadata not updated by refresh: %v", info.Metadata)
	}
	auth.mu.Lock()
	last := auth.calls[len(auth.calls)-1]
	auth.mu.Unlock()
	if !last.Refresh || last.ClientID != c.ID {
		t.Errorf("refresh request %+v", last)
	}
	// The old session end passes without a close: the client keeps
	// getting answers until well after it.
	for until := time.Now().Add(1600 * time.Millisecond); time.Now().Before(until); {
		c.Probe()
	}
	if st := ts.h.Stats(); st.Refreshes != 1 || st.RefreshFailures != 1 || st.SessionsExpired != 0 {
		t.Errorf("stats refreshes %d failures %d expired %d", st.Refreshes, st.RefreshFailures, st.SessionsExpired)
	}
}

func TestRefusedRefreshKeepsTheOldExpiry(t *testing.T) {
	auth := &sessionAuth{}
	ts := startServer(t, nil, server.Options{Authenticate: auth.authenticate})
	c := ts.dial(t)
	c.Send(protocol.EventAuthenticate, map[string]string{"token": "user:u1", "ttl": "1s"})
	c.Expect(protocol.EventConnected)
	c.Expect(protocol.EventSessionExpiring)
	c.Send(protocol.EventRefresh, map[string]string{"token": "bad"})
	c.ExpectError(protocol.ErrMsgRefreshFailed)
	c.ExpectClose(protocol.CloseSessionExpired, protocol.ReasonSessionExpired)
}

func TestRequireEncryptedInbound(t *testing.T) {
	handled := newRecorder[server.MessageEvent]()
	opts := server.Options{
		Config:              server.Config{RequireEncryption: true, RequireEncryptedInbound: true},
		Handshake:           okHandshake,
		OutboundTransformer: wrapTransformer,
		ValidateRoom:        allowAll,
		InboundTransformer: func(_ context.Context, req server.InboundRequest) (*protocol.Message, error) {
			var m protocol.Message
			return &m, json.Unmarshal(req.Data, &m)
		},
		Message: func(_ context.Context, ev server.MessageEvent) error {
			handled.Add(ev)
			return nil
		},
	}
	ts := startServer(t, nil, opts)
	c := ts.dial(t)
	c.auth("enc")
	// Plaintext is refused, heartbeat excepted; nothing reaches the handler.
	c.Send(protocol.EventHeartbeat, nil)
	c.SendID("ping", "p1", nil)
	c.ExpectErrorID(protocol.ErrMsgEncryptionRequired, "p1")
	c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"x"}})
	c.ExpectError(protocol.ErrMsgEncryptionRequired)
	// The same frame inside the envelope is handled and marked encrypted.
	c.Send(protocol.EventEncrypted, map[string]any{"event": "ping", "data": 1})
	if ev := handled.Wait(t); ev.Message.Event != "ping" || !ev.Encrypted {
		t.Fatalf("handler got %+v", ev)
	}
	if handled.Count() != 1 {
		t.Fatalf("handler called %d times", handled.Count())
	}

	// Without the option a plaintext frame is handled, marked not encrypted.
	opts.Config.RequireEncryptedInbound = false
	ts2 := startServer(t, nil, opts)
	c2 := ts2.dial(t)
	c2.auth("enc")
	c2.Send("ping", nil)
	if ev := handled.Wait(t); ev.Encrypted {
		t.Fatalf("plaintext frame reported encrypted: %+v", ev)
	}
}

// A client being closed for a failed authentication gets the error and
// the close, and nothing between them, however fast it keeps sending.
func TestNothingBetweenTheRejectionAndTheClose(t *testing.T) {
	ts := startServer(t, nil, server.Options{Config: server.Config{MaxPendingConnections: server.Off}})
	for i := range 30 {
		c := ts.dial(t)
		c.Send(protocol.EventAuthenticate, map[string]string{"token": "reject"})
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = c.Conn.SetWriteDeadline(time.Now().Add(waitTimeout))
				if c.Conn.WriteMessage(1, []byte(`{"event":"chat"}`)) != nil {
					return
				}
			}
		}()
		var seen []string
		// Frames sent before the authenticate answer may be answered
		// "Not authenticated"; after "Authentication failed", only the close.
		for {
			f := c.Next()
			var d protocol.ErrorData
			_ = json.Unmarshal(f.Data, &d)
			seen = append(seen, d.Message)
			if d.Message == protocol.ErrMsgAuthFailed {
				break
			}
		}
		c.ExpectCloseNow(protocol.CloseAuthFailed, protocol.ReasonAuthFailed)
		close(stop)
		<-done
		_ = i
	}
}

func TestSecurityEventsAreLoggedWithSampling(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	ts := startServer(t, nil, server.Options{
		Logger: zap.New(core),
		Config: server.Config{LogSampleInterval: 200 * time.Millisecond, LogSampleBurst: 3},
		Message: func(context.Context, server.MessageEvent) error {
			return errors.New("unknown event")
		},
	})
	for range 8 {
		c := ts.dial(t)
		c.Send(protocol.EventAuthenticate, map[string]string{"token": "reject"})
		c.ExpectError(protocol.ErrMsgAuthFailed)
	}
	c := ts.connect(t, "u1")
	for range 10 {
		c.Send("unknown", nil)
	}
	c.Probe()
	eventually(t, "summary lines", func() bool {
		return summaries(logs, "auth failure") == 5 && summaries(logs, "callback error") == 7
	})
	if n := logs.FilterMessage("authentication failed").Len(); n != 3 {
		t.Errorf("%d auth failure lines, want the burst of 3", n)
	}
	if n := logs.FilterMessage("callback failed").Len(); n != 3 {
		t.Errorf("%d callback failure lines, want the burst of 3", n)
	}
	for _, e := range logs.FilterMessage("authentication failed").All() {
		if e.Level != zapcore.InfoLevel || e.ContextMap()["client_id"] == "" {
			t.Errorf("auth failure line %v %v", e.Level, e.ContextMap())
		}
	}
	if ts.h.Stats().LogLinesSuppressed != 12 {
		t.Errorf("LogLinesSuppressed %d, want 12", ts.h.Stats().LogLinesSuppressed)
	}
}

// summaries adds up the suppressed counts of the summary lines of kind.
func summaries(logs *observer.ObservedLogs, kind string) int {
	n := 0
	for _, e := range logs.FilterMessage("similar log lines suppressed").All() {
		if e.ContextMap()["kind"] == kind {
			n += int(e.ContextMap()["suppressed"].(int64))
		}
	}
	return n
}
