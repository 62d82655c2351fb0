package encryption_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"

	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/server/encryption"
)

// Required encryption: Apply binds the handshake, both transformers and the
// key clean-up, and turns RequireEncryption on. Serve the browser client
// next to the WebSocket endpoint.
func Example() {
	pair, err := encryption.New(encryption.Options{})
	if err != nil {
		log.Fatal(err)
	}
	opts := server.Options{
		// Redis and Authenticate as usual.
		ClientDisconnected: func(ctx context.Context, ev server.ClientDisconnectedEvent) error {
			return nil // runs after the pair has dropped the client's key
		},
	}
	pair.Apply(&opts)

	mux := http.NewServeMux()
	mux.Handle("/js/"+encryption.ClientJSName, encryption.JSHandler())
	// mux.Handle("/ws", helper) once server.New(opts) has built it.

	fmt.Println(opts.RequireEncryption, opts.Handshake != nil, opts.OutboundTransformer != nil, opts.InboundTransformer != nil)
	// Output: true true true true
}

// Optional encryption: the client asks for it with an application event;
// the handler runs the exchange, answers in plaintext, and only then marks
// the client encrypted.
func ExamplePair_Exchange() {
	pair, err := encryption.New(encryption.Options{})
	if err != nil {
		log.Fatal(err)
	}
	var helper *server.Helper // set once server.New has returned
	opts := server.Options{
		Message: func(ctx context.Context, ev server.MessageEvent) error {
			if ev.Message.Event != "start-encryption" {
				return nil
			}
			var d struct {
				PublicKey string `json:"publicKey"`
			}
			if err := json.Unmarshal(ev.Message.Data, &d); err != nil {
				return err
			}
			res, err := pair.Exchange(ctx, ev.ClientID, d.PublicKey)
			if err != nil {
				return err
			}
			if err := helper.SendToClient(ev.ClientID, "encryption-ready", map[string]string{
				"serverPublicKey": res.ServerPublicKey, "salt": res.Salt,
			}); err != nil {
				return err
			}
			return helper.EnableClientEncryption(ev.ClientID)
		},
	}
	pair.Apply(&opts)
	opts.RequireEncryption = false // the handshake is the application's
	_ = opts
}
