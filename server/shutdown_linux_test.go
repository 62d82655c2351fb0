//go:build linux

package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/server"
)

// A client that never answers the close handshake costs Shutdown at most
// CloseGrace, not the old fixed 2 s.
func TestShutdownWaitsAtMostCloseGrace(t *testing.T) {
	ts := startServer(t, nil, server.Options{Config: server.Config{CloseGrace: 100 * time.Millisecond}})
	// A raw client that upgrades, authenticates and then never reads, so it
	// never answers the close frame.
	deaf, err := dialRaw(strings.TrimPrefix(ts.srv.URL, "http://"), `{"token":"user:deaf"}`)
	if err != nil {
		t.Fatal(err)
	}
	defer deaf.conn.Close()
	eventually(t, "client registered", func() bool { return len(ts.h.Clients()) == 1 })
	start := time.Now()
	if err := ts.h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A behavioural bound, not a performance figure: without the option
	// this took closeGrace (2 s) plus the sweep.
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("Shutdown took %v with CloseGrace 100ms", took)
	}
}
