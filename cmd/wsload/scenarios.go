package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ignis-go/wscomponent/client"
	"github.com/ignis-go/wscomponent/internal/benchserver"
)

// connectPhase opens the clients through d and reports how it went.
func (r *runner) connectPhase(ctx context.Context, rep *report, d *dialer) ([]*user, *meter) {
	r.phase.Store("connect")
	m := &meter{}
	m.start(r.cfg.pids)
	t0 := time.Now()
	clients := d.connectAll(ctx, r.cfg.clients, r.cfg.concurrency, r.cfg.rate, &r.conn, &r.errs)
	elapsed := time.Since(t0)
	m.stop()
	n := r.conn.connected.Load()
	rep.add("clients connected+authenticated", "%d of %d (%d failed)", n, r.cfg.clients, r.conn.failed.Load())
	rate := float64(n) / elapsed.Seconds()
	rep.add("connect+auth time", "%s (%.0f /s, -concurrency %d, -rate %g)", ms(elapsed),
		rate, r.cfg.concurrency, r.cfg.rate)
	rep.metric("clients_connected", float64(n))
	rep.metric("connect_failed", float64(r.conn.failed.Load()))
	rep.metric("connect_rate", rate)
	rep.addLatency("connect+auth latency", "connect", &r.conn.latency)
	return clients, m
}

// newDialer returns a dialer whose lost connections count as dropped;
// the scenario sets what else it needs before connecting.
func (r *runner) newDialer() *dialer {
	return &dialer{ws: r.cfg.policy.wsDialer(), nodes: r.cfg.nodes, auth: r.cfg.auth, onLost: r.lost}
}

// lost counts a connection that ended before the scenario closed it.
func (r *runner) lost(u *user, err error) {
	r.dropped.Add(1)
	r.errs.add(fmt.Errorf("client %d dropped: %w", u.index, err))
}

// idle connects the clients, holds them and measures the server's memory.
func (r *runner) idle(ctx context.Context) (*report, error) {
	rep := &report{title: "wsload idle"}
	rep.header(r.cfg)
	stopProgress := r.startProgress()
	defer stopProgress()

	var rss0 []procSample
	if len(r.cfg.pids.pids) > 0 {
		var err error
		if rss0, err = r.cfg.pids.sample(); err != nil {
			return rep, err
		}
	}
	var unexpected atomic.Int64
	d := r.newDialer()
	d.heartbeat = r.cfg.heartbeat
	d.onFrame = func(*user, client.Frame) {
		unexpected.Add(1)
		r.received.Add(1)
	}
	all, connMeter := r.connectPhase(ctx, rep, d)
	clients := live(all)
	defer closeAll(clients)
	rep.addCPU(connMeter, int64(len(clients)), "connect+auth", "cpu_per_connect")

	r.phase.Store("hold")
	rssConnected, _ := r.cfg.pids.sample()
	hold := time.NewTimer(r.cfg.hold)
	defer hold.Stop()
	holdStart := time.Now()
	select {
	case <-ctx.Done():
	case <-hold.C:
	}
	rep.add("held", "%s (heartbeat every %s)", ms(time.Since(holdStart)), r.cfg.heartbeat)
	rssHeld, _ := r.cfg.pids.sample()
	rep.add("dropped while held", "%d", r.dropped.Load())
	rep.metric("dropped", float64(r.dropped.Load()))
	rep.add("frames received while held", "%d application frames (pings are answered, not counted)", unexpected.Load())
	if len(rss0) > 0 && len(rssHeld) == len(rss0) {
		var before, connected, held int64
		for i := range rss0 {
			before += rss0[i].rss
			held += rssHeld[i].rss
			if len(rssConnected) == len(rss0) {
				connected += rssConnected[i].rss
			}
		}
		rep.add("server RSS before / connected / end of hold", "%s / %s / %s", mib(before), mib(connected), mib(held))
		if n := int64(len(clients)); n > 0 {
			perHeld := float64(held-before) / 1024 / float64(n)
			perConnected := float64(connected-before) / 1024 / float64(n)
			rep.add("server RSS per connection (end of hold)", "%.2f KiB", perHeld)
			rep.add("server RSS per connection (just connected)", "%.2f KiB", perConnected)
			rep.metric("rss_per_conn_kib", perHeld)
			rep.metric("rss_per_conn_connected_kib", perConnected)
		}
	} else if len(r.cfg.pids.pids) == 0 {
		rep.add("server RSS", "not measured (give -pid)")
	}
	rep.addErrors(&r.errs)
	return rep, ctx.Err()
}

