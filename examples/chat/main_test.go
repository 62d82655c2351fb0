package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/ignis-go/wscomponent/helpers/ecdh"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/wstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait on the network, so a failing test fails
// instead of hanging.
const waitTimeout = 5 * time.Second

var testSecret = []byte("test-secret-0123456789abcdef")

// harness is one running app on a free port with the embedded Redis.
type harness struct {
	t    testing.TB
	base string // http://127.0.0.1:port
	http *http.Client
}

func startApp(t testing.TB) *harness {
	t.Helper()
	return startAppWith(t, config{})
}

// startAppWith starts the app with cfg, whose address, secret and token
// lifetime are set for the test.
func startAppWith(t testing.TB, cfg config) *harness {
	t.Helper()
	cfg.Addr, cfg.TokenSecret, cfg.TokenTTL = "127.0.0.1:0", testSecret, time.Hour
	var web *webServer
	app := fxtest.New(t,
		appOptions(cfg),
		fx.Replace(zaptest.NewLogger(t)),
		fx.Populate(&web),
	)
	app.RequireStart()
	t.Cleanup(app.RequireStop)
	client := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections) // runs first: no idle conn outlives the test
	return &harness{t: t, base: "http://" + web.Addr(), http: client}
}

// do sends a request and returns the status and body.
func (h *harness) do(method, path, token string, body any) (int, []byte) {
	h.t.Helper()
	status, _, b := h.doHeader(method, path, token, body)
	return status, b
}

// doHeader is do that returns the response headers too.
func (h *harness) doHeader(method, path, token string, body any) (int, http.Header, []byte) {
	h.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.base+path, r)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := h.http.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return res.StatusCode, res.Header, b
}

func (h *harness) login(name string) string {
	h.t.Helper()
	status, body := h.do(http.MethodPost, "/api/login", "", map[string]string{"name": name})
	if status != http.StatusOK {
		h.t.Fatalf("login %q: status %d: %s", name, status, body)
	}
	var res loginResponse
	if err := json.Unmarshal(body, &res); err != nil || res.Token == "" {
		h.t.Fatalf("login %q: bad response %s (%v)", name, body, err)
	}
	if !res.ExpiresAt.After(time.Now()) {
		h.t.Fatalf("login %q: expiresAt %v is not in the future", name, res.ExpiresAt)
	}
	return res.Token
}

// frame is a server frame as the test reads it.
type frame struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// wsClient is the kit's client (wstest) with the chat helpers below.
type wsClient struct {
	*wstest.Client
	t testing.TB
}

func (h *harness) dial() *wsClient {
	h.t.Helper()
	return &wsClient{Client: wstest.Dial(h.t, "ws"+strings.TrimPrefix(h.base, "http")+"/ws", nil), t: h.t}
}

func (c *wsClient) send(event string, data any) {
	c.t.Helper()
	c.Client.Send(event, data)
}

// read returns the next frame, or the error that ended the connection.
func (c *wsClient) read() (frame, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(wstest.WaitTimeout))
	var f frame
	_, b, err := c.Conn.ReadMessage()
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("frame is not JSON: %s", b)
	}
	return f, nil
}

