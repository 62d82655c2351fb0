package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
)

// Chat limits and names.
const (
	// eventChat is the application event, in both directions.
	eventChat = "chat"
	// maxNameLength and maxTextLength count characters (code points).
	maxNameLength = 32
	maxTextLength = 500
	// publishTimeout bounds one Redis publish of a chat message.
	publishTimeout = 5 * time.Second
)

// roomPattern is what a chat room may be called. It keeps names short and
// URL-safe, and since it is 32 characters at most it can never match a
// client id (a 36-character UUID), whose own-id room the component reserves.
var roomPattern = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// reservedRoomPrefix is the prefix of the component's default rooms
// (ws-default, ws-notification). Every client is in them, so letting clients
// chat there would make chat a broadcast channel.
const reservedRoomPrefix = "ws-"

// validRoom reports whether clients may join and chat in room.
func validRoom(room string) bool {
	return roomPattern.MatchString(room) && !strings.HasPrefix(room, reservedRoomPrefix)
}

// validName checks a display name: 1–32 printable characters after
// trimming, which the caller does.
func validName(name string) error {
	if !utf8.ValidString(name) {
		return errors.New("name must be UTF-8")
	}
	n := utf8.RuneCountInString(name)
	if n == 0 || n > maxNameLength {
		return fmt.Errorf("name must be 1 to %d characters", maxNameLength)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return errors.New("name must not contain control characters")
		}
	}
	return nil
}

// cleanText trims text and checks it is 1–500 characters of valid UTF-8.
func cleanText(text string) (string, error) {
	text = strings.TrimSpace(text)
	if !utf8.ValidString(text) {
		return "", errors.New("text must be UTF-8")
	}
	n := utf8.RuneCountInString(text)
	if n == 0 || n > maxTextLength {
		return "", fmt.Errorf("text must be 1 to %d characters", maxTextLength)
	}
	return text, nil
}

// chatMessage is the data of a "chat" event sent to clients.
type chatMessage struct {
	// Room is where the message was sent.
	Room string `json:"room"`
	// From is the sender's display name, or "server:<name>" for messages
	// sent through the HTTP API.
	From string `json:"from"`
	// Text is the message, trimmed, at most 500 characters.
	Text string `json:"text"`
	// At is when the server accepted the message (UTC, RFC 3339).
	At time.Time `json:"at"`
}

// chatRequest is the data of a "chat" event sent by a client.
type chatRequest struct {
	// Room must be a room the client is in.
	Room string `json:"room"`
	// Text is 1–500 characters once trimmed.
	Text string `json:"text"`
}

// chat holds the WebSocket handlers of the app.
type chat struct {
	log    *zap.Logger
	tokens *tokens
	// ws is set by attach during fx.New, before the app starts and so
	// before any handler can run. It cannot be a constructor parameter:
	// the helper is built from these handlers.
	ws *server.Helper
}

func newChat(log *zap.Logger, t *tokens) *chat {
	return &chat{log: log.Named("chat"), tokens: t}
}

// attach gives the handlers the helper they reply through.
func (c *chat) attach(ws *server.Helper) { c.ws = ws }

// authenticate accepts {"token": "..."} with a valid demo token. The user id
// is the token's subject; the display name travels in the metadata.
func (c *chat) authenticate(_ context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
	var body struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(req.Data, &body); err != nil || body.Token == "" {
		return nil, nil
	}
	cl, err := c.tokens.verify(body.Token)
	if err != nil {
		// The reason stays in the log; the token itself is never logged.
		c.log.Debug("token refused", zap.String("client_id", req.ClientID), zap.Error(err))
		return nil, nil
	}
	return &server.AuthResult{UserID: cl.Sub, Metadata: map[string]any{"name": cl.Name}}, nil
}

// validateRoom lets clients join the requested rooms that are valid chat
// room names and refuses the others.
func (c *chat) validateRoom(_ context.Context, req server.ValidateRoomRequest) ([]string, error) {
	allowed := make([]string, 0, len(req.Rooms))
	for _, r := range req.Rooms {
		if validRoom(r) {
			allowed = append(allowed, r)
		}
	}
	return allowed, nil
}

// clientConnected and clientDisconnected only log: the component keeps the
// indexes, so the app has nothing to track.
func (c *chat) clientConnected(_ context.Context, ev server.ClientConnectedEvent) error {
	c.log.Info("client connected", zap.String("client_id", ev.ClientID), zap.String("user_id", ev.UserID))
	return nil
}

func (c *chat) clientDisconnected(_ context.Context, ev server.ClientDisconnectedEvent) error {
	c.log.Info("client disconnected", zap.String("client_id", ev.ClientID), zap.String("user_id", ev.UserID),
		zap.Bool("authenticated", ev.Authenticated))
	return nil
}

// onMessage handles the application events of authenticated clients.
// Mistakes are answered with an "error" frame so the page can show them.
func (c *chat) onMessage(ctx context.Context, ev server.MessageEvent) error {
	if ev.Message.Event != eventChat {
		c.replyError(ev.ClientID, "Unknown event")
		return nil
	}
	var req chatRequest
	if err := json.Unmarshal(ev.Message.Data, &req); err != nil {
		c.replyError(ev.ClientID, "Invalid chat message")
		return nil
	}
	text, err := cleanText(req.Text)
	if err != nil {
		c.replyError(ev.ClientID, "Invalid chat message: "+err.Error())
		return nil
	}
	info, ok := c.ws.Client(ev.ClientID)
	if !ok {
		return nil // gone meanwhile
	}
	if !validRoom(req.Room) || !slices.Contains(info.Rooms, req.Room) {
		c.replyError(ev.ClientID, "Join the room before sending to it")
		return nil
	}
	name, _ := info.Metadata["name"].(string)
	msg := chatMessage{Room: req.Room, From: name, Text: text, At: time.Now().UTC()}
	// The client may leave right after sending; its message should still
	// reach the room, so the publish does not inherit its cancellation.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if err := c.ws.PublishToRoom(pctx, req.Room, eventChat, msg); err != nil {
		// Local members got it; other instances did not.
		c.replyError(ev.ClientID, "Message not delivered to every server")
		return fmt.Errorf("chat: publish to room %q: %w", req.Room, err)
	}
	return nil
}

func (c *chat) replyError(clientID, message string) {
	// The client may be gone already; nothing to do then.
	_ = c.ws.SendToClient(clientID, protocol.EventError, protocol.ErrorData{Message: message})
}
