//go:build linux

package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"

	"github.com/ignis-go/wscomponent/metrics"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/wstest"
)

// The benchmarks run real sockets on loopback against a Helper behind an
// httptest server, with a real redis-server. Clients are rawClients: a
// minimal WebSocket client that reads frames into a reused buffer, so that
// allocations counted per delivery are the server's (plus the benchmark's
// constant per-iteration overhead, spread over every recipient), not a
// client library's. Clients and server share the process and its cores:
// ns/delivery is wall time for the whole round, client reads included. The
// server's own CPU per delivery is measured from outside by cmd/wsload.
//
//	go test -run '^$' -bench . -benchtime 200x ./server/
//	go test -run '^$' -bench IdleConnMemory -benchtime 1x ./server/

// benchPayload is ~100 bytes of data, the size the reference numbers use.
var benchPayload = json.RawMessage(`{"seq":12345,"t":1700000000000000000,"pad":"` +
	strings.Repeat("x", 100-len(`{"seq":12345,"t":1700000000000000000,"pad":""}`)) + `"}`)

// benchConfig turns protocol pings off so that a rawClient (which does not
// answer pings) only ever reads what the benchmark sent, and the inbound
// rate limit off so that a client may send as fast as the loop goes.
func benchConfig() server.Config {
	return server.Config{SendPings: server.Bool(false), MessageRate: server.Off}
}

// benchWait bounds every wait for deliveries in a benchmark iteration.
const benchWait = 30 * time.Second

func BenchmarkFanout1k(b *testing.B)  { benchFanout(b, 1000, nil) }
func BenchmarkFanout10k(b *testing.B) { benchFanout(b, 10000, nil) }

// BenchmarkFanout1kMetrics is BenchmarkFanout1k with the Prometheus
// observer (package metrics) on: compare their cpu-ns/delivery.
func BenchmarkFanout1kMetrics(b *testing.B) { benchFanout(b, 1000, metrics.New()) }

// cpuTime is the CPU time this process has used. The fan-out clients live
// in a child process, so it is the server's.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ctxSwitches counts this process's context switches (voluntary and not).
func ctxSwitches() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Nvcsw + ru.Nivcsw
}

// benchFanout broadcasts one ~100-byte message per iteration to n
// authenticated clients and waits until every client has read it. The
// clients live in a child process (see fanoutClientProcess): the
// allocations counted here are then the server's alone, and each process
// needs one descriptor per connection, so 10k connections fit the usual
// 20k limit without raising the hard limit.
func benchFanout(b *testing.B, n int, obs server.Observer) {
	raiseFileLimit(b, n+1024)
	ts := startServer(b, nil, server.Options{Config: benchConfig(), Observer: obs})
	cp := startClientProcess(b, ts, n)

	var iters int64
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0, cs0 := cpuTime(), ctxSwitches()
	b.ReportAllocs()
	for b.Loop() {
		iters++
		if err := ts.h.Broadcast("bench", benchPayload); err != nil {
			b.Fatal(err)
		}
		if err := cp.waitRound(); err != nil {
			b.Fatalf("iteration %d: %v", iters, err)
		}
	}
	cpu, cs := cpuTime()-cpu0, ctxSwitches()-cs0
	runtime.ReadMemStats(&ms1)
	deliveries := float64(iters) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(float64(cpu.Nanoseconds())/deliveries, "cpu-ns/delivery")
	b.ReportMetric(float64(cs)/deliveries, "ctxsw/delivery")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/deliveries, "allocs/delivery")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/deliveries, "B/delivery")
	if s := ts.h.Stats(); s.MessagesDropped > 0 {
		b.Fatalf("%d messages dropped", s.MessagesDropped)
	}
}

// clientProcess is the child that holds a fan-out benchmark's clients. It
// writes one byte on the rounds pipe each time every client has read one
// more message, and exits when its stdin closes.
type clientProcess struct {
	cmd     *exec.Cmd
	rounds  *os.File
	stdin   *os.File
	buf     [1]byte
	stopped bool
}

