package wstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// WaitTimeout bounds every wait, so a failing test fails instead of hanging.
const WaitTimeout = 5 * time.Second

// Frame is a server frame as a test reads it.
type Frame struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	ID    string          `json:"id"`
}

// Client is one test connection. ID is the client id from "connected",
// once the test has read it.
type Client struct {
	T    testing.TB
	Conn *websocket.Conn
	ID   string
}

// Dial connects to url with the given headers (nil for none); the
// connection is closed when the test ends.
func Dial(t testing.TB, url string, hdr http.Header) *Client {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: WaitTimeout}
	conn, resp, err := d.Dial(url, hdr)
	if err != nil {
		t.Fatalf("dial: %v (response %v)", err, resp)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &Client{T: t, Conn: conn}
}

// DialAuth dials url, sends {"event":"authenticate","data":authData} and
// waits for "connected"; it returns the client (its ID set) and the
// connected payload. An error reply or a close fails the test.
func DialAuth(t testing.TB, url string, authData any) (*Client, protocol.ConnectedData) {
	t.Helper()
	c := Dial(t, url, nil)
	c.Send(protocol.EventAuthenticate, authData)
	f := c.Expect(protocol.EventConnected)
	var d protocol.ConnectedData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		t.Fatalf("connected data %s: %v", f.Data, err)
	}
	c.ID = d.ID
	return c, d
}

// SendRaw writes s as one text frame.
func (c *Client) SendRaw(s string) {
	c.T.Helper()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(WaitTimeout))
	if err := c.Conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.T.Fatalf("write: %v", err)
	}
}

// Send writes {"event":event,"data":data}; nil data is left out.
func (c *Client) Send(event string, data any) {
	c.T.Helper()
	m := map[string]any{"event": event}
	if data != nil {
		m["data"] = data
	}
	b, err := json.Marshal(m)
	if err != nil {
		c.T.Fatal(err)
	}
	c.SendRaw(string(b))
}

// SendID writes {"event":event,"data":data,"id":id}; nil data is left out.
func (c *Client) SendID(event, id string, data any) {
	c.T.Helper()
	m := map[string]any{"event": event, "id": id}
	if data != nil {
		m["data"] = data
	}
	b, err := json.Marshal(m)
	if err != nil {
		c.T.Fatal(err)
	}
	c.SendRaw(string(b))
}

// ExpectErrorID reads the next frame and checks it is an error with msg
// answering the request id.
func (c *Client) ExpectErrorID(msg, id string) {
	c.T.Helper()
	f := c.Expect(protocol.EventError)
	var d protocol.ErrorData
	_ = json.Unmarshal(f.Data, &d)
	if d.Message != msg || f.ID != id {
		c.T.Fatalf("error %q with id %q, want %q with id %q", d.Message, f.ID, msg, id)
	}
}

// Next reads one frame.
func (c *Client) Next() Frame {
	c.T.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(WaitTimeout))
	_, b, err := c.Conn.ReadMessage()
	if err != nil {
		c.T.Fatalf("read: %v", err)
	}
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		c.T.Fatalf("frame %q is not JSON: %v", b, err)
	}
	return f
}

// Expect reads the next frame and checks its event.
func (c *Client) Expect(event string) Frame {
	c.T.Helper()
	f := c.Next()
	if f.Event != event {
		c.T.Fatalf("got event %q (data %s), want %q", f.Event, f.Data, event)
	}
	return f
}

// ExpectData reads the next frame and checks its event and data.
func (c *Client) ExpectData(event, wantJSON string) {
	c.T.Helper()
	f := c.Expect(event)
	if !JSONEqual(f.Data, wantJSON) {
		c.T.Fatalf("%s data %s, want %s", event, f.Data, wantJSON)
	}
}

// ExpectError reads the next frame and checks it is an error with msg.
func (c *Client) ExpectError(msg string) {
	c.T.Helper()
	f := c.Expect(protocol.EventError)
	var d protocol.ErrorData
	_ = json.Unmarshal(f.Data, &d)
	if d.Message != msg {
		c.T.Fatalf("error message %q, want %q", d.Message, msg)
	}
}

// Probe proves that nothing was queued for the client before this point:
// it sends an invalid frame and expects the answer to it as the very next
// frame, since a client's frames leave in order.
func (c *Client) Probe() {
	c.T.Helper()
	c.SendRaw("probe: not json")
	c.ExpectError(protocol.ErrMsgInvalidFormat)
}

// ExpectClose reads until the connection closes and checks code and reason.
func (c *Client) ExpectClose(code int, reason string) {
	c.T.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for {
		_ = c.Conn.SetReadDeadline(deadline)
		_, b, err := c.Conn.ReadMessage()
		if err == nil {
			c.T.Logf("frame before close: %s", b)
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.T.Fatalf("read ended with %v, want close %d", err, code)
		}
		if ce.Code != code || ce.Text != reason {
			c.T.Fatalf("closed with %d %q, want %d %q", ce.Code, ce.Text, code, reason)
		}
		return
	}
}

// ExpectCloseNow checks that the very next thing read is the close with
// code and reason: no frame comes before it.
func (c *Client) ExpectCloseNow(code int, reason string) {
	c.T.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(WaitTimeout))
	_, b, err := c.Conn.ReadMessage()
	if err == nil {
		c.T.Fatalf("got frame %s, want close %d %q at once", b, code, reason)
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code || ce.Text != reason {
		c.T.Fatalf("read ended with %v, want close %d %q", err, code, reason)
	}
}

// JSONEqual reports whether got and want are the same JSON value.
func JSONEqual(got json.RawMessage, want string) bool {
	var a, b any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// Recorder collects callback events for assertions.
type Recorder[T any] struct {
	mu sync.Mutex
	ch chan T
	n  int
}

// NewRecorder returns an empty Recorder.
func NewRecorder[T any]() *Recorder[T] { return &Recorder[T]{ch: make(chan T, 1024)} }

// Add records v.
func (r *Recorder[T]) Add(v T) {
	r.mu.Lock()
	r.n++
	r.mu.Unlock()
	r.ch <- v
}

// C is the channel of recorded values, for a select with other events.
func (r *Recorder[T]) C() <-chan T { return r.ch }

// Count is how many values were recorded.
func (r *Recorder[T]) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Wait returns the next recorded value, failing after WaitTimeout.
func (r *Recorder[T]) Wait(t testing.TB) T {
	t.Helper()
	select {
	case v := <-r.ch:
		return v
	case <-time.After(WaitTimeout):
		var zero T
		t.Fatalf("timed out waiting for %T", zero)
		return zero
	}
}

// Eventually polls cond until it holds, failing after WaitTimeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
