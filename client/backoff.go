package client

import (
	"context"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// Dialer opens a WebSocket connection; *websocket.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, url string, header http.Header) (*websocket.Conn, *http.Response, error)
}

// backoff returns the wait before reconnect attempt n (from 0): a uniform
// random duration in [0, min(max, min·2ⁿ)) ("full jitter").
func (r Reconnect) backoff(n int) time.Duration {
	ceil := r.Min
	for i := 0; i < n && ceil < r.Max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, r.Max)
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil)
}

// enabled reports whether the policy reconnects at all.
func (r Reconnect) enabled() bool { return r.MaxAttempts != Off }
