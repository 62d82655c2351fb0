// Package client is a Go client for wscomponent WebSocket servers (and
// Ignis servers, for the §3 protocol): connect and authenticate, requests
// with ids and their answers, rooms that survive reconnects with recovery
// of what was missed, heartbeats, session refresh, presence — for
// services, tests and the load tool (SPEC §9.6).
//
//	c, err := client.Dial(ctx, "wss://example.com/ws", client.Options{
//		// Called on every (re)connect and refresh: hand out a fresh token.
//		Credentials: func(ctx context.Context) (any, error) {
//			tok, err := tokens.Get(ctx)
//			return map[string]string{"token": tok}, err
//		},
//		OnEvent: func(f client.Frame) {
//			switch f.Event {
//			case "chat":
//				var m ChatMessage
//				if f.Decode(&m) == nil {
//					show(m)
//				}
//			}
//		},
//		OnReconnect: func(r client.Reconnected) {
//			for _, room := range r.Unrecovered {
//				reload(room) // messages sent meanwhile were not replayed
//			}
//		},
//		OnGap: func(g client.Gap) { reloadAll() },
//	})
//	if err != nil {
//		return err // e.g. *client.CloseError{Code: 4003} for refused credentials
//	}
//	defer c.Close()
//
//	ack, err := c.Join(ctx, "lobby", "team-7") // ack.Refused says which were not
//	reply, err := c.Request(ctx, "get-profile", map[string]string{"id": "42"})
//	var se *client.ServerError // the handler's server.ClientError, or "Internal error"
//	if errors.As(err, &se) { … }
//	err = c.Send("typing", nil) // fire and forget
//
// # Wire protocol
//
// Dial opens the socket, sends {"event":"authenticate","data":<Credentials>}
// and returns once "connected" arrived (Client.Connected: id, userId,
// time); a refusal is the server's close as a *CloseError whose Message
// is the "error" the server sent before it ("Authentication failed" or
// "Authentication error"). Join, Leave, Request, Presence and Refresh send
// frames with an "id" (a per-Client counter) and are resolved by the frame
// carrying the same id: the "ack" of join/leave/presence, the
// Helper.Reply of an application request, "refreshed", or an "error",
// which becomes a *ServerError. Each waits at most
// Options.RequestTimeout and until its ctx ends.
//
// # Handlers
//
// Incoming frames are routed by the reader goroutine: answers go to the
// waiting request; everything else becomes a call of an Options.On…
// handler (OnEvent for application frames, OnPresence, OnGap,
// OnSessionExpiring, OnRefresh, OnServerError, OnDisconnect,
// OnReconnect). Handlers are set in Options, before Dial, so nothing that
// arrives right after "connected" is missed. They run one at a time, in
// arrival order, on one handler goroutine fed by a queue of at most
// Options.EventQueue frames (1024). The reader never waits for a handler:
// a frame that finds the queue full makes the client drop the connection
// (close 1008, OnDisconnect with ErrEventQueueFull) and reconnect, so a
// slow handler costs a reconnect — and, in history rooms, nothing else:
// only queued frames advance the recovery offset, so the rejoin replays
// the rest. A handler may call any method, Request and Close included
// (answers are resolved by the reader, not the handler goroutine).
//
// Options.OnFrame takes the application frames instead of OnEvent and
// runs on the reader itself, for consumers to which the hand-over to the
// handler goroutine costs too much (the load tool, cmd/wsload, whose CPU
// per delivery limits its fan-out runs) or that need frames in order with
// the answers: a request returns only after OnFrame had every frame that
// came before its answer (e.g. what the server replays before a join's
// ack). It must not block the reader; see its comment.
//
// # Reconnect and recovery
//
// On by default (Options.Reconnect): after a close that
// DefaultShouldRetry (or Reconnect.ShouldRetry) accepts — a network loss,
// 1001 server shutdown, 4002 heartbeat timeout, 4006 session expired, … —
// the Client waits a random backoff in [0, min(Max, Min·2ⁿ)) (500ms–30s,
// full jitter), dials again, calls Credentials again, authenticates, and
// rejoins the rooms joined through Join (refused ones are forgotten).
// Frames of history rooms (SPEC §9.5) carry "room" and "offset"; the
// Client remembers the last offset per room and sends it as "since" in
// the rejoin, so the server replays what was missed, in order, with no
// gap and no duplicate. OnReconnect gets the rejoin's ack and
// Reconnected.Unrecovered, the rooms whose state the app must reload
// (plain rooms and history rooms answered recovered:false). It stops for
// good — Done is closed, Err says why, OnDisconnect has Reconnecting
// false — after Close, 4003 "Authentication failed" (refused
// credentials, also on a reconnect), 4004, 4005 Disconnect and the app's
// own 4000–4999 codes, 1000, 1007, 1009, a refused encryption handshake
// (ErrEncryptionHandshake, see Encryption), or after Reconnect.MaxAttempts
// failed attempts in a row (ErrReconnectGaveUp). While it is between
// connections, Send and the requests fail fast with ErrNotConnected; a
// request whose connection is lost fails with ErrConnectionLost.
//
// # Session expiry
//
// When the server announces "session-expiring" (AuthResult.ExpiresAt),
// OnSessionExpiring is told and, unless Options.AutoRefresh is off, the
// Client calls Credentials and sends "refresh"; OnRefresh gets the new
// expiry or the error (*ServerError "Refresh failed"). Client.Refresh does
// the same on demand.
//
// # Goroutines
//
// A Client owns: one supervisor goroutine (waits for the connection to
// end, reconnects, rejoins); per connection one reader (routes frames)
// and one writer (the only one that writes frames: the send queue,
// heartbeats every Options.HeartbeatInterval, the closing frame; gorilla's
// ping and close answers go through WriteControl); the handler goroutine,
// started by the first handler call it has to make (a Client whose frames
// all go to Options.OnFrame may never have one); and, during an automatic
// refresh, one refresher. Close stops and waits for all of them (it does
// not wait for the handler goroutine when a handler calls it: that one
// returns right after the handler). Every wait has a deadline or a
// context.
//
// # Encryption
//
// Options.Encrypt runs the per-connection encryption of server/encryption
// (SPEC §5; the flow of the JS client's encrypt option), for servers with
// RequireEncryption:
//
//   - every connection (the first and each reconnect) gets a fresh P-256
//     key pair (helpers/ecdh); its public key goes into the authenticate
//     payload as "publicKey", merged into what Credentials returned, which
//     must therefore be a JSON object (or nil, sent as {});
//   - "connected" must carry serverPublicKey and salt, and the server key
//     must equal Options.ServerPublicKey when that pins it; otherwise the
//     client closes the connection (1000 "client refused handshake") with
//     an error wrapping ErrEncryptionHandshake (ErrServerKeyMismatch for
//     the pin) — Dial returns it, a reconnect stops the Client with it;
//   - the message key is HKDF-SHA-256 of the ECDH secret with the salt and
//     the info "ignis-ecdh-p256-aes-256-gcm-v1", for AES-256-GCM;
//   - every frame the client sends but heartbeat — Send, Request, Join,
//     Leave, Presence, Refresh — goes as
//     {"event":"encrypted","data":{"iv","ct"},"id"?}, sealing
//     {"event","data"}, the request id outside the envelope, so the
//     client works with server RequireEncryptedInbound;
//   - every "encrypted" frame from the server is opened into the frame it
//     carries (its outer id, room and offset are kept) and routed like a
//     plaintext one. The server sends its protocol frames (error, ack,
//     refreshed, session-expiring, gap, recovery) in plaintext; a
//     plaintext application frame, or one that does not decrypt, is
//     dropped and logged, never handed to a handler.
//
// Connected.Encrypted tells whether a session is encrypted. Additional
// authenticated data (server/encryption Options.AAD) is not supported.
// Without Encrypt, a server that requires encryption refuses the client
// with 4004, which stops it.
package client