// waitFor reads frames until match accepts one; frames before it are
// skipped. It fails on the read deadline.
func (c *wsClient) waitFor(what string, match func(frame) bool) frame {
	c.t.Helper()
	for {
		f, err := c.read()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

func (c *wsClient) authenticate(token string) (clientID, userID string) {
	c.t.Helper()
	c.send("authenticate", map[string]string{"token": token})
	f := c.waitFor("connected", func(f frame) bool { return f.Event == "connected" })
	var data struct {
		ID     string `json:"id"`
		UserID string `json:"userId"`
		Time   string `json:"time"`
	}
	if err := json.Unmarshal(f.Data, &data); err != nil || data.ID == "" || data.UserID == "" || data.Time == "" {
		c.t.Fatalf("connected: bad data %s (%v)", f.Data, err)
	}
	return data.ID, data.UserID
}

// chatConn is what both test clients (plain and encrypted) offer: frames
// in, one frame out. The chat helpers below work on either.
type chatConn interface {
	waitFor(what string, match func(frame) bool) frame
	sendFrame(event string, data any)
	tb() testing.TB
}

func (c *wsClient) sendFrame(event string, data any) { c.send(event, data) }
func (c *wsClient) tb() testing.TB                   { return c.t }

// waitChat waits for a chat frame with text and returns its data.
func waitChat(c chatConn, text string) chatMessage {
	c.tb().Helper()
	var msg chatMessage
	c.waitFor("chat "+text, func(f frame) bool {
		if f.Event != eventChat {
			return false
		}
		if err := json.Unmarshal(f.Data, &msg); err != nil {
			c.tb().Fatalf("chat: bad data %s", f.Data)
		}
		return msg.Text == text
	})
	return msg
}

func waitError(c chatConn, message string) {
	c.tb().Helper()
	c.waitFor("error "+message, func(f frame) bool {
		var data struct {
			Message string `json:"message"`
		}
		return f.Event == "error" && json.Unmarshal(f.Data, &data) == nil && data.Message == message
	})
}

// joinRoom joins room and proves it: the server sends no join reply, but a
// client's own chat message comes back to it only once it is in the room.
func joinRoom(c chatConn, room, name string) {
	c.tb().Helper()
	c.sendFrame("join", map[string]any{"rooms": []string{room}})
	probe := name + " joined " + room
	c.sendFrame(eventChat, chatRequest{Room: room, Text: probe})
	if got := waitChat(c, probe); got.From != name || got.Room != room {
		c.tb().Fatalf("own chat: got %+v", got)
	}
}

func (c *wsClient) waitChat(text string) chatMessage { return waitChat(c, text) }
func (c *wsClient) waitError(message string)         { waitError(c, message) }
func (c *wsClient) joinRoom(room, name string)       { joinRoom(c, room, name) }

func TestChat(t *testing.T) {
	h := startApp(t)

	for _, tt := range []struct {
		path string
		want int
	}{
		{"/healthz", http.StatusOK},
		{"/readyz", http.StatusOK},
	} {
		if status, body := h.do(http.MethodGet, tt.path, "", nil); status != tt.want {
			t.Errorf("GET %s: status %d, want %d: %s", tt.path, status, tt.want, body)
		}
	}

	alice, bob := h.login("alice"), h.login("bob")
	a, b := h.dial(), h.dial()
	aID, aUser := a.authenticate(alice)
	_, bUser := b.authenticate(bob)
	if aUser == bUser {
		t.Fatalf("alice and bob have the same user id %q", aUser)
	}
	a.joinRoom("lobby", "alice")
	b.joinRoom("lobby", "bob")

	a.send(eventChat, chatRequest{Room: "lobby", Text: "  hello bob  "})
	got := b.waitChat("hello bob")
	if got.From != "alice" || got.Room != "lobby" || got.At.IsZero() {
		t.Errorf("bob got %+v, want from alice in lobby with a time", got)
	}

	status, body := h.do(http.MethodPost, "/api/rooms/lobby/messages", bob, map[string]string{"text": "from the server"})
	if status != http.StatusAccepted {
		t.Fatalf("POST message: status %d: %s", status, body)
	}
	for name, c := range map[string]*wsClient{"alice": a, "bob": b} {
		if got := c.waitChat("from the server"); got.From != "server:bob" || got.Room != "lobby" {
			t.Errorf("%s got %+v, want from server:bob", name, got)
		}
	}

	// Mistakes are answered, and nothing is sent.
	a.send(eventChat, chatRequest{Room: "elsewhere", Text: "hi"})
	a.waitError("Join the room before sending to it")
	a.send(eventChat, chatRequest{Room: "lobby", Text: strings.Repeat("x", maxTextLength+1)})
	a.waitError("Invalid chat message: text must be 1 to 500 characters")
	a.send("dance", nil)
	a.waitError("Unknown event")
	// Joining a client's own-id room or a default room is refused: a chat
	// there is answered as if the client were not in it.
	a.send("join", map[string]any{"rooms": []string{aID, "ws-default"}})
	a.send(eventChat, chatRequest{Room: "ws-default", Text: "to everyone"})
	a.waitError("Join the room before sending to it")

	// After leaving, bob no longer gets lobby messages; alice still does.
	b.send("leave", map[string]any{"rooms": []string{"lobby"}})
	b.send(eventChat, chatRequest{Room: "lobby", Text: "am I gone?"})
	b.waitError("Join the room before sending to it")
	a.send(eventChat, chatRequest{Room: "lobby", Text: "only alice"})
	a.waitChat("only alice")
	b.send("heartbeat", nil)
	b.send("join", map[string]any{"rooms": []string{"other"}})
	b.send(eventChat, chatRequest{Room: "other", Text: "bob alone"})
	if f := b.waitFor("chat", func(f frame) bool { return f.Event == eventChat }); !strings.Contains(string(f.Data), "bob alone") {
		t.Errorf("bob got %s after leaving lobby, want only his own message in other", f.Data)
	}
}

func TestPage(t *testing.T) {
	h := startApp(t)
	for _, tt := range []struct {
		path, want string
	}{
		{"/", "<!doctype html>"},
		{"/app.js", "from '/wscomponent.js'"},
		{"/wscomponent.js", "export class WSClient"},
		{"/style.css", "#log"},
		{"/favicon.svg", "<svg"},
		{"/ignis-ws-client.js", "export class IgnisSocket"},
	} {
		status, header, body := h.doHeader(http.MethodGet, tt.path, "", nil)
		if status != http.StatusOK || !strings.Contains(string(body), tt.want) {
			t.Errorf("GET %s: status %d, body without %q", tt.path, status, tt.want)
		}
		if csp := header.Get("Content-Security-Policy"); csp != pageSecurityPolicy {
			t.Errorf("GET %s: Content-Security-Policy %q, want %q", tt.path, csp, pageSecurityPolicy)
		}
	}
	// Prometheus metrics, the component's among them.
	if status, body := h.do(http.MethodGet, "/metrics", "", nil); status != http.StatusOK ||
		!strings.Contains(string(body), "wscomponent_redis_subscribed 1") || !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("GET /metrics: status %d, body without the component's and Go's metrics", status)
	}
	// The browser's default /favicon.ico lands on the icon (redirect followed).
	if status, body := h.do(http.MethodGet, "/favicon.ico", "", nil); status != http.StatusOK || !strings.Contains(string(body), "<svg") {
		t.Errorf("GET /favicon.ico: status %d, body %.40q", status, body)
	}
	checkClientConfig(t, h, false)
	checkClientModule(t, h)
}

// checkClientModule checks that the page's client module (clients/js) is
// served where app.js imports it from.
func checkClientModule(t *testing.T, h *harness) {
	t.Helper()
	status, header, body := h.doHeader(http.MethodGet, "/wscomponent.js", "", nil)
	if ct := header.Get("Content-Type"); status != http.StatusOK || !strings.HasPrefix(ct, "text/javascript") ||
		!strings.Contains(string(body), "export class WSClient") {
		t.Errorf("GET /wscomponent.js: status %d, Content-Type %q; want 200, text/javascript, the module", status, ct)
	}
	if _, _, app := h.doHeader(http.MethodGet, "/app.js", "", nil); !strings.Contains(string(app), "from '/wscomponent.js'") {
		t.Error("app.js does not import /wscomponent.js")
	}
}

// checkClientConfig checks GET /api/config, which tells the page its mode.
func checkClientConfig(t *testing.T, h *harness, encrypted bool) {
	t.Helper()
	status, body := h.do(http.MethodGet, "/api/config", "", nil)
	var got map[string]any
	if status != http.StatusOK || json.Unmarshal(body, &got) != nil || len(got) != 1 || got["encrypted"] != encrypted {
		t.Errorf("GET /api/config: status %d, body %s; want {\"encrypted\":%v}", status, body, encrypted)
	}
}

// encClient is a Go client of the encrypted mode. It does what the page's
// IgnisSocket does: a P-256 key in the authenticate payload, the message key
// derived from the "connected" frame, and every frame after that sealed in
// both directions.
type encClient struct {
	*wsClient
	priv *ecdh.PrivateKey
	key  *ecdh.Key
}

func (h *harness) dialEncrypted() *encClient {
	h.t.Helper()
	priv, err := ecdh.GenerateKey()
	if err != nil {
		h.t.Fatal(err)
	}
	return &encClient{wsClient: h.dial(), priv: priv}
}

// authenticate sends the token and the client's public key, and derives the
// key from the server's public key and salt in "connected".
func (c *encClient) authenticate(token string) (clientID string) {
	c.t.Helper()
	c.send("authenticate", map[string]string{"token": token, "publicKey": c.priv.PublicKeyBase64()})
	f := c.wsClient.waitFor("connected", func(f frame) bool { return f.Event == "connected" })
	var data struct {
		ID              string `json:"id"`
		UserID          string `json:"userId"`
		ServerPublicKey string `json:"serverPublicKey"`
		Salt            string `json:"salt"`
	}
	if err := json.Unmarshal(f.Data, &data); err != nil || data.ID == "" || data.UserID == "" {
		c.t.Fatalf("connected: bad data %s (%v)", f.Data, err)
	}
	key, err := ecdh.DeriveKey(c.priv, data.ServerPublicKey, data.Salt)
	if err != nil {
		c.t.Fatalf("connected %s: derive key: %v", f.Data, err)
	}
	c.key = key
	return data.ID
}

// sendSealed sends {"event":"encrypted","data":<sealed {"event","data"}>}.
func (c *encClient) sendSealed(event string, data any) {
	c.t.Helper()
	sealed, err := c.key.EncryptJSON(map[string]any{"event": event, "data": data}, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send("encrypted", sealed)
}

// waitFor opens frames until match accepts one. After "connected", the
// server sends this client nothing in plaintext: a plaintext frame fails
// the test, and so does one that does not decrypt.
func (c *encClient) waitFor(what string, match func(frame) bool) frame {
	c.t.Helper()
	for {
		f, err := c.read()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		if f.Event != "encrypted" {
			c.t.Fatalf("waiting for %s: got a plaintext %q frame: %s", what, f.Event, f.Data)
		}
		var sealed ecdh.Sealed
		if err := json.Unmarshal(f.Data, &sealed); err != nil {
			c.t.Fatalf("encrypted frame: bad data %s", f.Data)
		}
		var inner frame
		if err := c.key.DecryptJSON(sealed, nil, &inner); err != nil {
			c.t.Fatalf("encrypted frame: %v", err)
		}
		if match(inner) {
			return inner
		}
	}
}

func (c *encClient) sendFrame(event string, data any) { c.sendSealed(event, data) }
func (c *encClient) tb() testing.TB                   { return c.t }

func (c *encClient) waitChat(text string) chatMessage { return waitChat(c, text) }
func (c *encClient) waitError(message string)         { waitError(c, message) }
func (c *encClient) joinRoom(room, name string)       { joinRoom(c, room, name) }

func TestEncryptedChat(t *testing.T) {
	h := startAppWith(t, config{Encrypt: true})
	checkClientConfig(t, h, true)
	checkClientModule(t, h)
	status, header, body := h.doHeader(http.MethodGet, "/ignis-ws-client.js", "", nil)
	if ct := header.Get("Content-Type"); status != http.StatusOK || !strings.HasPrefix(ct, "text/javascript") ||
		!strings.Contains(string(body), "export class IgnisSocket") {
		t.Errorf("GET /ignis-ws-client.js: status %d, Content-Type %q; want 200, text/javascript, the module", status, ct)
	}

	alice, bob := h.login("alice"), h.login("bob")
	a, b := h.dialEncrypted(), h.dialEncrypted()
	a.authenticate(alice)
	b.authenticate(bob)
	a.joinRoom("lobby", "alice")
	b.joinRoom("lobby", "bob")

	a.sendSealed(eventChat, chatRequest{Room: "lobby", Text: "  hello bob, privately  "})
	if got := b.waitChat("hello bob, privately"); got.From != "alice" || got.Room != "lobby" || got.At.IsZero() {
		t.Errorf("bob got %+v, want from alice in lobby with a time", got)
	}

	// Messages from server code are sealed for each client too.
	status, body = h.do(http.MethodPost, "/api/rooms/lobby/messages", bob, map[string]string{"text": "from the server"})
	if status != http.StatusAccepted {
		t.Fatalf("POST message: status %d: %s", status, body)
	}
	for name, c := range map[string]*encClient{"alice": a, "bob": b} {
		if got := c.waitChat("from the server"); got.From != "server:bob" || got.Room != "lobby" {
			t.Errorf("%s got %+v, want from server:bob", name, got)
		}
	}

	// The app's error replies are sealed; leave works sealed.
	a.sendSealed(eventChat, chatRequest{Room: "elsewhere", Text: "hi"})
	a.waitError("Join the room before sending to it")
	b.sendSealed("leave", map[string]any{"rooms": []string{"lobby"}})
	b.sendSealed(eventChat, chatRequest{Room: "lobby", Text: "am I gone?"})
	b.waitError("Join the room before sending to it")
}

func TestEncryptionRequired(t *testing.T) {
	h := startAppWith(t, config{Encrypt: true})
	c := h.dial()
	c.send("authenticate", map[string]string{"token": h.login("eve")}) // no publicKey
	c.waitError("Encryption handshake failed")
	_, err := c.read()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4004 {
		t.Fatalf("after an authenticate without publicKey: %v, want close 4004", err)
	}
}

func TestBadTokenClosesWith4003(t *testing.T) {
	h := startApp(t)
	forged, _, err := newTokens([]byte("some-other-secret-0123456789"), time.Hour).issue("mallory")
	if err != nil {
		t.Fatal(err)
	}
	for name, token := range map[string]string{"garbage": "not-a-token", "other secret": forged} {
		t.Run(name, func(t *testing.T) {
			c := h.dial()
			c.send("authenticate", map[string]string{"token": token})
			c.waitError("Authentication failed")
			_, err := c.read()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != 4003 {
				t.Fatalf("after a bad token: %v, want close 4003", err)
			}
		})
	}
}

func TestHTTPAPIRefusesBadInput(t *testing.T) {
	h := startApp(t)
	token := h.login("carol")
	for _, tt := range []struct {
		name, method, path, token string
		body                      any
		want                      int
	}{
		{"empty name", http.MethodPost, "/api/login", "", map[string]string{"name": "   "}, http.StatusBadRequest},
		{"long name", http.MethodPost, "/api/login", "", map[string]string{"name": strings.Repeat("é", 33)}, http.StatusBadRequest},
		{"control in name", http.MethodPost, "/api/login", "", map[string]string{"name": "a\x00b"}, http.StatusBadRequest},
		{"longest name", http.MethodPost, "/api/login", "", map[string]string{"name": strings.Repeat("é", 32)}, http.StatusOK},
		{"no token", http.MethodPost, "/api/rooms/lobby/messages", "", map[string]string{"text": "hi"}, http.StatusUnauthorized},
		{"bad token", http.MethodPost, "/api/rooms/lobby/messages", token + "x", map[string]string{"text": "hi"}, http.StatusUnauthorized},
		{"bad room", http.MethodPost, "/api/rooms/Lobby/messages", token, map[string]string{"text": "hi"}, http.StatusBadRequest},
		{"reserved room", http.MethodPost, "/api/rooms/ws-default/messages", token, map[string]string{"text": "hi"}, http.StatusBadRequest},
		{"empty text", http.MethodPost, "/api/rooms/lobby/messages", token, map[string]string{"text": " "}, http.StatusBadRequest},
		{"empty room is fine", http.MethodPost, "/api/rooms/nobody-here/messages", token, map[string]string{"text": "hi"}, http.StatusAccepted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if status, body := h.do(tt.method, tt.path, tt.token, tt.body); status != tt.want {
				t.Errorf("status %d, want %d: %s", status, tt.want, body)
			}
		})
	}
}

func TestTokens(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	issuer := newTokens(testSecret, time.Hour)
	issuer.now = func() time.Time { return now }
	token, cl, err := issuer.issue("dave")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := issuer.verify(token); err != nil || got != cl {
		t.Fatalf("verify fresh token: %+v, %v; want %+v", got, err, cl)
	}
	payload, sig, _ := strings.Cut(token, ".")
	other := newTokens([]byte("another-secret-0123456789"), time.Hour)
	otherToken, _, _ := other.issue("dave")
	otherPayload, _, _ := strings.Cut(otherToken, ".")

	for _, tt := range []struct {
		name  string
		give  string
		after time.Duration
		want  error
	}{
		{"expired", token, time.Hour, errTokenExpired},
		{"almost expired", token, time.Hour - time.Second, nil},
		{"other secret", otherToken, 0, errTokenSignature},
		{"swapped payload", otherPayload + "." + sig, 0, errTokenSignature},
		{"no signature", payload, 0, errTokenMalformed},
		{"empty signature", payload + ".", 0, errTokenSignature},
		{"three parts", token + ".x", 0, errTokenMalformed},
		{"bad base64", payload + ".!!", 0, errTokenMalformed},
		{"too long", strings.Repeat("a", maxTokenLength+1), 0, errTokenMalformed},
		{"empty", "", 0, errTokenMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			issuer.now = func() time.Time { return now.Add(tt.after) }
			if _, err := issuer.verify(tt.give); !errors.Is(err, tt.want) {
				t.Errorf("verify: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestValidRoom(t *testing.T) {
	for _, tt := range []struct {
		give string
		want bool
	}{
		{"lobby", true},
		{"room-42", true},
		{strings.Repeat("a", 32), true},
		{strings.Repeat("a", 33), false},
		{"", false},
		{"Lobby", false},
		{"a b", false},
		{"ws-default", false},
		{"ws:room:x", false},
		{"2f1b6d8e-7c53-4a7e-9c1e-4f0a1b2c3d4e", false}, // a client id
	} {
		if got := validRoom(tt.give); got != tt.want {
			t.Errorf("validRoom(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tt := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr bool
	}{
		{
			name: "defaults",
			want: config{Addr: defaultAddr, TokenSecret: []byte{}, TokenTTL: defaultTokenTTL},
		},
		{
			name: "environment",
			env: map[string]string{"ADDR": ":9000", "REDIS_URL": "redis://r:6379/1",
				"TOKEN_SECRET": "0123456789abcdef", "TOKEN_TTL": "1h", "PRODUCTION": "true", "ENCRYPT": "true"},
			want: config{Addr: ":9000", RedisURL: "redis://r:6379/1", TokenSecret: []byte("0123456789abcdef"),
				TokenTTL: time.Hour, Production: true, Encrypt: true},
		},
		{
			name: "flags win",
			args: []string{"-addr", "127.0.0.1:8081", "-redis-url", "redis://b:6379/0", "-token-ttl", "2m", "-production=false", "-encrypt=false"},
			env:  map[string]string{"ADDR": ":9000", "REDIS_URL": "redis://r:6379/1", "PRODUCTION": "1", "ENCRYPT": "1"},
			want: config{Addr: "127.0.0.1:8081", RedisURL: "redis://b:6379/0", TokenSecret: []byte{}, TokenTTL: 2 * time.Minute},
		},
		{name: "short secret", env: map[string]string{"TOKEN_SECRET": "short"}, wantErr: true},
		{
			name: "encrypt flag",
			args: []string{"-encrypt"},
			want: config{Addr: defaultAddr, TokenSecret: []byte{}, TokenTTL: defaultTokenTTL, Encrypt: true},
		},
		{name: "bad ttl", env: map[string]string{"TOKEN_TTL": "soon"}, wantErr: true},
		{name: "bad encrypt", env: map[string]string{"ENCRYPT": "maybe"}, wantErr: true},
		{name: "negative ttl", args: []string{"-token-ttl", "-1s"}, wantErr: true},
		{name: "stray argument", args: []string{"extra"}, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.args, env(tt.env))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Addr != tt.want.Addr || got.RedisURL != tt.want.RedisURL || !bytes.Equal(got.TokenSecret, tt.want.TokenSecret) ||
				got.TokenTTL != tt.want.TokenTTL || got.Production != tt.want.Production || got.Encrypt != tt.want.Encrypt {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestReadyzFollowsRedis: with a real Redis that is killed and restarted,
// /readyz turns 503 while the subscription is down and 200 once it is back;
// /healthz stays 200 throughout.
func TestReadyzFollowsRedis(t *testing.T) {
	rs := redistest.Start(t)
	h := startAppWith(t, config{RedisURL: rs.URL()})
	status := func(path string) func() bool {
		return func() bool {
			code, _ := h.do(http.MethodGet, path, "", nil)
			return code == http.StatusOK
		}
	}
	waitFor(t, "ready", status("/readyz"))
	rs.Kill()
	waitFor(t, "not ready while Redis is down", func() bool { return !status("/readyz")() })
	if !status("/healthz")() {
		t.Error("/healthz failed while Redis is down")
	}
	rs.Restart(t)
	waitFor(t, "ready again", status("/readyz"))
}

// waitFor polls cond until it holds, failing after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTwoInstancesShareRooms: two apps on one real Redis (REDIS_URL) with
// the same token secret act as one chat.
func TestTwoInstancesShareRooms(t *testing.T) {
	rs := redistest.Start(t)
	one := startAppWith(t, config{RedisURL: rs.URL()})
	two := startAppWith(t, config{RedisURL: rs.URL()})
	a, b := one.dial(), two.dial()
	a.authenticate(one.login("alice"))
	b.authenticate(one.login("bob")) // a token from one instance works on the other
	a.joinRoom("lobby", "alice")
	b.joinRoom("lobby", "bob")
	a.send(eventChat, chatRequest{Room: "lobby", Text: "across instances"})
	if got := b.waitChat("across instances"); got.From != "alice" {
		t.Errorf("bob got %+v", got)
	}
	status, body := two.do(http.MethodPost, "/api/rooms/lobby/messages", two.login("ops"), map[string]string{"text": "deploy done"})
	if status != http.StatusAccepted {
		t.Fatalf("POST message: status %d: %s", status, body)
	}
	for _, c := range []*wsClient{a, b} {
		if got := c.waitChat("deploy done"); got.From != "server:ops" {
			t.Errorf("got %+v", got)
		}
	}
}