func startClientProcess(b *testing.B, ts *testServer, n int) *clientProcess {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Skipf("no test executable to start clients from: %v", err)
	}
	roundsR, roundsW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse(ts.srv.URL)
	cmd := exec.Command(exe, "-test.run=^$", "-test.count=1", "-test.timeout=30m")
	cmd.Env = append(os.Environ(), envClientAddr+"="+u.Host, envClientCount+"="+strconv.Itoa(n))
	cmd.Stdin = stdinR
	cmd.Stderr = os.Stderr               // *os.File: no copying goroutine; stdout ("PASS") is dropped
	cmd.ExtraFiles = []*os.File{roundsW} // fd 3 in the child
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	_ = roundsW.Close()
	_ = stdinR.Close()
	cp := &clientProcess{cmd: cmd, rounds: roundsR, stdin: stdinW}
	b.Cleanup(func() { cp.stop(b) })
	// Round 0 is "every client is connected and authenticated".
	if err := cp.waitRoundFor(2 * time.Minute); err != nil {
		b.Fatalf("client process did not connect %d clients: %v", n, err)
	}
	return cp
}

// stop closes the child's stdin, which makes it close its clients and
// exit, and waits for it. Safe to call again.
func (cp *clientProcess) stop(b *testing.B) {
	if cp.stopped {
		return
	}
	cp.stopped = true
	_ = cp.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- cp.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			b.Errorf("client process: %v", err)
		}
	case <-time.After(benchWait):
		_ = cp.cmd.Process.Kill()
		<-done
		b.Errorf("client process did not exit within %s", benchWait)
	}
	_ = cp.rounds.Close()
}

func (cp *clientProcess) waitRound() error { return cp.waitRoundFor(benchWait) }

func (cp *clientProcess) waitRoundFor(d time.Duration) error {
	_ = cp.rounds.SetReadDeadline(time.Now().Add(d))
	_, err := io.ReadFull(cp.rounds, cp.buf[:])
	return err
}

// fanoutClientProcess is the client process of the fan-out benchmarks:
// TestMain runs it instead of the tests when a benchmark starts the test
// binary with envClientAddr set.
func fanoutClientProcess() error {
	addr := os.Getenv(envClientAddr)
	n, err := strconv.Atoi(os.Getenv(envClientCount))
	if err != nil || n < 1 {
		return fmt.Errorf("%s=%q", envClientCount, os.Getenv(envClientCount))
	}
	rounds := os.NewFile(3, "rounds")
	defer rounds.Close()
	clients, err := dialRawClients(addr, n)
	if err != nil {
		return err
	}
	var got atomic.Int64
	tick := make(chan struct{}, 1024)
	var wg sync.WaitGroup
	defer func() {
		closeRawClients(clients) // ends the readers
		wg.Wait()
	}()
	for _, c := range clients {
		wg.Go(func() {
			for {
				op, _, err := c.readMessage()
				if err != nil {
					return
				}
				if op == opText && got.Add(1)%int64(n) == 0 {
					tick <- struct{}{}
				}
			}
		})
	}
	if _, err := rounds.Write([]byte{0}); err != nil {
		return err
	}
	stdinClosed := make(chan struct{})
	wg.Go(func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	})
	for {
		select {
		case <-tick:
			if _, err := rounds.Write([]byte{1}); err != nil {
				return err
			}
		case <-stdinClosed:
			return nil
		}
	}
}

