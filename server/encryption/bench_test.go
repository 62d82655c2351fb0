package encryption_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
)

// BenchmarkOutbound measures one encrypted delivery's share of work in the
// transformer: seal {"event","data"} for one client ("transform"), and that
// plus encoding the result as the frame the server writes ("frame").
func BenchmarkOutbound(b *testing.B) {
	pair, _ := pairWithClient(b)
	outbound := pair.Outbound()
	ctx := context.Background()
	for _, size := range []int{64, 1024, 16 * 1024} {
		data, _ := json.Marshal(map[string]string{"text": strings.Repeat("x", size-len(`{"text":""}`))})
		req := server.OutboundRequest{Client: server.ClientInfo{ID: "c"}, Event: "chat", Data: data}
		b.Run(fmt.Sprintf("transform/%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := outbound(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("frame/%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				res, err := outbound(ctx, req)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := json.Marshal(protocol.OutMessage{Event: res.Event, Data: res.Data}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInbound measures opening one encrypted client frame.
func BenchmarkInbound(b *testing.B) {
	pair, key := pairWithClient(b)
	inbound := pair.Inbound()
	sealed, err := key.EncryptJSON(map[string]any{"event": "chat", "data": map[string]string{"text": "hello, world"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	env, _ := json.Marshal(sealed)
	req := server.InboundRequest{Client: server.ClientInfo{ID: "c"}, Data: env}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inbound(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
