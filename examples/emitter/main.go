// Command emitter publishes WebSocket messages from a process that holds no
// sockets, through helpers/emitter: every server on the same Redis delivers
// them to its local clients (this works with Ignis servers too).
//
// Send a chat line to everyone in room "lobby" of examples/chat:
//
//	go run ./examples/emitter -redis redis://127.0.0.1:6379/0 \
//		-type room -target lobby -event chat \
//		-data '{"room":"lobby","from":"emitter","text":"hello from a worker"}'
//
// Flags:
//
//	-redis    Redis URL (env REDIS_URL, else redis://127.0.0.1:6379/0);
//	          any form helpers/redisconn accepts
//	-type     client | user | room | broadcast (room)
//	-target   client id, user id or room; not used by broadcast
//	-event    event name (required; the protocol's own events are refused)
//	-data     the event's data, as JSON (null)
//	-exclude  comma-separated client ids to skip (room and broadcast only)
//	-every    repeat interval; 0 sends back to back (0)
//	-count    number of messages; 0 = until interrupted, needs -every (1)
//
// It prints one line per message published and exits with status 1 and a
// message on stderr when a message cannot be published, 2 on bad flags.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ignis-go/wscomponent/helpers/emitter"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/helpers/redisconn"
)

// defaultRedisURL is used when neither -redis nor REDIS_URL is given.
const defaultRedisURL = "redis://127.0.0.1:6379/0"

// Timeouts of the Redis round trips.
const (
	pingTimeout    = 5 * time.Second
	publishTimeout = 5 * time.Second
)

// options is one parsed command line.
type options struct {
	// RedisURL is the Redis the WebSocket servers subscribe to.
	RedisURL string
	// Type says who receives the message.
	Type protocol.MessageType
	// Target is the client id, user id or room; empty for broadcast.
	Target string
	// Event is the event name the clients receive.
	Event string
	// Data is the event's data: compact, valid JSON.
	Data json.RawMessage
	// Exclude lists client ids that must not receive a room or broadcast
	// message.
	Exclude []string
	// Every is the pause between two messages.
	Every time.Duration
	// Count is the number of messages; 0 means until interrupted.
	Count int
}

// parseOptions reads and checks the command line. Flag errors and -h print
// the usage on stderr.
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	redisURL := getenv("REDIS_URL")
	if redisURL == "" {
		redisURL = defaultRedisURL
	}
	fs := flag.NewFlagSet("emitter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&redisURL, "redis", redisURL, "Redis URL (env REDIS_URL)")
	typ := fs.String("type", string(protocol.TypeRoom), "client, user, room or broadcast")
	target := fs.String("target", "", "client id, user id or room (not for broadcast)")
	event := fs.String("event", "", "event name (required)")
	data := fs.String("data", "null", "event data as JSON")
	exclude := fs.String("exclude", "", "comma-separated client ids to skip (room and broadcast)")
	every := fs.Duration("every", 0, "repeat interval (0: back to back)")
	count := fs.Int("count", 1, "number of messages; 0 = until interrupted (needs -every)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	o := options{
		RedisURL: redisURL,
		Type:     protocol.MessageType(*typ),
		Target:   strings.TrimSpace(*target),
		Event:    *event,
		Every:    *every,
		Count:    *count,
	}
	if !o.Type.Valid() {
		return options{}, fmt.Errorf("-type %q: want client, user, room or broadcast", *typ)
	}
	switch {
	case o.Type == protocol.TypeBroadcast && o.Target != "":
		return options{}, errors.New("-target is not used with -type broadcast")
	case o.Type != protocol.TypeBroadcast && o.Target == "":
		return options{}, fmt.Errorf("-type %s needs -target", o.Type)
	}
	if o.Event == "" {
		return options{}, errors.New("-event is required")
	}
	if protocol.IsSystemEvent(o.Event) {
		return options{}, fmt.Errorf("-event %q is reserved by the WebSocket protocol", o.Event)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(*data)); err != nil {
		return options{}, fmt.Errorf("-data is not valid JSON: %w", err)
	}
	o.Data = buf.Bytes()
	for _, id := range strings.Split(*exclude, ",") {
		if id = strings.TrimSpace(id); id != "" {
			o.Exclude = append(o.Exclude, id)
		}
	}
	if len(o.Exclude) > 0 && o.Type != protocol.TypeRoom && o.Type != protocol.TypeBroadcast {
		return options{}, errors.New("-exclude works with -type room and broadcast only")
	}
	switch {
	case o.Every < 0:
		return options{}, errors.New("-every must not be negative")
	case o.Count < 0:
		return options{}, errors.New("-count must not be negative")
	case o.Count == 0 && o.Every == 0:
		return options{}, errors.New("-count 0 (until interrupted) needs -every")
	}
	return o, nil
}

// publish sends one message as o describes.
func publish(ctx context.Context, em *emitter.Emitter, o options) error {
	switch o.Type {
	case protocol.TypeClient:
		return em.ToClient(ctx, o.Target, o.Event, o.Data)
	case protocol.TypeUser:
		return em.ToUser(ctx, o.Target, o.Event, o.Data)
	case protocol.TypeRoom:
		return em.ToRoom(ctx, o.Target, o.Event, o.Data, o.Exclude...)
	default:
		return em.Broadcast(ctx, o.Event, o.Data, o.Exclude...)
	}
}

// describe is the line printed for message n.
func describe(n int, o options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "published #%d: %s", n, o.Type)
	if o.Target != "" {
		fmt.Fprintf(&b, " %q", o.Target)
	}
	fmt.Fprintf(&b, " event %q data %s", o.Event, o.Data)
	if len(o.Exclude) > 0 {
		fmt.Fprintf(&b, " exclude %s", strings.Join(o.Exclude, ","))
	}
	return b.String()
}

// run connects, publishes o.Count messages o.Every apart and prints a line
// for each on out. It returns nil when ctx ends between two messages.
func run(ctx context.Context, o options, out io.Writer) error {
	rdb, err := redisconn.FromURL(o.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	// Fail with a clear message now rather than on the first publish.
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	err = rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("redis at %s is not reachable: %w", redisconn.Addr(rdb), err)
	}
	em, err := emitter.New(emitter.Options{Redis: rdb})
	if err != nil {
		return err
	}
	defer em.Close()

	var tick <-chan time.Time
	if o.Every > 0 {
		t := time.NewTicker(o.Every)
		defer t.Stop()
		tick = t.C
	}
	for n := 1; o.Count == 0 || n <= o.Count; n++ {
		if n > 1 && tick != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-tick:
			}
		}
		pctx, cancel := context.WithTimeout(ctx, publishTimeout)
		err := publish(pctx, em, o)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted
			}
			return fmt.Errorf("message #%d: %w", n, err)
		}
		fmt.Fprintln(out, describe(n, o))
	}
	return nil
}

// quietRedis drops go-redis' own log lines: a failure reaches the user once,
// as this program's error message, instead of once per dial attempt too.
type quietRedis struct{}

// Printf discards the line.
func (quietRedis) Printf(context.Context, string, ...any) {}

func main() {
	redis.SetLogger(quietRedis{})
	o, err := parseOptions(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "emitter:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "emitter:", err)
		stop()
		os.Exit(1)
	}
}
