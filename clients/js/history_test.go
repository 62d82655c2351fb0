//go:build linux

package js_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/server"
)

// historyRooms makes every room whose name starts with "h-" a history room
// (SPEC §9.5): far more entries than a test publishes, kept for an hour.
func historyRooms(o *server.Options) {
	o.Config.HistoryFor = func(room string) (int, time.Duration) {
		if strings.HasPrefix(room, "h-") {
			return 10000, time.Hour
		}
		return 0, 0
	}
}

// TestNodeHistoryRecovery: a client in a history room ("h-…") goes away
// with the server's restart; messages published meanwhile (through the
// control server's second instance on the same Redis) are replayed after
// the rejoin with "since", in order, with no duplicate, and the rejoin says
// recovered true; after a Redis restart without persistence (new epoch) it
// says false.
func TestNodeHistoryRecovery(t *testing.T) {
	runNode(t, startServer(t, serverMode{edit: historyRooms, second: true}), "history.test.mjs")
}