// fanoutClient is one client's view of a fan-out; only its reader touches it.
type fanoutClient struct {
	seen       []uint64 // bit per seq
	unique     int
	duplicates int
	outOfOrder int
	last       int
	foreign    int // bench frames of other runs, or seq out of range
	other      int // frames that are not bench frames
}

// fanout measures server-side fan-out: every client must get every message.
func (r *runner) fanout(ctx context.Context) (*report, error) {
	cfg := r.cfg
	rep := &report{title: "wsload fanout"}
	rep.header(cfg)
	stopProgress := r.startProgress()
	defer stopProgress()

	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	m := cfg.broadcasts
	// One state per client, made before connecting: frames may come as
	// soon as a client is connected. Only that client's reader touches it.
	states := make([]*fanoutClient, cfg.clients)
	for i := range states {
		states[i] = &fanoutClient{seen: make([]uint64, (m+63)/64), last: -1}
	}
	nodeLat := make([]histogram, len(cfg.nodes))
	nodeGot := make([]atomic.Int64, len(cfg.nodes))
	var lat histogram
	var remaining atomic.Int64
	allDone := make(chan struct{})
	var firstT, lastRecv atomic.Int64
	firstT.Store(1<<63 - 1)
	d := r.newDialer()
	d.onFrame = func(u *user, f client.Frame) {
		now := time.Now().UnixNano()
		st := states[u.index]
		if f.Event != benchserver.EventBench {
			st.other++
			return
		}
		seq, t, same, ok := benchserver.ParseBenchData(f.Data, run)
		if !ok {
			st.other++
			return
		}
		if !same || seq < 0 || seq >= m {
			st.foreign++
			return
		}
		r.received.Add(1)
		d := time.Duration(now - t)
		lat.record(d)
		nodeLat[u.node].record(d)
		nodeGot[u.node].Add(1)
		storeMin(&firstT, t)
		storeMax(&lastRecv, now)
		w, bit := seq/64, uint64(1)<<(seq%64)
		if st.seen[w]&bit != 0 {
			st.duplicates++
			return
		}
		st.seen[w] |= bit
		st.unique++
		if seq < st.last {
			st.outOfOrder++
		}
		st.last = seq
		if st.unique == m && remaining.Add(-1) == 0 {
			close(allDone)
		}
	}
	all, _ := r.connectPhase(ctx, rep, d)
	clients := live(all)
	if len(clients) == 0 {
		rep.addErrors(&r.errs)
		return rep, fmt.Errorf("no client connected")
	}
	// Set before the trigger; a client completes only after it.
	remaining.Store(int64(len(clients)))
	closed := false
	closeClients := func() {
		if !closed {
			closed = true
			closeAll(clients)
		}
	}
	defer closeClients()

	r.phase.Store("fanout")
	meter := &meter{}
	meter.start(cfg.pids)
	var res benchserver.FanoutResult
	var triggerErr error
	req := benchserver.FanoutRequest{N: m, Size: cfg.size, Room: cfg.room, Run: run, Interval: benchserver.Duration(cfg.interval), Local: cfg.local}
	if cfg.trigger == "http" {
		res, triggerErr = r.triggerHTTP(ctx, req)
	} else {
		triggerErr = clients[0].conn().Send(benchserver.EventFanout, req)
	}
	if triggerErr == nil {
		r.waitDrain(ctx, allDone, cfg.drain)
	}
	meter.stop()
	// Close (which waits for every reader) before reading the states.
	closeClients()

	expected := int64(len(clients)) * int64(m)
	var unique, dups, ooo, foreign, other int64
	complete := 0
	for _, st := range states {
		unique += int64(st.unique)
		dups += int64(st.duplicates)
		ooo += int64(st.outOfOrder)
		foreign += int64(st.foreign)
		other += int64(st.other)
		if st.unique == m {
			complete++
		}
	}
	how := "PublishBroadcast/PublishToRoom (local delivery + Redis publish)"
	if cfg.local {
		how = "Broadcast/SendToRoom (local only, no Redis)"
	}
	rep.add("messages × clients", "%d × %d, %d bytes of data, room %q, trigger %s, interval %s", m, len(clients), cfg.size, cfg.room, cfg.trigger, cfg.interval)
	rep.add("server sends with", "%s", how)
	if cfg.trigger == "http" && triggerErr == nil {
		rep.add("server send time", "%s for %d messages (%d Redis publish errors)",
			ms(time.Duration(res.LastNanos-res.FirstNanos)), res.Sent, res.PublishErrors)
	}
	rep.add("deliveries expected / unique", "%d / %d", expected, unique)
	rep.add("lost", "%d (%d of %d clients got everything)", expected-unique, complete, len(clients))
	rep.add("duplicates", "%d", dups)
	rep.add("out of order", "%d", ooo)
	if foreign+other > 0 {
		rep.add("other frames", "%d from other runs, %d not bench frames", foreign, other)
	}
	if span := time.Duration(lastRecv.Load() - firstT.Load()); unique > 0 && span > 0 {
		rep.add("delivery throughput", "%.0f deliveries/s (first send → last receive %s)", float64(unique)/span.Seconds(), ms(span))
	}
	rep.metric("deliveries_expected", float64(expected))
	rep.metric("deliveries", float64(unique))
	rep.metric("lost", float64(expected-unique))
	rep.metric("duplicates", float64(dups))
	rep.metric("out_of_order", float64(ooo))
	rep.addLatency("delivery latency", "latency", &lat)
	if len(cfg.nodes) > 1 {
		for i := range cfg.nodes {
			rep.add(fmt.Sprintf("node %d deliveries", i+1), "%d", nodeGot[i].Load())
			rep.addLatency(fmt.Sprintf("node %d latency", i+1), "", &nodeLat[i])
		}
	}
	rep.addCPU(meter, unique, "delivery", "cpu_per_delivery")
	rep.addRSS(meter)
	rep.add("dropped connections", "%d", r.dropped.Load())
	rep.metric("dropped", float64(r.dropped.Load()))
	if triggerErr != nil {
		r.errs.add(fmt.Errorf("trigger: %w", triggerErr))
	}
	rep.addErrors(&r.errs)
	switch {
	case triggerErr != nil:
		return rep, triggerErr
	case ctx.Err() != nil:
		return rep, fmt.Errorf("stopped by -timeout or a signal: %w", ctx.Err())
	case unique < expected:
		return rep, fmt.Errorf("%d deliveries lost", expected-unique)
	}
	return rep, nil
}

