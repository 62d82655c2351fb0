// Package benchserver is the server side of the load-test contract shared by
// cmd/wsserver (a standalone process to measure) and cmd/wsload (the load
// generator). It wraps a server.Helper with:
//
//   - authentication that accepts {"token": "<non-empty string>"} and makes the
//     token the user id, so wsload's token template ("user-{i}") names users;
//   - a ValidateRoom that allows every room;
//   - a MessageHandler with two events: "echo" replies to the sender with an
//     "echo" frame carrying the same data, and "fanout" ({n, size, room?,
//     run?, interval?}) makes the server itself send n "bench" messages;
//   - an HTTP control surface: POST /broadcast?n=&size=&room=&run=&interval=
//     runs the same fan-out (local=1: this instance only, no Redis publish),
//     GET /stats answers the Helper's Stats as JSON.
//
// Fan-out messages go through PublishBroadcast (PublishToRoom when a room is
// given), so they reach the clients of every instance on the same Redis.
// Their data is {"run":R,"seq":i,"t":<unix nanoseconds when sent>,"pad":"xx…"},
// padded to the requested size, so a receiver can check loss, duplicates and
// order per run and measure delivery latency against its own clock.
//
// The package is for measurements, not production: the authentication
// trusts whatever token it is given.
package benchserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/server"
)

// Events of the load-test contract.
const (
	// EventEcho is answered with an EventEcho frame holding the same data.
	EventEcho = "echo"
	// EventFanout asks the server to send FanoutRequest.N bench messages.
	EventFanout = "fanout"
	// EventBench names every message a fan-out sends.
	EventBench = "bench"
)

// Limits on one fan-out request, so that a typo cannot keep a server busy
// for hours.
const (
	// MaxFanoutMessages caps FanoutRequest.N.
	MaxFanoutMessages = 1_000_000
	// MaxFanoutSize caps FanoutRequest.Size in bytes.
	MaxFanoutSize = 64 * 1024
	// MaxFanoutInterval caps FanoutRequest.Interval.
	MaxFanoutInterval = 10 * time.Second
)

// ErrBadFanout reports a fan-out request outside the limits above.
var ErrBadFanout = errors.New("benchserver: bad fan-out request")

// FanoutRequest asks for N bench messages of about Size bytes of data each.
type FanoutRequest struct {
	// N is the number of messages. At least 1.
	N int `json:"n"`
	// Size is the length of each message's data in bytes; the padding makes
	// up the difference. Default 100.
	Size int `json:"size,omitempty"`
	// Room, when set, sends to that room instead of every client.
	Room string `json:"room,omitempty"`
	// Run tags the messages so receivers can ignore other runs.
	Run string `json:"run,omitempty"`
	// Interval is the pause between two messages. Default 0: back to back.
	Interval Duration `json:"interval,omitempty"`
	// Local sends with Broadcast / SendToRoom, which reach only this
	// instance's clients and publish nothing on Redis: it separates the cost
	// of the fan-out from the cost of the publish.
	Local bool `json:"local,omitempty"`
}

// Duration is a time.Duration that reads JSON strings such as "5ms" and
// numbers of nanoseconds.
type Duration time.Duration

// UnmarshalJSON accepts "5ms" or 5000000.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*d = Duration(n)
	return nil
}

// MarshalJSON writes the duration as a string such as "5ms".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// FanoutResult tells what a fan-out did.
type FanoutResult struct {
	Sent int `json:"sent"`
	// FirstNanos and LastNanos are the "t" of the first and last message.
	FirstNanos int64 `json:"firstT"`
	LastNanos  int64 `json:"lastT"`
	// PublishErrors counts messages whose Redis publish failed; they were
	// still delivered to this instance's clients.
	PublishErrors int `json:"publishErrors"`
}

// BenchData is the data of a bench message.
type BenchData struct {
	Run string `json:"run"`
	Seq int    `json:"seq"`
	// T is when the server sent the message, in Unix nanoseconds.
	T   int64  `json:"t"`
	Pad string `json:"pad"`
}

// Payload encodes the data of bench message seq of run, sent at t, padded
// so that it is size bytes long (or as short as it can be).
func Payload(run string, seq int, t int64, size int) json.RawMessage {
	runJSON, _ := json.Marshal(run)
	b := make([]byte, 0, max(size, 64+len(runJSON)))
	b = append(b, `{"run":`...)
	b = append(b, runJSON...)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, t, 10)
	b = append(b, `,"pad":"`...)
	for pad := size - len(b) - len(`"}`); pad > 0; pad-- {
		b = append(b, 'x')
	}
	b = append(b, `"}`...)
	return b
}

