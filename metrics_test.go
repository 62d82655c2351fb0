package wscomponent_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/fx"

	wscomponent "github.com/ignis-go/wscomponent"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
)

// scrape fetches /metrics and returns the value of each sample line
// ("name{labels}" → value).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, res.StatusCode, err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsMoveWithTraffic(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	srv := &loopbackEcho{}
	reg := prometheus.NewRegistry()
	_, h := startApp(t,
		baseOptions(srv, rdb),
		fx.Supply(fx.Annotate(reg, fx.As(new(prometheus.Registerer)))),
		fx.Invoke(func(e *echo.Echo) {
			e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
		}),
		wscomponent.ProvideAuthenticateHandler(newAuthenticate),
		wscomponent.ProvideMessageHandler(func() server.MessageHandler {
			return func(ctx context.Context, ev server.MessageEvent) error {
				if ev.Message.Event == "fail" {
					return errors.New("no")
				}
				return server.FromContext(ctx).Reply(ctx, ev, "pong", nil)
			}
		}),
	)
	metricsURL := "http" + strings.TrimPrefix(srv.url("/metrics"), "ws")
	before := scrape(t, metricsURL)
	if before["wscomponent_redis_subscribed"] != 1 || before[`wscomponent_connections{state="authenticated"}`] != 0 {
		t.Fatalf("before traffic: subscribed %v, authenticated %v",
			before["wscomponent_redis_subscribed"], before[`wscomponent_connections{state="authenticated"}`])
	}

	c := dial(t, srv.url("/ws"))
	authenticate(t, c, "t-alice")
	bad := dial(t, srv.url("/ws"))
	expectAuthRejected(t, bad, "t-nobody")
	for range 3 {
		send(t, c, "ping", nil)
		expectEvent(t, c, "pong", "")
	}
	send(t, c, "fail", nil)
	if err := h.PublishToRoom(context.Background(), "ws-default", "news", 1); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, c, "news", "1")

	var after map[string]float64
	eventually(t, "counters to move", func() bool {
		after = scrape(t, metricsURL)
		return after["wscomponent_callback_errors_total"] == 1
	})
	for _, tt := range []struct {
		name string
		want float64
	}{
		{`wscomponent_connections{state="authenticated"}`, 1},
		{"wscomponent_auth_successes_total", 1},
		{"wscomponent_auth_failures_total", 1},
		{"wscomponent_users", 1},
		{"wscomponent_messages_in_total", 6}, // 2 authenticate, 3 ping, 1 fail
		{"wscomponent_redis_published_total", 1},
		{`wscomponent_callback_duration_seconds_count{callback="message"}`, 4},
		{`wscomponent_callback_duration_seconds_count{callback="authenticate"}`, 2},
		{"wscomponent_redis_publish_duration_seconds_count", 1},
		{"wscomponent_connect_duration_seconds_count", 1},
	} {
		if got := after[tt.name]; got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}
	if after["wscomponent_messages_out_total"] < 5 { // connected, 3 pong, news, …
		t.Errorf("messages_out_total %v", after["wscomponent_messages_out_total"])
	}
}

func TestMetricsNeedNoRegisterer(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	srv := &loopbackEcho{}
	// Without a prometheus.Registerer in the graph nothing is registered
	// anywhere (no global registry) and the app runs as before.
	startApp(t, baseOptions(srv, rdb), wscomponent.ProvideAuthenticateHandler(newAuthenticate))
	if mfs, err := prometheus.DefaultGatherer.Gather(); err == nil {
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), "wscomponent_") {
				t.Fatalf("%s registered on the global registry", mf.GetName())
			}
		}
	}
}