// waitDrain waits until allDone is closed, nothing new arrived for drain,
// or ctx ends.
func (r *runner) waitDrain(ctx context.Context, allDone <-chan struct{}, drain time.Duration) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := r.received.Load()
	lastChange := time.Now()
	for {
		select {
		case <-allDone:
			return
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if n := r.received.Load(); n != last {
				last, lastChange = n, now
			} else if now.Sub(lastChange) > drain {
				return
			}
		}
	}
}

// triggerHTTP asks the server for a fan-out through POST /broadcast.
func (r *runner) triggerHTTP(ctx context.Context, req benchserver.FanoutRequest) (benchserver.FanoutResult, error) {
	var res benchserver.FanoutResult
	q := url.Values{}
	q.Set("n", strconv.Itoa(req.N))
	q.Set("size", strconv.Itoa(req.Size))
	q.Set("run", req.Run)
	if req.Room != "" {
		q.Set("room", req.Room)
	}
	if req.Interval > 0 {
		q.Set("interval", time.Duration(req.Interval).String())
	}
	if req.Local {
		q.Set("local", "1")
	}
	u := r.cfg.control.JoinPath("/broadcast")
	u.RawQuery = q.Encode()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return res, err
	}
	hc := r.cfg.policy.httpClient()
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(hreq)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return res, err
	}
	if resp.StatusCode != http.StatusOK {
		return res, fmt.Errorf("POST /broadcast: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return res, fmt.Errorf("POST /broadcast answer %q: %w", body, err)
	}
	return res, nil
}

