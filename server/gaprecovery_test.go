package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
)

// gapFleet is two instances on one Redis; A connects as the ACL user
// "held", which the test can switch off to hold back A's resubscription
// while B keeps publishing.
type gapFleet struct {
	rs     *redistest.Server
	admin  *redis.Client
	a, b   *testServer
	ca, cb *wsClient
}

func newGapFleet(t *testing.T, cfg server.Config) *gapFleet {
	t.Helper()
	rs := redistest.StartWith(t, redistest.Options{Args: []string{"--user", "held", "off", ">pw", "~*", "&*", "+@all"}})
	f := &gapFleet{rs: rs, admin: rs.Client(t)}
	f.acl(t, "on")
	held := redis.NewClient(&redis.Options{Addr: rs.Addr(), Username: "held", Password: "pw", MaxRetries: -1})
	t.Cleanup(func() { _ = held.Close() })
	cfg.HistoryFor = historyRooms
	f.a = startServer(t, rs, server.Options{Redis: held, ValidateRoom: allowAll, Config: cfg})
	f.b = startServer(t, rs, server.Options{ValidateRoom: allowAll, Config: cfg})
	f.ca = f.a.connect(t, "ua")
	f.ca.joinAck("h-room", "plain")
	f.cb = f.b.connect(t, "ub")
	f.cb.joinAck("h-room", "plain")
	return f
}

func (f *gapFleet) acl(t *testing.T, state string) {
	t.Helper()
	if err := f.admin.Do(context.Background(), "ACL", "SETUSER", "held", state).Err(); err != nil {
		t.Fatal(err)
	}
}

// holdBack cuts A off Redis and keeps it off until release.
func (f *gapFleet) holdBack(t *testing.T) {
	t.Helper()
	f.acl(t, "off")
	if err := f.admin.Do(context.Background(), "CLIENT", "KILL", "USER", "held").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A to notice the outage", func() bool { return f.a.h.Health(context.Background()) != nil })
}

func (f *gapFleet) publish(t *testing.T, room string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := f.b.h.PublishToRoom(context.Background(), room, "n", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGapRecoveryHistoryRoomsCatchUpAndPlainRoomsGetAGapNotice: while A's
// resubscription is held back, B publishes into a history room and a plain
// room. Every history-room message reaches the clients of both instances
// exactly once and in order; A's client gets one gap event with the
// outage's window for what it could not recover.
func TestGapRecoveryHistoryRoomsCatchUpAndPlainRoomsGetAGapNotice(t *testing.T) {
	f := newGapFleet(t, server.Config{GapNotice: true})
	ctx := context.Background()
	f.publish(t, "h-room", 1, 1)
	for _, c := range []*wsClient{f.ca, f.cb} {
		if n := seqOf(t, c.nextHistory()); n != 1 {
			t.Fatalf("before the gap: %d", n)
		}
	}

	f.holdBack(t)
	downAt := time.Now()
	f.publish(t, "h-room", 2, 41)
	if err := f.b.h.PublishToRoom(ctx, "plain", "p", 1); err != nil {
		t.Fatal(err)
	}
	f.acl(t, "on")
	eventually(t, "A resubscribed", func() bool { return f.a.h.Health(ctx) == nil })
	upAt := time.Now()
	f.publish(t, "h-room", 42, 45) // after the gap: live, after the caught-up ones

	// A's client: 2..45 once each in order, and one gap event.
	var seq []int
	var gaps []protocol.GapData
	for len(seq) < 44 {
		fr := f.ca.nextHistory()
		switch fr.Event {
		case "n":
			seq = append(seq, seqOf(t, fr))
		case protocol.EventGap:
			var g protocol.GapData
			_ = json.Unmarshal(fr.Data, &g)
			gaps = append(gaps, g)
		default:
			t.Fatalf("A's client got %+v", fr)
		}
	}
	for i, n := range seq {
		if n != i+2 {
			t.Fatalf("A's client: message %d is n=%d (%v)", i, n, seq)
		}
	}
	for len(gaps) == 0 {
		fr := f.ca.Expect(protocol.EventGap)
		var g protocol.GapData
		_ = json.Unmarshal(fr.Data, &g)
		gaps = append(gaps, g)
	}
	from, err1 := time.Parse(time.RFC3339, gaps[0].From)
	to, err2 := time.Parse(time.RFC3339, gaps[0].To)
	if err1 != nil || err2 != nil || from.After(downAt.Add(time.Second)) || to.Before(downAt) || to.After(upAt.Add(time.Second)) || !from.Before(to) {
		t.Fatalf("gap window %+v (outage ~%v..%v): %v %v", gaps[0], downAt, upAt, err1, err2)
	}
	f.ca.Probe() // exactly one gap, no duplicate, the plain message is gone
	// B's client had them live, once each.
	for i := 2; i <= 45; i++ {
		fr := f.cb.nextHistory()
		if fr.Event == "p" {
			fr = f.cb.nextHistory()
		}
		if n := seqOf(t, fr); n != i {
			t.Fatalf("B's client: n=%d, want %d", n, i)
		}
	}
	f.cb.Probe()
	// 40 missed, plus those of 42..45 that were in the stream before the
	// catch-up read it (their live copies were dropped).
	if st := f.a.h.Stats(); st.CatchUpMessages < 40 || st.CatchUpMessages > 44 {
		t.Errorf("CatchUpMessages %d, want 40 to 44", st.CatchUpMessages)
	}
}

// TestGapRecoveryAfterRedisLostItsData: Redis restarts without persistence
// while A is held back; the stream starts a new epoch. A delivers the new
// epoch's stream from its start and tells its members recovered:false.
func TestGapRecoveryAfterRedisLostItsData(t *testing.T) {
	f := newGapFleet(t, server.Config{})
	ctx := context.Background()
	f.publish(t, "h-room", 1, 1)
	oldOffset := f.ca.nextHistory().Offset
	f.cb.nextHistory()

	// The restart brings the "held" user back switched off (it is defined
	// so on the command line): A stays out while B publishes anew.
	f.rs.Restart(t)
	eventually(t, "A to notice the outage", func() bool { return f.a.h.Health(ctx) != nil })
	eventually(t, "B resubscribed", func() bool { return f.b.h.Health(ctx) == nil })
	f.publish(t, "h-room", 2, 6)
	f.acl(t, "on")
	eventually(t, "A resubscribed", func() bool { return f.a.h.Health(ctx) == nil })

	fr := f.ca.Expect(protocol.EventRecovery)
	if !jsonEqual(fr.Data, `{"recovered":{"h-room":false}}`) {
		t.Fatalf("recovery notice %s", fr.Data)
	}
	for i := 2; i <= 6; i++ {
		fr := f.ca.nextHistory()
		if n := seqOf(t, fr); n != i || strings.SplitN(fr.Offset, ":", 2)[0] == strings.SplitN(oldOffset, ":", 2)[0] {
			t.Fatalf("A's client: %+v, want n=%d of a new epoch", fr, i)
		}
	}
	f.ca.Probe()
}
