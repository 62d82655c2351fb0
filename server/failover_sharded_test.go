package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
)

func TestFailoverClusterSharded(t *testing.T) {
	t.Parallel()
	awaitDialersGone(t)
	cl := startFailoverCluster(t)
	cfg := server.Config{RedisRouting: server.RoutingSharded}
	f := newRoomFleet(t, cl.Nodes()[0], clusterClient(t, cl, "wsA"), clusterClient(t, cl, "wsB"), cfg)
	f.checkDelivery(t, "before")

	// The master of the room's slot: B's SSUBSCRIBE to it dies with it.
	m, err := clusterClient(t, cl, "test").MasterForKey(context.Background(), protocol.ChannelRoom("shared"))
	if err != nil {
		t.Fatal(err)
	}
	nodeAt(t, cl, m.Options().Addr).Kill()
	killed := time.Now()
	recovered := f.awaitDelivery(t, killed)
	f.checkDelivery(t, "after")
	t.Logf("cluster failover, sharded routing (node timeout 1 s): delivery A→B resumed %v after SIGKILL of "+
		"the room channel's master (bound %v)", recovered.Round(time.Millisecond), failoverBound)
}