// BenchmarkSendThroughRedis sends from instance A to a client on instance B
// of one Redis, one message at a time: A publishes a room message for the
// client's id, B's receive loop delivers it.
func BenchmarkSendThroughRedis(b *testing.B) {
	rs := redistest.Start(b)
	a := startServer(b, rs, server.Options{Config: benchConfig()})
	bs := startServer(b, rs, server.Options{Config: benchConfig()})
	c := mustDialRawClients(b, bs, 1)[0]
	b.Cleanup(func() { closeRawClients([]*rawClient{c}) })
	ctx := context.Background()

	b.ReportAllocs()
	for b.Loop() {
		if err := a.h.Send(ctx, c.id, "bench", benchPayload); err != nil {
			b.Fatal(err)
		}
		if err := c.expectText(benchWait); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEcho is one client's request → MessageHandler → SendToClient →
// reply round trip.
func BenchmarkEcho(b *testing.B) {
	var helper atomic.Pointer[server.Helper]
	opts := server.Options{
		Config: benchConfig(),
		Message: func(_ context.Context, ev server.MessageEvent) error {
			return helper.Load().SendToClient(ev.ClientID, "echo", ev.Message.Data)
		},
	}
	ts := startServer(b, nil, opts)
	helper.Store(ts.h)
	c := mustDialRawClients(b, ts, 1)[0]
	b.Cleanup(func() { closeRawClients([]*rawClient{c}) })
	request := []byte(`{"event":"echo","data":` + string(benchPayload) + `}`)

	b.ReportAllocs()
	for b.Loop() {
		if err := c.writeText(request); err != nil {
			b.Fatal(err)
		}
		if err := c.expectText(benchWait); err != nil {
			b.Fatal(err)
		}
	}
}

// idleConns is how many connections BenchmarkIdleConnMemory holds.
const idleConns = 2000

// BenchmarkIdleConnMemory connects idleConns authenticated clients per
// iteration and reports what the process holds for each once they are idle:
// heap in use (which includes the benchmark's own client-side net.Conn,
// a few hundred bytes) plus goroutine stacks (all the server's: idle
// rawClients have no goroutine). Run it with -benchtime 1x; every iteration
// connects and closes idleConns clients.
func BenchmarkIdleConnMemory(b *testing.B) { benchIdleMemory(b, benchConfig()) }

// BenchmarkIdleConnMemoryGoroutine is the same on the portable read side:
// a reader goroutine per connection (Config.Pollers Off).
func BenchmarkIdleConnMemoryGoroutine(b *testing.B) {
	cfg := benchConfig()
	cfg.Pollers = server.Off
	benchIdleMemory(b, cfg)
}

// BenchmarkIdleConnMemoryRedis is BenchmarkIdleConnMemory on Redis, in
// interest and in pattern routing: what the bus keeps per connection
// (interest routing subscribes two channels per client) comes on top.
func BenchmarkIdleConnMemoryRedis(b *testing.B) {
	for _, routing := range []string{server.RoutingInterest, server.RoutingPattern} {
		b.Run(routing, func(b *testing.B) {
			cfg := benchConfig()
			cfg.RedisRouting = routing
			benchIdleMemoryOn(b, redistest.Start(b), cfg)
		})
	}
}

func benchIdleMemory(b *testing.B, cfg server.Config) { benchIdleMemoryOn(b, nil, cfg) }

func benchIdleMemoryOn(b *testing.B, rs *redistest.Server, cfg server.Config) {
	raiseFileLimit(b, idleConns+1024)
	// The component's own cost: a user id and no metadata (a metadata map
	// is the application's, ~300 bytes for one entry).
	auth := func(_ context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
		var d struct {
			Token string `json:"token"`
		}
		_ = json.Unmarshal(req.Data, &d)
		return &server.AuthResult{UserID: strings.TrimPrefix(d.Token, "user:")}, nil
	}
	ts := startServer(b, rs, server.Options{Config: cfg, Authenticate: auth})
	var heap, stack, goroutines float64
	var iters int
	for b.Loop() {
		iters++
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		g0 := runtime.NumGoroutine()
		// The clients live in a child process: what grows here is the
		// server's.
		cp := startClientProcess(b, ts, idleConns)
		eventually(b, "connections settled", func() bool {
			return ts.h.Stats().Connections == idleConns && runtime.NumGoroutine() <= g0+idleConns+8
		})
		runtime.GC()
		runtime.ReadMemStats(&ms1)
		if f := os.Getenv(envIdleHeapProfile); f != "" {
			writeHeapProfile(b, f)
		}
		heap += (float64(ms1.HeapInuse) - float64(ms0.HeapInuse)) / idleConns
		stack += (float64(ms1.StackInuse) - float64(ms0.StackInuse)) / idleConns
		goroutines += float64(runtime.NumGoroutine()-g0) / idleConns
		cp.stop(b)
		eventually(b, "server to drop the idle clients", func() bool { return ts.h.Stats().Connections == 0 })
	}
	k := float64(iters)
	b.ReportMetric((heap+stack)/k, "bytes/conn")
	b.ReportMetric(heap/k, "heap-bytes/conn")
	b.ReportMetric(stack/k, "stack-bytes/conn")
	b.ReportMetric(goroutines/k, "goroutines/conn")
}

// envIdleHeapProfile names a file for BenchmarkIdleConnMemory to write the
// heap profile to while the connections are held (run it with
// -memprofilerate 1 and read it with go tool pprof -sample_index=inuse_space).
const envIdleHeapProfile = "WSCOMPONENT_IDLE_HEAP_PROFILE"

func writeHeapProfile(b *testing.B, name string) {
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// raiseFileLimit makes sure the process may open need descriptors (each
// loopback connection costs two: client and server side), raising the soft
// and, when allowed, the hard limit; it skips the benchmark otherwise.
func raiseFileLimit(b *testing.B, need int) {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Skipf("getrlimit: %v", err)
	}
	if lim.Cur >= uint64(need) {
		return
	}
	want := lim
	want.Cur = uint64(need)
	if want.Max < want.Cur {
		want.Max = want.Cur
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		b.Skipf("need %d file descriptors, have %d (hard %d) and cannot raise: %v", need, lim.Cur, lim.Max, err)
	}
}

// rawClient is a minimal WebSocket client: handshake, masked text frames
// out, frames in through a reused buffer. It does not answer pings (the
// benchmarks turn them off) and is used by one goroutine at a time.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
	buf  []byte // payload of the last message
	wbuf []byte
	ext  [8]byte // frame header scratch; a local array would escape through io.ReadFull
	id   string
}

// WebSocket opcodes the rawClient deals with.
const (
	opContinuation = 0x0
	opText         = 0x1
	opClose        = 0x8
)

// dialRawClients connects and authenticates n clients (32 at a time) as
// users "0".."n-1". The caller closes them.
func dialRawClients(addr string, n int) ([]*rawClient, error) {
	clients := make([]*rawClient, n)
	errs := make(chan error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(32, n) {
		wg.Go(func() {
			for i := range next {
				c, err := dialRaw(addr, fmt.Sprintf(`{"token":"user:%d"}`, i))
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					continue
				}
				clients[i] = c
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		closeRawClients(clients)
		return nil, err
	}
	return clients, nil
}

// mustDialRawClients dials n clients to ts and fails b on error.
func mustDialRawClients(b *testing.B, ts *testServer, n int) []*rawClient {
	b.Helper()
	u, err := url.Parse(ts.srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	clients, err := dialRawClients(u.Host, n)
	if err != nil {
		b.Fatal(err)
	}
	return clients
}

func closeRawClients(clients []*rawClient) {
	for _, c := range clients {
		if c != nil {
			_ = c.conn.Close()
		}
	}
}

// dialRaw opens a connection, upgrades it, authenticates with authData and
// waits for "connected".
func dialRaw(addr, authData string) (*rawClient, error) {
	conn, err := net.DialTimeout("tcp", addr, benchWait)
	if err != nil {
		return nil, err
	}
	c := &rawClient{conn: conn, br: bufio.NewReaderSize(conn, 4096), buf: make([]byte, 0, 512)}
	fail := func(err error) (*rawClient, error) {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(benchWait))
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return fail(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return fail(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fail(fmt.Errorf("upgrade answered %s", resp.Status))
	}
	if err := c.writeText([]byte(`{"event":"authenticate","data":` + authData + `}`)); err != nil {
		return fail(err)
	}
	op, msg, err := c.readMessage()
	if err != nil {
		return fail(err)
	}
	var f struct {
		Event string                 `json:"event"`
		Data  protocol.ConnectedData `json:"data"`
	}
	if op != opText || json.Unmarshal(msg, &f) != nil || f.Event != protocol.EventConnected {
		return fail(fmt.Errorf("want connected, got opcode %d %q", op, msg))
	}
	c.id = f.Data.ID
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

// writeText sends p as one masked text frame. The mask key is zero, which
// leaves the payload as it is; the server unmasks all the same.
func (c *rawClient) writeText(p []byte) error {
	h := c.wbuf[:0]
	h = append(h, 0x80|opText)
	switch {
	case len(p) < 126:
		h = append(h, 0x80|byte(len(p)))
	case len(p) <= 0xffff:
		h = append(h, 0x80|126, byte(len(p)>>8), byte(len(p)))
	default:
		h = append(h, 0x80|127)
		h = binary.BigEndian.AppendUint64(h, uint64(len(p)))
	}
	h = append(h, 0, 0, 0, 0)
	h = append(h, p...)
	c.wbuf = h
	_, err := c.conn.Write(h)
	return err
}

// readMessage reads one message (joining fragments) into c.buf and returns
// its opcode. Control frames other than close are skipped.
func (c *rawClient) readMessage() (byte, []byte, error) {
	c.buf = c.buf[:0]
	var op byte
	for {
		b0, err := c.br.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		b1, err := c.br.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		fin, fop := b0&0x80 != 0, b0&0x0f
		n := uint64(b1 & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(c.br, c.ext[:2]); err != nil {
				return 0, nil, err
			}
			n = uint64(binary.BigEndian.Uint16(c.ext[:2]))
		case 127:
			if _, err := io.ReadFull(c.br, c.ext[:]); err != nil {
				return 0, nil, err
			}
			n = binary.BigEndian.Uint64(c.ext[:])
		}
		if b1&0x80 != 0 || n > 1<<24 {
			return 0, nil, errors.New("rawClient: masked or oversized frame from server")
		}
		start := len(c.buf)
		c.buf = append(c.buf, make([]byte, n)...)
		if _, err := io.ReadFull(c.br, c.buf[start:]); err != nil {
			return 0, nil, err
		}
		if fop >= opClose {
			c.buf = c.buf[:start]
			if fop == opClose {
				return opClose, nil, io.EOF
			}
			continue
		}
		if fop != opContinuation {
			op = fop
		}
		if fin {
			return op, c.buf, nil
		}
	}
}

// expectText reads one text message within d.
func (c *rawClient) expectText(d time.Duration) error {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	op, msg, err := c.readMessage()
	if err != nil {
		return err
	}
	if op != opText || !bytes.HasPrefix(msg, []byte(`{"event":`)) {
		return fmt.Errorf("unexpected message opcode %d %q", op, msg)
	}
	return nil
}

// BenchmarkFanoutStalledClient measures what one client that stops reading
// costs the others: 1000 clients read a stream of ~2 KiB broadcasts, with
// and without one more client that never reads. It reports the readers'
// delivery latency (p50, p99) and, for the stalled run, the stalled client's
// largest queue (it must stay within BackpressureLimit) and the messages
// dropped for it. Run with -benchtime 2000x or more so that the stalled
// client's socket buffers fill and the backpressure policy takes over.
func BenchmarkFanoutStalledClient(b *testing.B) {
	for _, stalled := range []bool{false, true} {
		b.Run(map[bool]string{false: "baseline", true: "stalled"}[stalled], func(b *testing.B) {
			benchStalled(b, stalled)
		})
	}
}

func benchStalled(b *testing.B, stalled bool) {
	const readers = 1000
	const limit = 256 << 10
	raiseFileLimit(b, 2*readers+1024)
	cfg := benchConfig()
	cfg.BackpressureLimit = limit
	ts := startServer(b, nil, server.Options{Config: cfg})
	var slow *wsClient
	if stalled {
		// A small receive buffer, so that the kernel stops absorbing the
		// stream early and the server's queue is what fills.
		d := websocket.Dialer{HandshakeTimeout: benchWait, NetDial: func(network, addr string) (net.Conn, error) {
			conn, err := net.Dial(network, addr)
			if tcp, ok := conn.(*net.TCPConn); ok {
				_ = tcp.SetReadBuffer(4096)
			}
			return conn, err
		}}
		conn, _, err := d.Dial(ts.wsURL(), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = conn.Close() })
		slow = &wsClient{&wstest.Client{T: b, Conn: conn}}
		slow.auth("stalled")
	}
	var round sync.WaitGroup
	var mu sync.Mutex
	var lat []time.Duration
	for range readers {
		c := ts.connect(b, "reader")
		go func() {
			var d struct {
				T int64 `json:"t"`
			}
			for {
				_ = c.Conn.SetReadDeadline(time.Now().Add(benchWait))
				_, msg, err := c.Conn.ReadMessage()
				if err != nil {
					return
				}
				got := time.Now()
				if json.Unmarshal(msg[len(`{"event":"s","data":`):len(msg)-1], &d) == nil {
					mu.Lock()
					lat = append(lat, got.Sub(time.Unix(0, d.T)))
					mu.Unlock()
				}
				round.Done()
			}
		}()
	}
	pad := strings.Repeat("x", 2000)
	maxQueued := 0
	for b.Loop() {
		round.Add(readers)
		if err := ts.h.Broadcast("s", map[string]any{"t": time.Now().UnixNano(), "p": pad}); err != nil {
			b.Fatal(err)
		}
		round.Wait()
		if slow != nil {
			if ci, ok := ts.h.Client(slow.ID); ok && ci.QueuedBytes > maxQueued {
				maxQueued = ci.QueuedBytes
			}
		}
	}
	mu.Lock()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	mu.Unlock()
	if slow != nil {
		if maxQueued > limit {
			b.Fatalf("stalled client queued %d bytes, limit %d", maxQueued, limit)
		}
		st := ts.h.Stats()
		b.ReportMetric(float64(maxQueued), "stalled-max-queued-B")
		b.ReportMetric(float64(st.MessagesDropped), "stalled-dropped")
	}
}