// Config is what New needs.
type Config struct {
	// Redis connects the instance to the others. Required.
	Redis redis.UniversalClient
	// Logger receives the Helper's logs. Default: no-op.
	Logger *zap.Logger
	// Path is where the WebSocket endpoint is mounted. Default "/ws".
	Path string
	// Helper tunes the server.Helper; zero fields take its defaults.
	Helper server.Config
}

// Server is a server.Helper wired for load tests, with its control routes.
type Server struct {
	h   *server.Helper
	mux *http.ServeMux
}

// New builds the Server. Call Configure before serving and Shutdown after.
func New(cfg Config) (*Server, error) {
	if cfg.Path == "" {
		cfg.Path = "/ws"
	}
	s := &Server{mux: http.NewServeMux()}
	opts := server.Options{
		Config:       cfg.Helper,
		Redis:        cfg.Redis,
		Logger:       cfg.Logger,
		Authenticate: Authenticate,
		ValidateRoom: func(_ context.Context, req server.ValidateRoomRequest) ([]string, error) {
			return req.Rooms, nil
		},
		Message: s.handleMessage,
	}
	h, err := server.New(opts)
	if err != nil {
		return nil, err
	}
	s.h = h
	s.mux.Handle("GET "+cfg.Path, h)
	s.mux.HandleFunc("POST /broadcast", s.serveBroadcast)
	s.mux.HandleFunc("GET /stats", s.serveStats)
	return s, nil
}

// Authenticate accepts {"token":"<non-empty string>"} and uses the token as
// the user id. It is the contract behind wsload's -token template.
func Authenticate(_ context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
	var d struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(req.Data, &d); err != nil || d.Token == "" {
		return nil, nil
	}
	return &server.AuthResult{UserID: d.Token}, nil
}

// Helper returns the wrapped server.Helper.
func (s *Server) Helper() *server.Helper { return s.h }

// Handler serves the WebSocket endpoint and the control routes.
func (s *Server) Handler() http.Handler { return s.mux }

// Configure starts the Helper (Redis subscription, background loops).
func (s *Server) Configure(ctx context.Context) error { return s.h.Configure(ctx) }

// Shutdown stops the Helper and closes every client.
func (s *Server) Shutdown(ctx context.Context) error { return s.h.Shutdown(ctx) }

func (s *Server) handleMessage(ctx context.Context, ev server.MessageEvent) error {
	switch ev.Message.Event {
	case EventEcho:
		data := ev.Message.Data
		if data == nil {
			data = json.RawMessage("null")
		}
		return s.h.SendToClient(ev.ClientID, EventEcho, data)
	case EventFanout:
		var req FanoutRequest
		if err := json.Unmarshal(ev.Message.Data, &req); err != nil {
			return fmt.Errorf("%w: %v", ErrBadFanout, err)
		}
		_, err := s.Fanout(ctx, req)
		return err
	}
	return nil
}

// Fanout sends req.N bench messages through PublishBroadcast (or
// PublishToRoom; Broadcast or SendToRoom when req.Local is set), stamping each with the time it is handed to the Helper.
// It returns early, with what was sent, when ctx ends.
func (s *Server) Fanout(ctx context.Context, req FanoutRequest) (FanoutResult, error) {
	if req.Size == 0 {
		req.Size = 100
	}
	if req.N < 1 || req.N > MaxFanoutMessages || req.Size < 0 || req.Size > MaxFanoutSize ||
		req.Interval < 0 || time.Duration(req.Interval) > MaxFanoutInterval {
		return FanoutResult{}, fmt.Errorf("%w: want 1 ≤ n ≤ %d, 0 ≤ size ≤ %d, 0 ≤ interval ≤ %s",
			ErrBadFanout, MaxFanoutMessages, MaxFanoutSize, MaxFanoutInterval)
	}
	var res FanoutResult
	var tick *time.Ticker
	if req.Interval > 0 {
		tick = time.NewTicker(time.Duration(req.Interval))
		defer tick.Stop()
	}
	for i := range req.N {
		if i > 0 && tick != nil {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-tick.C:
			}
		} else if ctx.Err() != nil {
			return res, ctx.Err()
		}
		t := time.Now().UnixNano()
		data := Payload(req.Run, i, t, req.Size)
		var err error
		switch {
		case req.Local && req.Room != "":
			err = s.h.SendToRoom(req.Room, EventBench, data)
		case req.Local:
			err = s.h.Broadcast(EventBench, data)
		case req.Room != "":
			err = s.h.PublishToRoom(ctx, req.Room, EventBench, data)
		default:
			err = s.h.PublishBroadcast(ctx, EventBench, data)
		}
		if err != nil {
			res.PublishErrors++
		}
		if i == 0 {
			res.FirstNanos = t
		}
		res.LastNanos = t
		res.Sent++
	}
	return res, nil
}

