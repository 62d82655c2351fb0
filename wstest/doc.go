// Package wstest is the test kit for applications that use the component,
// as httptest is for net/http and fxtest for fx: it starts a real
// redis-server for a test, dials real WebSocket clients (gorilla/websocket)
// with a deadline on every read and write, authenticates them, and waits
// for events, callbacks and conditions with deadlines instead of sleeping.
// The component's own tests use it.
//
// A typical test starts the app (fxtest or server.New), dials, and expects
// frames:
//
//	func TestChat(t *testing.T) {
//		rdb := wstest.StartRedis(t).Client(t) // a real redis-server on a free port
//		// … start the app with rdb, get its WebSocket URL …
//		c, connected := wstest.DialAuth(t, url, map[string]string{"token": "t-alice"})
//		c.SendID("join", "1", map[string]any{"rooms": []string{"lobby"}})
//		c.Expect("ack")
//		c.Send("chat", map[string]string{"text": "hi"})
//		c.ExpectData("chat", `{"text":"hi","from":"`+connected.UserID+`"}`)
//	}
//
// Every wait is bounded by WaitTimeout (5 s), so a failing test fails
// instead of hanging. StartRedis needs the redis-server binary on PATH
// (Debian: apt-get install redis-server); a server that cannot start fails
// the test with the server's own output.
package wstest