// echoClient is one client's sequence of round trips. The first request
// is sent by echo; after that only the client's reader touches it (the
// frame callback sends the next request when a reply arrives).
type echoClient struct {
	k     int             // round in flight
	data  json.RawMessage // its data, which the reply must carry unchanged
	t0    time.Time       // when it was sent
	ended atomic.Bool     // all rounds done, or given up
}

// echo measures request/reply round trips through the MessageHandler:
// each client sends {"event":"echo","data":D} and sends the next once
// {"event":"echo","data":D} came back. Replies are matched by content, not
// by a request id, so that servers without ids (Ignis) can be measured.
func (r *runner) echo(ctx context.Context) (*report, error) {
	cfg := r.cfg
	rep := &report{title: "wsload echo"}
	rep.header(cfg)
	stopProgress := r.startProgress()
	defer stopProgress()

	states := make([]echoClient, cfg.clients)
	var rtt histogram
	var done, mismatched, other, remaining atomic.Int64
	allDone := make(chan struct{})
	end := func(st *echoClient) {
		if st.ended.CompareAndSwap(false, true) && remaining.Add(-1) == 0 {
			close(allDone)
		}
	}
	send := func(u *user, st *echoClient) {
		st.data = benchserver.Payload("", st.k, 0, cfg.size)
		st.t0 = time.Now()
		if err := u.conn().Send(benchserver.EventEcho, st.data); err != nil {
			r.errs.add(fmt.Errorf("client %d: send echo %d: %w", u.index, st.k, err))
			end(st)
		}
	}
	d := r.newDialer()
	d.onFrame = func(u *user, f client.Frame) {
		st := &states[u.index]
		if f.Event != benchserver.EventEcho || st.data == nil || st.ended.Load() {
			other.Add(1)
			return
		}
		if !bytes.Equal(f.Data, st.data) {
			mismatched.Add(1)
			r.errs.add(fmt.Errorf("client %d: echo reply %q does not match request %d", u.index, f.Data, st.k))
			end(st)
			return
		}
		rtt.record(time.Since(st.t0))
		done.Add(1)
		r.received.Add(1)
		if st.k++; st.k == cfg.rounds {
			end(st)
			return
		}
		send(u, st)
	}
	d.onLost = func(u *user, err error) {
		r.lost(u, err)
		end(&states[u.index])
	}
	all, _ := r.connectPhase(ctx, rep, d)
	clients := live(all)
	defer closeAll(clients)
	if len(clients) == 0 {
		rep.addErrors(&r.errs)
		return rep, fmt.Errorf("no client connected")
	}
	r.phase.Store("echo")
	remaining.Store(int64(len(clients)))
	m := &meter{}
	m.start(cfg.pids)
	for _, u := range clients {
		send(u, &states[u.index])
	}
	r.waitDrain(ctx, allDone, echoReadTimeout)
	m.stop()

	expected := int64(len(clients)) * int64(cfg.rounds)
	rep.add("round trips × clients", "%d × %d, %d bytes of data", cfg.rounds, len(clients), cfg.size)
	rep.add("round trips expected / done", "%d / %d", expected, done.Load())
	rep.add("mismatched replies", "%d", mismatched.Load())
	if other.Load() > 0 {
		rep.add("other frames", "%d", other.Load())
	}
	rep.add("round-trip throughput", "%.0f round trips/s over %s", float64(done.Load())/m.elapsed.Seconds(), ms(m.elapsed))
	rep.metric("round_trips_expected", float64(expected))
	rep.metric("round_trips", float64(done.Load()))
	rep.metric("mismatched", float64(mismatched.Load()))
	rep.addLatency("round-trip time", "rtt", &rtt)
	rep.addCPU(m, done.Load(), "round trip", "cpu_per_rtt")
	rep.addRSS(m)
	rep.addErrors(&r.errs)
	switch {
	case ctx.Err() != nil:
		return rep, fmt.Errorf("stopped by -timeout or a signal: %w", ctx.Err())
	case done.Load() < expected:
		return rep, fmt.Errorf("%d round trips missing", expected-done.Load())
	}
	return rep, nil
}

// echoReadTimeout is how long echo waits without any reply before it gives
// up on the round trips still missing.
const echoReadTimeout = 10 * time.Second

func storeMin(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v >= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}
