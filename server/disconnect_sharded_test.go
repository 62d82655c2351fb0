package server_test

import (
	"context"
	"testing"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
)

func TestDisconnectUserAcrossShardedFleet(t *testing.T) {
	sf := newShardedFleet(t)
	f := sf.fleet
	// In sharded mode ws:control is placed on its slot's master after
	// Configure returns, so wait until both instances have it: a control
	// message published earlier would reach nobody.
	master := sf.master(t, protocol.ChannelControl)
	eventually(t, "both instances ssubscribed to "+protocol.ChannelControl, func() bool {
		return sf.shardSubscribers(t, master, protocol.ChannelControl) == 2
	})

	// u1 has a session on each instance (a1, b1); A ends both.
	if err := f.a.h.DisconnectUser(context.Background(), "u1", server.Disconnect{Code: 4010, Reason: "Logged out"}); err != nil {
		t.Fatal(err)
	}
	f.a1.ExpectClose(4010, "Logged out")
	f.b1.ExpectClose(4010, "Logged out")
	// Nobody else was touched, on either instance.
	f.a2.Probe()
	f.b2.Probe()
	eventually(t, "B counted the control message", func() bool { return f.b.h.Stats().ControlReceived == 1 })
	if got := f.a.h.Stats().ControlReceived; got != 0 {
		t.Errorf("A counted %d control messages from others, want 0 (its own is skipped)", got)
	}
}
