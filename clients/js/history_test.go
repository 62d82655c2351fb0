//go:build linux

// PENDING: enable when server history (SPEC §9.5, Config.HistoryFor) lands:
//
//	git mv clients/js/testdata/pending/history_test.go clients/js/history_test.go
//	git mv clients/js/testdata/pending/history.test.mjs clients/js/testdata/history.test.mjs
//
// It lives under testdata/ so that `go test ./...` does not build it while
// the server lacks the option. Adjust the option's name if it differs.

package js_test

import (
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/server"
)

// TestNodeHistoryRecovery: a client in a history room ("h-…") goes away
// with the server's restart; messages published meanwhile (through the
// control server's second instance on the same Redis) are replayed after
// the rejoin with "since", in order, with no duplicate, and the rejoin says
// recovered true; after a Redis restart without persistence (new epoch) it
// says false.
func TestNodeHistoryRecovery(t *testing.T) {
	history := func(o *server.Options) {
		o.Config.HistoryFor = func(room string) (int, time.Duration) {
			if len(room) > 2 && room[:2] == "h-" {
				return 10000, time.Hour
			}
			return 0, 0
		}
	}
	runNode(t, startServer(t, serverMode{edit: history, second: true}), "history.test.mjs")
}
