package metrics_test

import (
	"context"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/ignis-go/wscomponent/metrics"
	"github.com/ignis-go/wscomponent/server"
)

func TestHistogramsWithoutHelper(t *testing.T) {
	m := metrics.New()
	m.ObserveCallback("message", 2*time.Millisecond)
	m.ObserveCallback("custom", time.Millisecond) // an unknown name still counts
	m.ObservePublish(time.Millisecond, nil)
	m.ObserveConnected(30 * time.Millisecond)
	m.ObserveOutbox(4096)
	reg := prometheus.NewRegistry()
	if err := reg.Register(m); err != nil {
		t.Fatal(err)
	}
	// Before Attach only the histograms exist (10 callback series: the 9
	// names the Helper uses and "custom"); registering a second Metrics on
	// the same registry fails (one per helper, or wrap the registerer).
	n, err := testutil.GatherAndCount(reg)
	if err != nil || n != 13 {
		t.Fatalf("gathered %d series (%v), want the 13 histogram series", n, err)
	}
	if err := reg.Register(metrics.New()); err == nil {
		t.Fatal("a second Metrics registered on the same registry")
	}
	want := `
# HELP wscomponent_outbox_bytes Bytes waiting in a client's outbox when a frame was queued (frames written at once are not counted).
# TYPE wscomponent_outbox_bytes histogram
wscomponent_outbox_bytes_bucket{le="256"} 0
wscomponent_outbox_bytes_bucket{le="1024"} 0
wscomponent_outbox_bytes_bucket{le="4096"} 1
wscomponent_outbox_bytes_bucket{le="16384"} 1
wscomponent_outbox_bytes_bucket{le="65536"} 1
wscomponent_outbox_bytes_bucket{le="262144"} 1
wscomponent_outbox_bytes_bucket{le="1.048576e+06"} 1
wscomponent_outbox_bytes_bucket{le="4.194304e+06"} 1
wscomponent_outbox_bytes_bucket{le="+Inf"} 1
wscomponent_outbox_bytes_sum 4096
wscomponent_outbox_bytes_count 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "wscomponent_outbox_bytes"); err != nil {
		t.Fatal(err)
	}
	if got := testutil.CollectAndCount(m, "wscomponent_callback_duration_seconds"); got != 10 {
		t.Fatalf("%d callback series, want the 9 known names plus custom", got)
	}
}

// BenchmarkObserveOutbox is the cost the metrics add per queued delivery
// (the only per-recipient observation); compare it with cpu-ns/delivery of
// BenchmarkFanout1k in server/.
func BenchmarkObserveOutbox(b *testing.B) {
	m := metrics.New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveOutbox(1500)
		}
	})
}

func BenchmarkObserveCallback(b *testing.B) {
	m := metrics.New()
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveCallback("message", 300*time.Microsecond)
	}
}

// The dashboard under deploy/ only queries metrics this package exports.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	mfs := gatherAttached(t)
	exported := map[string]bool{}
	for _, mf := range mfs {
		exported[mf.GetName()] = true
	}
	used := regexp.MustCompile(`wscomponent_[a-z_]+`).FindAllString(string(b), -1)
	if len(used) < 20 {
		t.Fatalf("dashboard queries only %d metrics", len(used))
	}
	for _, name := range used {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
		if !exported[base] {
			t.Errorf("dashboard queries %s, which is not exported", name)
		}
	}
}

// Every Stats field is exported: a field added to Stats without a metric
// fails here.
func TestEveryStatsFieldHasAMetric(t *testing.T) {
	mfs := gatherAttached(t)
	var names strings.Builder
	for _, mf := range mfs {
		names.WriteString(mf.GetName() + " ")
	}
	// Stats fields whose metric is named differently.
	renamed := map[string]string{
		"Connections": "wscomponent_connections", "Unauthorized": "wscomponent_connections",
		"Authenticating": "wscomponent_connections", "Handshaking": "wscomponent_connections",
		"Authenticated": "wscomponent_connections", "Encrypted": "encrypted_connections",
		"Backpressured": "backpressured_connections", "Accepted": "connections_accepted",
		"Closed": "connections_closed", "RefusedUpgrades": "refused_upgrades",
		"RedisDowntime": "redis_downtime_seconds", "RedisLastGap": "redis_last_gap_seconds",
	}
	st := reflect.TypeFor[server.Stats]()
	for i := range st.NumField() {
		f := st.Field(i).Name
		want, ok := renamed[f]
		if !ok {
			want = "wscomponent_" + snake(f)
		}
		if !strings.Contains(names.String(), want) {
			t.Errorf("Stats.%s has no metric (looked for %q)", f, want)
		}
	}
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// gatherAttached gathers a Metrics attached to a Helper that was never
// configured (New does not touch the network, so its Redis is never dialled).
func gatherAttached(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	h, err := server.New(server.Options{
		Redis:        rdb,
		Authenticate: func(context.Context, server.AuthenticateRequest) (*server.AuthResult, error) { return nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	m.Attach(h)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}
