package client_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ignis-go/wscomponent/client"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/server/encryption"
)

// The examples run against a real server: newServer (harness_test.go)
// starts a server.Helper in this process, on the redis-server that
// TestMain started for the package. Its authenticate handler accepts
// {"token":"user:<id>"}, its room validator refuses rooms named
// "secret…", and its message handler answers "echo" with Helper.Reply and
// "fail" with server.ClientError{Message: "bad input"}.

// Dial, Join and Request against a running server.
func Example() {
	srv, err := newServer("", server.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, srv.url(), client.Options{
		Credentials: func(context.Context) (any, error) {
			return map[string]string{"token": "user:alice"}, nil // fetched on every (re)connect
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	fmt.Println("connected as", c.Connected().UserID)

	ack, err := c.Join(ctx, "lobby", "secret-room")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("joined", ack.Rooms)
	for _, r := range ack.Refused {
		fmt.Println("refused", r.Room+":", r.Reason)
	}

	reply, err := c.Request(ctx, "echo", map[string]string{"text": "hello"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("reply", reply.Event, string(reply.Data))

	_, err = c.Request(ctx, "fail", nil)
	var se *client.ServerError
	if errors.As(err, &se) {
		fmt.Println("refused:", se.Message)
	}
	// Output:
	// connected as alice
	// joined [lobby]
	// refused secret-room: not allowed
	// reply echo {"text":"hello"}
	// refused: bad input
}

// Receive room messages: handlers run one at a time on the client's
// handler goroutine, never on the reader.
func ExampleClient_Join() {
	srv, err := newServer("", server.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan client.Frame, 1)
	c, err := client.Dial(ctx, srv.url(), client.Options{
		Credentials: func(context.Context) (any, error) { return map[string]string{"token": "user:bob"}, nil },
		OnEvent:     func(f client.Frame) { got <- f },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	if _, err := c.Join(ctx, "news"); err != nil {
		fmt.Println(err)
		return
	}
	// The ack came once the room was live, so this publish reaches bob.
	if err := srv.h.PublishToRoom(ctx, "news", "headline", map[string]string{"title": "Go 2"}); err != nil {
		fmt.Println(err)
		return
	}
	select {
	case f := <-got:
		var d struct{ Title string }
		_ = f.Decode(&d)
		fmt.Println(f.Event, d.Title)
	case <-ctx.Done():
		fmt.Println("no message")
	}
	// Output:
	// headline Go 2
}

// Talk to a server that requires encryption (server/encryption's Pair),
// pinning its public key: every frame but heartbeat travels sealed.
func ExampleOptions_encrypt() {
	pair, err := encryption.New(encryption.Options{}) // a real server keeps its key (PrivateKey)
	if err != nil {
		fmt.Println(err)
		return
	}
	opts := server.Options{Config: server.Config{RequireEncryptedInbound: true}}
	pair.Apply(&opts)
	srv, err := newServer("", opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, srv.url(), client.Options{
		// An object: the client adds its "publicKey" to it.
		Credentials:     func(context.Context) (any, error) { return map[string]string{"token": "user:carol"}, nil },
		Encrypt:         true,
		ServerPublicKey: pair.ServerPublicKey(), // known out of band
	})
	if err != nil {
		fmt.Println(err) // e.g. client.ErrServerKeyMismatch
		return
	}
	defer c.Close()
	fmt.Println("encrypted:", c.Connected().Encrypted)

	reply, err := c.Request(ctx, "echo", map[string]string{"text": "secret"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("reply", reply.Event, string(reply.Data))
	// Output:
	// encrypted: true
	// reply echo {"text":"secret"}
}
