package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ignis-go/wscomponent/client"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/benchserver"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/wstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	h.record(-time.Second) // clock skew counts as zero
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 500 * time.Microsecond},
		{0.99, 990 * time.Microsecond},
		{1, 1000 * time.Microsecond},
	}
	for _, tt := range tests {
		got := h.quantile(tt.q)
		if diff := float64(got-tt.want) / float64(tt.want); diff < -0.02 || diff > 0.02 {
			t.Errorf("quantile(%g) = %s, want %s ± 2 %%", tt.q, got, tt.want)
		}
	}
	if h.maxValue() != time.Millisecond || h.count() != 1001 {
		t.Errorf("max %s count %d, want 1ms and 1001", h.maxValue(), h.count())
	}
	for _, v := range []uint64{0, 63, 64, 127, 128, 1000, 1 << 40, 1<<63 + 12345} {
		b := bucketOf(v)
		if b < 0 || b >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", v, b)
		}
		if mid := bucketValue(b); float64(mid) < float64(v)*0.98 || float64(mid) > float64(v)*1.02+1 {
			t.Errorf("bucketValue(bucketOf(%d)) = %d, more than 2 %% off", v, mid)
		}
	}
}

func TestParseProc(t *testing.T) {
	stat := []byte("4242 (odd) name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 9 0 100 0 0\n")
	cpu, err := parseStatCPU(stat)
	if want := time.Duration(200) * time.Second / time.Duration(clockTicks); err != nil || cpu != want {
		t.Errorf("parseStatCPU = %s, %v; want %s", cpu, err, want)
	}
	if _, err := parseStatCPU([]byte("4242 (x) S 1")); err == nil {
		t.Error("parseStatCPU accepted a short line")
	}
	rss, err := parseVmRSS([]byte("Name:\tx\nVmPeak:\t 100 kB\nVmRSS:\t   2048 kB\n"))
	if err != nil || rss != 2048*1024 {
		t.Errorf("parseVmRSS = %d, %v; want %d", rss, err, 2048*1024)
	}
	if _, err := parseVmRSS([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("parseVmRSS accepted a status without VmRSS")
	}
	s, err := sampleProc(os.Getpid())
	if err != nil || s.rss <= 0 {
		t.Errorf("sampleProc(self) = %+v, %v", s, err)
	}
}

func TestLoopbackPolicy(t *testing.T) {
	tests := []struct {
		give        string
		allowRemote bool
		wantErr     bool
	}{
		{give: "ws://127.0.0.1:9000/ws"},
		{give: "ws://127.3.4.5:9000/ws"},
		{give: "ws://[::1]:9000/ws"},
		{give: "ws://localhost:9000/ws"},
		{give: "ws://10.0.0.1:9000/ws", wantErr: true},
		{give: "ws://192.168.1.10/ws", wantErr: true},
		{give: "wss://[2001:db8::1]/ws", wantErr: true},
		{give: "ws://10.0.0.1:9000/ws", allowRemote: true},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.give)
		if err != nil {
			t.Fatal(err)
		}
		p := policy{allowRemote: tt.allowRemote}
		err = p.checkURL(context.Background(), u)
		if (err != nil) != tt.wantErr {
			t.Errorf("checkURL(%s, allowRemote %v) = %v, want error %v", tt.give, tt.allowRemote, err, tt.wantErr)
		}
		if err != nil && !errors.Is(err, errRemote) {
			t.Errorf("checkURL(%s) = %v, want errRemote", tt.give, err)
		}
	}
	for addr, wantErr := range map[string]bool{"127.0.0.1:80": false, "[::1]:80": false, "10.0.0.1:80": true, "8.8.8.8:53": true} {
		if err := (policy{}).control("tcp", addr, nil); (err != nil) != wantErr {
			t.Errorf("control(%s) = %v, want error %v", addr, err, wantErr)
		}
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		give    []string
		wantErr string
		check   func(t *testing.T, c *config)
	}{
		{name: "positional scenario", give: []string{"echo", "-clients", "3"}, check: func(t *testing.T, c *config) {
			if c.scenario != "echo" || c.clients != 3 || c.nodes[0].String() != "ws://127.0.0.1:9000/ws" ||
				c.control.String() != "http://127.0.0.1:9000" {
				t.Errorf("got %+v", c)
			}
		}},
		{name: "flag scenario and nodes", give: []string{"-scenario", "fanout", "-nodes", "127.0.0.1:1,ws://127.0.0.1:2/x"}, check: func(t *testing.T, c *config) {
			if len(c.nodes) != 2 || c.nodes[0].String() != "ws://127.0.0.1:1/ws" || c.nodes[1].Path != "/x" ||
				c.control.Host != "127.0.0.1:1" {
				t.Errorf("got nodes %v control %v", c.nodes, c.control)
			}
		}},
		{name: "token template", give: []string{"idle", "-token", "t-{i}-{node}"}, check: func(t *testing.T, c *config) {
			if got, want := string(c.auth.data(7, 1)), `{"token":"t-7-1"}`; got != want {
				t.Errorf("data %s, want %s", got, want)
			}
		}},
		{name: "auth data template", give: []string{"idle", "-auth-data", `{"jwt":"j{i}","tenant":{node}}`}, check: func(t *testing.T, c *config) {
			if got, want := string(c.auth.data(2, 0)), `{"jwt":"j2","tenant":0}`; got != want {
				t.Errorf("data %s, want %s", got, want)
			}
		}},
		{name: "no scenario", give: []string{"-clients", "3"}, wantErr: "no scenario"},
		{name: "unknown scenario", give: []string{"storm"}, wantErr: "unknown scenario"},
		{name: "bad auth data", give: []string{"idle", "-auth-data", `{"x":`}, wantErr: "not valid JSON"},
		{name: "bad trigger", give: []string{"fanout", "-trigger", "carrier-pigeon"}, wantErr: "-trigger"},
		{name: "bad url", give: []string{"idle", "-url", "http://127.0.0.1/ws"}, wantErr: "scheme"},
		{name: "bad pid", give: []string{"idle", "-pid", "x"}, wantErr: "not a PID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.give, &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestRemoteTargetRefusedBeforeDialling(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"idle", "-url", "ws://10.255.255.1:9000/ws", "-quiet"}, &out, &errOut)
	if !errors.Is(err, errRemote) {
		t.Fatalf("run = %v, want errRemote", err)
	}
	err = run(context.Background(), []string{"fanout", "-control", "http://10.255.255.1:9000", "-quiet"}, &out, &errOut)
	if !errors.Is(err, errRemote) {
		t.Fatalf("run with remote -control = %v, want errRemote", err)
	}
}

// startNodes runs n benchservers on one Redis and returns their WebSocket
// URLs.
func startNodes(t *testing.T, n int) []string {
	t.Helper()
	rs := redistest.Start(t)
	var urls []string
	for range n {
		u, _ := startNode(t, rs)
		urls = append(urls, u)
	}
	return urls
}

// startNode runs a benchserver on rs and returns its WebSocket URL; it is
// shut down when the test ends (Shutdown may be called before).
func startNode(t *testing.T, rs *redistest.Server) (string, *benchserver.Server) {
	t.Helper()
	s, err := benchserver.New(benchserver.Config{Redis: rs.Client(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = s.Configure(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		hs.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws", s
}

// testRunner is a runner for url as the command line would make it.
func testRunner(t *testing.T, args ...string) *runner {
	t.Helper()
	cfg, err := parseConfig(append(args, "-quiet"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return newRunner(cfg, io.Discard)
}

// TestRefusalIsAnAuthError: a token the server refuses fails the connect
// with an authError carrying the server's close, and the summary says so.
func TestRefusalIsAnAuthError(t *testing.T) {
	url := startNodes(t, 1)[0]
	r := testRunner(t, "idle", "-url", url, "-token", "")
	_, err := r.newDialer().connect(context.Background(), 0)
	var ae *authError
	var ce *client.CloseError
	if !errors.As(err, &ae) || !errors.As(err, &ce) || ce.Code != protocol.CloseAuthFailed {
		t.Fatalf("connect with an empty token: %v, want an authError with close %d", err, protocol.CloseAuthFailed)
	}

	var out bytes.Buffer
	if err := run(context.Background(), []string{"idle", "-url", url, "-token", "", "-clients", "2", "-hold", "1ms", "-quiet"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{"0 of 2 (2 failed)", `authentication refused: closed 4003 "Authentication failed" after error "Authentication failed"`} {
		if !strings.Contains(flat, want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}

// TestLostConnectionsCountAsDropped: a connection the server ends (here by
// shutting down) is counted and logged once; the client does not
// reconnect.
func TestLostConnectionsCountAsDropped(t *testing.T) {
	url, s := startNode(t, redistest.Start(t))
	r := testRunner(t, "idle", "-url", url)
	ctx := context.Background()
	users := live(r.newDialer().connectAll(ctx, 3, 3, 0, &r.conn, &r.errs))
	defer closeAll(users)
	if len(users) != 3 {
		t.Fatalf("%d of 3 connected: %v", len(users), r.errs.samples())
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	wstest.Eventually(t, "three dropped connections", func() bool { return r.dropped.Load() == 3 })
	for _, u := range users {
		select {
		case <-u.conn().Done():
		case <-time.After(wstest.WaitTimeout):
			t.Fatalf("client %d still running: it must not reconnect", u.index)
		}
	}
	if got := r.errs.samples(); len(got) != 3 || !strings.Contains(got[0], "dropped") || !strings.Contains(got[0], "1001") {
		t.Fatalf("errors %q, want three drops with the server's 1001", got)
	}
}

// TestScenarios runs every scenario, small, against two real instances.
func TestScenarios(t *testing.T) {
	urls := startNodes(t, 2)
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name string
		give []string
		want []string
		// wantMetrics are keys the -json result must have (with the value,
		// when not negative).
		wantMetrics map[string]float64
	}{
		{
			name: "fanout on two nodes",
			give: []string{"fanout", "-nodes", strings.Join(urls, ","), "-clients", "20", "-broadcasts", "30", "-pid", self},
			want: []string{"deliveries expected / unique 600 / 600", "lost", "0 (20 of 20 clients", "duplicates", "node 2 deliveries", "server CPU per delivery"},
			wantMetrics: map[string]float64{"deliveries": 600, "lost": 0, "clients_connected": 20, "cpu_per_delivery_us": -1, "wsload_cpu_per_delivery_us": -1,
				"latency_p50_ms": -1, "latency_p99_ms": -1, "server_cpu_ms": -1, "connect_rate": -1},
		},
		{
			name: "fanout triggered by a frame, to a room",
			give: []string{"fanout", "-url", urls[0], "-clients", "5", "-broadcasts", "10", "-trigger", "ws", "-room", "ws-default", "-interval", "1ms"},
			want: []string{"deliveries expected / unique 50 / 50", "server CPU", "not measured (give -pid)"},
		},
		{
			name: "fanout without Redis",
			give: []string{"fanout", "-url", urls[0], "-clients", "3", "-broadcasts", "5", "-local"},
			want: []string{"deliveries expected / unique 15 / 15", "local only, no Redis"},
		},
		{
			name:        "echo",
			give:        []string{"echo", "-url", urls[1], "-clients", "4", "-rounds", "25", "-size", "300", "-pid", self},
			want:        []string{"round trips expected / done", "100 / 100", "mismatched replies", "server CPU per round trip"},
			wantMetrics: map[string]float64{"round_trips": 100, "mismatched": 0, "cpu_per_rtt_us": -1, "rtt_p99_ms": -1, "wsload_cpu_per_rtt_us": -1},
		},
		{
			name:        "idle",
			give:        []string{"idle", "-nodes", strings.Join(urls, ","), "-clients", "30", "-rate", "2000", "-hold", "300ms", "-heartbeat", "100ms", "-pid", self},
			want:        []string{"30 of 30 (0 failed)", "dropped while held", "server RSS per connection (end of hold)"},
			wantMetrics: map[string]float64{"clients_connected": 30, "dropped": 0, "rss_per_conn_kib": -1, "connect_rate": -1, "cpu_per_connect_us": -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			jsonPath := filepath.Join(t.TempDir(), "result.json")
			args := append(tt.give, "-quiet", "-timeout", "30s", "-json", jsonPath)
			if err := run(context.Background(), args, &out, &errOut); err != nil {
				t.Fatalf("run: %v\n%s\n%s", err, out.String(), errOut.String())
			}
			b, err := os.ReadFile(jsonPath)
			if err != nil {
				t.Fatal(err)
			}
			var res result
			if err := json.Unmarshal(b, &res); err != nil || !res.OK || res.Scenario != tt.give[0] || res.Args[0] != tt.give[0] {
				t.Fatalf("-json result %s: %v", b, err)
			}
			for k, want := range tt.wantMetrics {
				got, ok := res.Metrics[k]
				if !ok || (want >= 0 && got != want) {
					t.Errorf("metric %s = %g (present %v), want %g", k, got, ok, want)
				}
			}
			// Compare with single spaces: tabwriter pads columns.
			flat := strings.Join(strings.Fields(out.String()), " ")
			for _, w := range tt.want {
				if !strings.Contains(flat, w) {
					t.Errorf("summary lacks %q:\n%s", w, out.String())
				}
			}
			if !strings.Contains(out.String(), "errors") {
				t.Errorf("summary has no errors row:\n%s", out.String())
			}
		})
	}
}

func TestTimeoutStopsTheRun(t *testing.T) {
	urls := startNodes(t, 1)
	var out, errOut bytes.Buffer
	start := time.Now()
	err := run(context.Background(), []string{"idle", "-url", urls[0], "-clients", "3", "-hold", "1h", "-timeout", "500ms", "-quiet"}, &out, &errOut)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("run = %v, want the deadline", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("run took %s with -timeout 500ms", d)
	}
	if !strings.Contains(out.String(), "wsload idle") {
		t.Errorf("no summary after the timeout:\n%s", out.String())
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		give []float64
		want float64
	}{
		{give: []float64{3}, want: 3},
		{give: []float64{5, 1, 3}, want: 3},
		{give: []float64{4, 1, 3, 2}, want: 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.give); got != tt.want {
			t.Errorf("median(%v) = %g, want %g", tt.give, got, tt.want)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %g, want NaN", got)
	}
}

// writeRun writes one result file as compare.sh names them.
func writeRun(t *testing.T, dir, name string, res result) {
	t.Helper()
	if err := writeResult(filepath.Join(dir, name), res); err != nil {
		t.Fatal(err)
	}
}

func TestCompare(t *testing.T) {
	dir := t.TempDir()
	fan := func(cpu, p50 float64) result {
		return result{Scenario: "fanout", Clients: 1000, OK: true, Metrics: map[string]float64{
			"cpu_per_delivery_us": cpu, "cpu_per_delivery_sched_us": cpu / 2, "latency_p50_ms": p50, "latency_p99_ms": 2 * p50,
			"server_cpu_ms": 1000, "wsload_cpu_pct": 40,
		}}
	}
	writeRun(t, dir, "fanout-paced.go.1.json", fan(4, 2))
	writeRun(t, dir, "fanout-paced.go.2.json", fan(6, 4))
	writeRun(t, dir, "fanout-paced.go.3.json", fan(5, 3))
	writeRun(t, dir, "fanout-paced.bun.1.json", fan(10, 3))
	writeRun(t, dir, "fanout-paced.bun.2.json", fan(8, 3))
	failed := fan(1, 1) // would pull the median down if it counted
	failed.OK, failed.Error = false, "12 deliveries lost"
	failed.Metrics["lost"] = 12
	writeRun(t, dir, "fanout-paced.bun.3.json", failed)
	idle := func(rss, rate float64) result {
		return result{Scenario: "idle", Clients: 5000, OK: true, Metrics: map[string]float64{
			"rss_per_conn_kib": rss, "connect_rate": rate, "cpu_per_connect_us": 100, "server_cpu_ms": 20, "wsload_cpu_pct": 95,
		}}
	}
	writeRun(t, dir, "idle.go.1.json", idle(6, 12000))
	writeRun(t, dir, "idle.bun.1.json", idle(8, 10000))
	for _, junk := range []string{"machine.txt", "idle.go.1.txt", "summary.md"} {
		if err := os.WriteFile(filepath.Join(dir, junk), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	r, err := loadRuns(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(r) != 2 || len(r["fanout-paced"][sideBun]) != 3 || r["fanout-paced"][sideBun][2].round != 3 {
		t.Fatalf("loadRuns = %+v", r)
	}
	lines := r.compute("_us")
	find := func(measure string) compareLine {
		t.Helper()
		for _, l := range lines {
			if l.row.measure == measure {
				return l
			}
		}
		t.Fatalf("no line %q in %+v", measure, lines)
		return compareLine{}
	}
	tests := []struct {
		measure   string
		wantGo    float64
		wantBun   float64
		wantRatio float64
		wantMet   bool
	}{
		{measure: "paced fan-out: CPU per delivery", wantGo: 5, wantBun: 9, wantRatio: 5.0 / 9, wantMet: true},
		{measure: "paced fan-out: latency p50", wantGo: 3, wantBun: 3, wantRatio: 1, wantMet: true},
		{measure: "paced fan-out: latency p99", wantGo: 6, wantBun: 6, wantRatio: 1, wantMet: true},
		{measure: "idle: RSS per connection", wantGo: 6, wantBun: 8, wantRatio: 0.75, wantMet: true},
		{measure: "connect + authenticate rate", wantGo: 12000, wantBun: 10000, wantRatio: 1.2, wantMet: true},
	}
	for _, tt := range tests {
		l := find(tt.measure)
		met, ok := l.met()
		if l.goMed != tt.wantGo || l.bunMd != tt.wantBun || math.Abs(l.ratio-tt.wantRatio) > 1e-9 || !ok || met != tt.wantMet {
			t.Errorf("%s: go %g bun %g ratio %g met %v/%v; want %g %g %g %v", tt.measure, l.goMed, l.bunMd, l.ratio, met, ok,
				tt.wantGo, tt.wantBun, tt.wantRatio, tt.wantMet)
		}
	}
	if l := find("server CPU per connect + authenticate"); l.row.goal != 0 {
		t.Errorf("context row has a goal: %+v", l.row)
	}
	if l := find("paced fan-out: CPU per delivery"); len(r.compute("_sched_us")) == 0 || l.goMed != 5 {
		t.Errorf("schedstat lines missing")
	}

	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"compare", dir}, &out, &errOut); err != nil {
		t.Fatalf("compare: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{
		"| fanout-paced, 1000 clients | paced fan-out: CPU per delivery | 5.00 µs (4.00–6.00, 3 runs) | 9.00 µs (8.00–10.0, 2 runs) | 0.56× | ≤ 0.8× | yes |",
		"| idle, 5000 clients | connect + authenticate rate | 12000 /s (1 run) | 10000 /s (1 run) | 1.20× | ≥ 1.2× | yes |",
		"fanout-paced bun round 3 failed: 12 deliveries lost",
		"fanout-paced bun: lost 12",
		"idle go: only 20 ms of server CPU",
		"idle bun: wsload used 95 %",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("compare output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "echo") {
		t.Errorf("compare shows a case that was not run:\n%s", out.String())
	}
	if err := run(context.Background(), []string{"compare", t.TempDir()}, &out, &errOut); err == nil {
		t.Error("compare of an empty directory succeeded")
	}
	if err := run(context.Background(), []string{"compare", "-cpu", "wall", dir}, &out, &errOut); err == nil {
		t.Error("compare -cpu wall succeeded")
	}
}
