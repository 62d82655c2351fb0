package emitter_test

import (
	"context"
	"log"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/emitter"
)

// A worker that holds no sockets sends to WebSocket clients through Redis.
// (No Output comment: the example needs a Redis server, so it is compiled,
// not run.)
func Example() {
	e, err := emitter.NewFromURL("redis://localhost:6379/0", zap.NewExample())
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close() // closes the connection NewFromURL opened

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	type orderShipped struct {
		OrderID string `json:"orderId"`
	}
	// Every session of user 42, on every server of the fleet.
	if err := e.ToUser(ctx, "42", "order:shipped", orderShipped{OrderID: "A-17"}); err != nil {
		log.Print(err)
	}
	// Everyone in the room but the client that caused the message.
	if err := e.ToRoom(ctx, "lobby", "chat:message", map[string]string{"text": "hi"}, "client-id-of-sender"); err != nil {
		log.Print(err)
	}
	// Every authenticated connection.
	if err := e.Broadcast(ctx, "maintenance", map[string]int{"inMinutes": 10}); err != nil {
		log.Print(err)
	}
}

// An application that already has a Redis client shares it with the
// emitter; the emitter then leaves it open on Close.
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rdb.Close()

	e, err := emitter.New(emitter.Options{Redis: rdb})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()

	if err := e.ToClient(context.Background(), "3f1c…", "welcome", nil); err != nil {
		log.Print(err)
	}
}