func (s *Server) serveBroadcast(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := FanoutRequest{N: 1, Room: q.Get("room"), Run: q.Get("run"), Local: q.Get("local") == "1"}
	var err error
	if v := q.Get("n"); v != "" {
		req.N, err = strconv.Atoi(v)
	}
	if v := q.Get("size"); v != "" && err == nil {
		req.Size, err = strconv.Atoi(v)
	}
	if v := q.Get("interval"); v != "" && err == nil {
		var d time.Duration
		d, err = time.ParseDuration(v)
		req.Interval = Duration(d)
	}
	if err != nil {
		http.Error(w, "benchserver: bad query: "+err.Error(), http.StatusBadRequest)
		return
	}
	res, err := s.Fanout(r.Context(), req)
	if errors.Is(err, ErrBadFanout) {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, res)
}

func (s *Server) serveStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.h.Stats())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(append(b, '\n'))
}

// ParseBench reads a bench frame ({"event":"bench","data":{…}}) without
// decoding it in full: the load generator parses every delivery, and its CPU
// is part of the latency it measures. ok is false for any other frame;
// sameRun tells whether the frame belongs to run.
func ParseBench(frame []byte, run string) (seq int, t int64, sameRun, ok bool) {
	const head = `{"event":"bench","data":`
	if bytes.HasPrefix(frame, []byte(head)) {
		if seq, t, sameRun, ok = parseBenchFast(frame[len(head):], run); ok {
			return seq, t, sameRun, true
		}
	}
	return parseBenchSlow(frame, run)
}

// ParseBenchData is ParseBench for the data of a frame already known to be
// a bench frame (a client.Frame's Data).
func ParseBenchData(data []byte, run string) (seq int, t int64, sameRun, ok bool) {
	if seq, t, sameRun, ok = parseBenchFast(data, run); ok {
		return seq, t, sameRun, true
	}
	var d BenchData
	if err := json.Unmarshal(data, &d); err != nil {
		return 0, 0, false, false
	}
	return d.Seq, d.T, d.Run == run, true
}

// parseBenchFast reads data as Payload writes it ({"run":R,"seq":N,"t":T,…});
// ok is false when it is written otherwise.
func parseBenchFast(data []byte, run string) (seq int, t int64, sameRun, ok bool) {
	const head = `{"run":"`
	if !bytes.HasPrefix(data, []byte(head)) {
		return 0, 0, false, false
	}
	s := data[len(head):]
	end := bytes.IndexByte(s, '"')
	if end < 0 || bytes.IndexByte(s[:end], '\\') >= 0 {
		return 0, 0, false, false
	}
	sameRun = string(s[:end]) == run
	s = s[end+1:]
	seqV, rest, ok1 := cutInt(s, `,"seq":`)
	tV, _, ok2 := cutInt(rest, `,"t":`)
	if !ok1 || !ok2 {
		return 0, 0, false, false
	}
	return int(seqV), tV, sameRun, true
}

// cutInt reads the integer that follows prefix at the start of s.
func cutInt(s []byte, prefix string) (int64, []byte, bool) {
	if !bytes.HasPrefix(s, []byte(prefix)) {
		return 0, s, false
	}
	s = s[len(prefix):]
	neg := len(s) > 0 && s[0] == '-'
	i := 0
	if neg {
		i = 1
	}
	var u uint64
	start := i
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if u > (math.MaxInt64-uint64(s[i]-'0'))/10 {
			return 0, s, false // past int64 (a Unix time in ns has 19 digits and fits)
		}
		u = u*10 + uint64(s[i]-'0')
	}
	if i == start {
		return 0, s, false
	}
	v := int64(u)
	if neg {
		v = -v
	}
	return v, s[i:], true
}

func parseBenchSlow(frame []byte, run string) (int, int64, bool, bool) {
	var f struct {
		Event string    `json:"event"`
		Data  BenchData `json:"data"`
	}
	if err := json.Unmarshal(frame, &f); err != nil || f.Event != EventBench {
		return 0, 0, false, false
	}
	return f.Data.Seq, f.Data.T, f.Data.Run == run, true
}
