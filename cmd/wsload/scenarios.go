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
	"sync"
	"sync/atomic"
	"time"

	"github.com/ignis-go/wscomponent/internal/benchserver"
)

// connectPhase opens the clients and reports how it went.
func (r *runner) connectPhase(ctx context.Context, rep *report, d *dialer) ([]*client, *meter) {
	r.phase.Store("connect")
	m := &meter{}
	m.start(r.cfg.pids)
	t0 := time.Now()
	clients := r.connectAllWith(ctx, d)
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

func (r *runner) connectAllWith(ctx context.Context, d *dialer) []*client {
	return d.connectAll(ctx, r.cfg.clients, r.cfg.concurrency, r.cfg.rate, &r.conn, &r.errs)
}

func (r *runner) newDialer() *dialer {
	return &dialer{ws: r.cfg.policy.wsDialer(), nodes: r.cfg.nodes, auth: r.cfg.auth}
}

// readers runs one reader per client until the connections close. onFrame
// is called with every data frame (the buffer is reused); a read error
// before stop counts as a dropped connection.
type readers struct {
	wg      sync.WaitGroup
	closing atomic.Bool
	dropped atomic.Int64
}

func (rs *readers) start(clients []*client, errs *errorLog, onFrame func(c *client, b []byte)) {
	for _, c := range clients {
		rs.wg.Go(func() {
			var buf bytes.Buffer
			for {
				_, rd, err := c.conn.NextReader()
				if err == nil {
					buf.Reset()
					_, err = buf.ReadFrom(rd)
				}
				if err != nil {
					if !rs.closing.Load() {
						rs.dropped.Add(1)
						errs.add(fmt.Errorf("client %d dropped: %w", c.index, err))
					}
					return
				}
				onFrame(c, buf.Bytes())
			}
		})
	}
}

// stop closes the clients and waits for the readers.
func (rs *readers) stop(clients []*client) {
	rs.closing.Store(true)
	closeAll(clients)
	rs.wg.Wait()
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
	all, connMeter := r.connectPhase(ctx, rep, r.newDialer())
	clients := live(all)
	rep.addCPU(connMeter, int64(len(clients)), "connect+auth", "cpu_per_connect")

	var rs readers
	var unexpected atomic.Int64
	rs.start(clients, &r.errs, func(*client, []byte) {
		unexpected.Add(1)
		r.received.Add(1)
	})
	defer rs.stop(clients)

	r.phase.Store("hold")
	rssConnected, _ := r.cfg.pids.sample()
	hold := time.NewTimer(r.cfg.hold)
	defer hold.Stop()
	var hbC <-chan time.Time
	if r.cfg.heartbeat > 0 {
		hb := time.NewTicker(r.cfg.heartbeat)
		defer hb.Stop()
		hbC = hb.C
	}
	heartbeat := []byte(`{"event":"heartbeat"}`)
	holdStart := time.Now()
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-hold.C:
			break wait
		case <-hbC:
			for _, c := range clients {
				if err := c.write(heartbeat); err != nil {
					r.errs.add(fmt.Errorf("client %d heartbeat: %w", c.index, err))
				}
			}
		}
	}
	rep.add("held", "%s (heartbeat every %s)", ms(time.Since(holdStart)), r.cfg.heartbeat)
	rssHeld, _ := r.cfg.pids.sample()
	rep.add("dropped while held", "%d", rs.dropped.Load())
	rep.metric("dropped", float64(rs.dropped.Load()))
	rep.add("frames received while held", "%d (pings are answered, not counted)", unexpected.Load())
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

	all, _ := r.connectPhase(ctx, rep, r.newDialer())
	clients := live(all)
	if len(clients) == 0 {
		rep.addErrors(&r.errs)
		return rep, fmt.Errorf("no client connected")
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	m := cfg.broadcasts
	states := make([]*fanoutClient, len(all))
	nodeLat := make([]histogram, len(cfg.nodes))
	nodeGot := make([]atomic.Int64, len(cfg.nodes))
	var lat histogram
	var remaining atomic.Int64
	remaining.Store(int64(len(clients)))
	allDone := make(chan struct{})
	var firstT, lastRecv atomic.Int64
	firstT.Store(1<<63 - 1)
	for _, c := range clients {
		states[c.index] = &fanoutClient{seen: make([]uint64, (m+63)/64), last: -1}
	}
	var rs readers
	rs.start(clients, &r.errs, func(c *client, b []byte) {
		now := time.Now().UnixNano()
		st := states[c.index]
		seq, t, same, ok := benchserver.ParseBench(b, run)
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
		nodeLat[c.node].record(d)
		nodeGot[c.node].Add(1)
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
	})
	stopped := false
	stopReaders := func() {
		if !stopped {
			stopped = true
			rs.stop(clients)
		}
	}
	defer stopReaders()

	r.phase.Store("fanout")
	meter := &meter{}
	meter.start(cfg.pids)
	var res benchserver.FanoutResult
	var triggerErr error
	req := benchserver.FanoutRequest{N: m, Size: cfg.size, Room: cfg.room, Run: run, Interval: benchserver.Duration(cfg.interval), Local: cfg.local}
	if cfg.trigger == "http" {
		res, triggerErr = r.triggerHTTP(ctx, req)
	} else {
		data, _ := json.Marshal(req)
		triggerErr = clients[0].write([]byte(`{"event":"` + benchserver.EventFanout + `","data":` + string(data) + `}`))
	}
	if triggerErr == nil {
		r.waitDrain(ctx, allDone)
	}
	meter.stop()
	stopReaders()

	expected := int64(len(clients)) * int64(m)
	var unique, dups, ooo, foreign, other int64
	complete := 0
	for _, st := range states {
		if st == nil {
			continue
		}
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
	rep.add("dropped connections", "%d", rs.dropped.Load())
	rep.metric("dropped", float64(rs.dropped.Load()))
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

// waitDrain waits until every client has everything, nothing new arrived
// for -drain, or ctx ends.
func (r *runner) waitDrain(ctx context.Context, allDone <-chan struct{}) {
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
			} else if now.Sub(lastChange) > r.cfg.drain {
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

// echo measures request/reply round trips through the MessageHandler.
func (r *runner) echo(ctx context.Context) (*report, error) {
	cfg := r.cfg
	rep := &report{title: "wsload echo"}
	rep.header(cfg)
	stopProgress := r.startProgress()
	defer stopProgress()

	all, _ := r.connectPhase(ctx, rep, r.newDialer())
	clients := live(all)
	defer closeAll(clients)
	if len(clients) == 0 {
		rep.addErrors(&r.errs)
		return rep, fmt.Errorf("no client connected")
	}
	r.phase.Store("echo")
	var rtt histogram
	var done, mismatched, other atomic.Int64
	m := &meter{}
	m.start(cfg.pids)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			if err := r.echoClient(ctx, c, &rtt, &done, &mismatched, &other); err != nil && ctx.Err() == nil {
				r.errs.add(fmt.Errorf("client %d: %w", c.index, err))
			}
		})
	}
	wg.Wait()
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

// echoReadTimeout bounds the wait for one echo reply.
const echoReadTimeout = 10 * time.Second

// echoClient runs the sequential round trips of one client.
func (r *runner) echoClient(ctx context.Context, c *client, rtt *histogram, done, mismatched, other *atomic.Int64) error {
	stopOnCancel := context.AfterFunc(ctx, func() { _ = c.conn.SetReadDeadline(time.Now()) })
	defer stopOnCancel()
	var buf bytes.Buffer
	for k := range r.cfg.rounds {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		data := benchserver.Payload("", k, 0, r.cfg.size)
		frame := make([]byte, 0, len(data)+32)
		frame = append(frame, `{"event":"echo","data":`...)
		frame = append(frame, data...)
		frame = append(frame, '}')
		t0 := time.Now()
		if err := c.write(frame); err != nil {
			return err
		}
		for {
			_ = c.conn.SetReadDeadline(time.Now().Add(echoReadTimeout))
			if ctx.Err() != nil {
				return ctx.Err()
			}
			_, rd, err := c.conn.NextReader()
			if err == nil {
				buf.Reset()
				_, err = buf.ReadFrom(rd)
			}
			if err != nil {
				return err
			}
			b := buf.Bytes()
			if bytes.Equal(b, frame) {
				break
			}
			var f inFrame
			if json.Unmarshal(b, &f) != nil || f.Event != benchserver.EventEcho {
				other.Add(1)
				continue
			}
			mismatched.Add(1)
			return fmt.Errorf("echo reply %q does not match request %d", b, k)
		}
		rtt.record(time.Since(t0))
		done.Add(1)
		r.received.Add(1)
	}
	return nil
}

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
