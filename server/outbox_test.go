package server

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The outbox against a fake transport: what reaches the "socket", in which
// order, from which kind of write, and what the outbox's states say.

// outboxWait bounds every wait in these tests.
const outboxWait = 10 * time.Second

// fakeSocket is a transport that records the bytes written. tryWrite takes
// at most budget bytes in total (negative: no limit); write, the writer
// goroutine's, waits until hold is closed (when set) or the socket is
// closed. It fails the test if two writes ever overlap.
type fakeSocket struct {
	t testing.TB

	mu        sync.Mutex
	wire      []byte
	budget    int
	partialOK bool  // a short tryWrite returns no error (as a short send(2) does)
	failTry   error // tryWrite fails with it
	hold      chan struct{}
	tries     int
	writes    int
	sent      int // closeSent calls

	entered   chan struct{} // one value per write call
	closed    chan struct{}
	closeOnce sync.Once
	inWrite   atomic.Int32
}

func newFakeSocket(t testing.TB, budget int) *fakeSocket {
	return &fakeSocket{t: t, budget: budget, entered: make(chan struct{}, 1024), closed: make(chan struct{})}
}

var errFakeClosed = errors.New("fake socket closed")

func (f *fakeSocket) enter() {
	if f.inWrite.Add(1) != 1 {
		f.t.Error("two writes to the socket at once")
	}
}

func (f *fakeSocket) leave() { f.inWrite.Add(-1) }

func (f *fakeSocket) tryWrite(bufs [][]byte) (int, error) {
	f.enter()
	defer f.leave()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	if f.failTry != nil {
		return 0, f.failTry
	}
	select {
	case <-f.closed:
		return 0, errFakeClosed
	default:
	}
	flat := bytes.Join(bufs, nil)
	n := len(flat)
	if f.budget >= 0 {
		n = min(n, f.budget)
		f.budget -= n
	}
	f.wire = append(f.wire, flat[:n]...)
	if n < len(flat) && !(f.partialOK && n > 0) {
		return n, errWouldBlock
	}
	return n, nil
}

func (f *fakeSocket) write(bufs [][]byte, _ time.Time) error {
	f.enter()
	defer f.leave()
	f.mu.Lock()
	f.writes++
	hold := f.hold
	f.mu.Unlock()
	f.entered <- struct{}{}
	if hold != nil {
		select {
		case <-hold:
		case <-f.closed:
			return errFakeClosed
		}
	}
	select {
	case <-f.closed:
		return errFakeClosed
	default:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range bufs {
		f.wire = append(f.wire, b...)
	}
	return nil
}

func (f *fakeSocket) closeSent() {
	f.mu.Lock()
	f.sent++
	f.mu.Unlock()
}

func (f *fakeSocket) close() { f.closeOnce.Do(func() { close(f.closed) }) }

func (f *fakeSocket) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

// counts returns how many tryWrite and write calls there were.
func (f *fakeSocket) counts() (tries, writes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries, f.writes
}

// waitEntered waits for the writer goroutine's next write call.
func (f *fakeSocket) waitEntered(t testing.TB) {
	t.Helper()
	select {
	case <-f.entered:
	case <-time.After(outboxWait):
		t.Fatal("the writer goroutine did not write")
	}
}

// frames parses what was written so far.
func (f *fakeSocket) frames(t testing.TB) []wireFrame {
	t.Helper()
	f.mu.Lock()
	b := bytes.Clone(f.wire)
	f.mu.Unlock()
	return parseFrames(t, b)
}

// wireFrame is one server frame as a client reads it.
type wireFrame struct {
	op         byte
	compressed bool
	payload    string
}

func (w wireFrame) String() string {
	switch w.op {
	case opClose:
		if len(w.payload) >= 2 {
			return fmt.Sprintf("close %d %q", binary.BigEndian.Uint16([]byte(w.payload)), w.payload[2:])
		}
		return "close"
	case opPing:
		return "ping"
	case opPong:
		return "pong " + w.payload
	}
	return w.payload
}

// parseFrames splits b into whole, unmasked, final frames; a partial frame
// at the end fails the test.
func parseFrames(t testing.TB, b []byte) []wireFrame {
	t.Helper()
	var out []wireFrame
	for len(b) > 0 {
		if len(b) < 2 || b[0]&0x80 == 0 || b[1]&0x80 != 0 {
			t.Fatalf("bad frame start % x", b[:min(len(b), 4)])
		}
		n, h := int(b[1]&0x7f), 2
		switch n {
		case 126:
			n, h = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			n, h = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		if len(b) < h+n {
			t.Fatalf("partial frame: %d of %d bytes", len(b)-h, n)
		}
		w := wireFrame{op: b[0] & 0x0f, compressed: b[0]&rsv1 != 0}
		p := b[h : h+n]
		if w.compressed {
			p = inflate(t, p)
		}
		w.payload = string(p)
		out = append(out, w)
		b = b[h+n:]
	}
	return out
}

// inflate decompresses a permessage-deflate payload as a client does.
func inflate(t testing.TB, p []byte) []byte {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff")))
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return b
}

func payloads(fs []wireFrame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.String()
	}
	return out
}

// testOutbox is an outbox on a fake socket whose writer goroutines the
// test joins.
type testOutbox struct {
	*outbox
	sock  *fakeSocket
	stats *counters
	wg    sync.WaitGroup
}

func newTestOutbox(t *testing.T, budget, limit int, closeOnLimit bool) *testOutbox {
	t.Helper()
	to := &testOutbox{outbox: &outbox{}, sock: newFakeSocket(t, budget), stats: &counters{}}
	env := &outboxEnv{limit: limit, closeOnLimit: closeOnLimit, writeTimeout: time.Second, stats: to.stats,
		spawn: func(f func()) { to.wg.Go(f) }}
	to.init(env, to.sock, false)
	t.Cleanup(func() {
		to.stop() // ends a writer goroutine still waiting
		to.join(t)
	})
	return to
}

// join waits for the writer goroutines to end.
func (to *testOutbox) join(t testing.TB) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		to.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(outboxWait):
		t.Fatal("writer goroutine did not end")
	}
}

func (to *testOutbox) states() (writeState, closeState) {
	to.mu.Lock()
	defer to.mu.Unlock()
	return to.ws, to.cs
}

// send pushes a text frame and flushes, as a producer does.
func (to *testOutbox) send(t testing.TB, s string) {
	t.Helper()
	if r := to.pushSystem([]byte(s)); r != pushQueued {
		t.Fatalf("push %q: %v", s, r)
	}
	to.flush()
}

func want(t testing.TB, got []wireFrame, want ...string) {
	t.Helper()
	g := payloads(got)
	if strings.Join(g, "|") != strings.Join(want, "|") {
		t.Fatalf("frames on the wire:\n got %q\nwant %q", g, want)
	}
}

func closeFrame(d Disconnect) string {
	return wireFrame{op: opClose, payload: string(websocket.FormatCloseMessage(d.Code, d.Reason))}.String()
}

func TestOutboxWritesInOrderFromTheProducer(t *testing.T) {
	o := newTestOutbox(t, -1, 1<<20, false)
	for _, s := range []string{"a", "b", "c"} {
		o.send(t, s)
	}
	o.sendControl(t)
	want(t, o.sock.frames(t), "a", "b", "c", "ping")
	if tries, writes := o.sock.counts(); tries != 4 || writes != 0 {
		t.Errorf("%d direct writes and %d by a writer goroutine, want 4 and 0", tries, writes)
	}
	if ws, cs := o.states(); ws != wsIdle || cs != csOpen {
		t.Errorf("states %v %v, want idle open", ws, cs)
	}
	if q, over := o.load(); q != 0 || over {
		t.Errorf("load %d %v after everything was written", q, over)
	}
}

func (to *testOutbox) sendControl(t testing.TB) {
	t.Helper()
	if !to.pushAlways(frame{kind: framePing}) {
		t.Fatal("ping refused")
	}
	to.flush()
}

// Whatever a direct write leaves — nothing taken, part of a header, part
// of a payload, a short write with or without EAGAIN — the writer
// goroutine finishes it, frames stay whole and in order, and frames queued
// meanwhile follow.
func TestOutboxPartialWrites(t *testing.T) {
	for _, tt := range []struct {
		give      string
		budget    int
		partialOK bool
	}{
		{"EAGAIN at once", 0, false},
		{"one header byte", 1, false},
		{"one header byte, no error", 1, true},
		{"inside the first payload", 4, false},
		{"the first frame exactly", 2 + len("first"), false},
		{"inside the second frame", 2 + len("first") + 3, true},
	} {
		t.Run(tt.give, func(t *testing.T) {
			o := newTestOutbox(t, tt.budget, 1<<20, false)
			o.sock.partialOK = tt.partialOK
			o.sock.hold = make(chan struct{})
			// Two frames queued before the first flush go out in one
			// gathering write.
			o.pushSystem([]byte("first"))
			o.pushSystem([]byte("second"))
			o.flush() // returns: it never waits for the socket
			o.sock.waitEntered(t)
			if ws, _ := o.states(); ws != wsParked {
				t.Fatalf("write state %v, want parked", ws)
			}
			o.send(t, "third") // queued behind the writer
			close(o.sock.hold)
			o.join(t)
			want(t, o.sock.frames(t), "first", "second", "third")
			if ws, _ := o.states(); ws != wsIdle {
				t.Errorf("write state %v after the writer ended, want idle", ws)
			}
			if q, _ := o.load(); q != 0 {
				t.Errorf("%d bytes still counted", q)
			}
		})
	}
}

// A producer never waits for the socket: with the writer goroutine
// parked, flush returns at once and the writer takes the frame.
func TestOutboxFlushDoesNotWaitForAParkedWriter(t *testing.T) {
	o := newTestOutbox(t, 0, 1<<20, false)
	o.sock.hold = make(chan struct{})
	o.send(t, "a")
	o.sock.waitEntered(t)
	for i := range 10 {
		o.send(t, fmt.Sprint(i))
	}
	if tries, _ := o.sock.counts(); tries != 1 {
		t.Errorf("%d direct writes while the writer was parked, want only the first", tries)
	}
	close(o.sock.hold)
	o.join(t)
	want(t, o.sock.frames(t), "a", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
}

func TestOutboxCloseWhileWriting(t *testing.T) {
	for _, tt := range []struct {
		give    string
		discard bool
		want    []string
		dropped uint64
	}{
		// The close frame follows what was queued.
		{"after the queue", false, []string{"partly written", "queued 1", "queued 2"}, 0},
		// The frame partly on the wire is finished; the queue is dropped.
		{"discarding the queue", true, []string{"partly written"}, 2},
	} {
		t.Run(tt.give, func(t *testing.T) {
			o := newTestOutbox(t, 3, 1<<20, false)
			o.sock.hold = make(chan struct{})
			o.send(t, "partly written")
			o.sock.waitEntered(t)
			o.send(t, "queued 1")
			o.send(t, "queued 2")
			d := Disconnect{Code: 4005, Reason: "bye"}
			if !o.close(d, tt.discard) {
				t.Fatal("close refused")
			}
			if o.close(DisconnectShutdown, false) {
				t.Error("a second close was accepted")
			}
			if r := o.pushSystem([]byte("late")); r != pushRefused {
				t.Errorf("push after close: %v, want refused", r)
			}
			if o.pushAlways(frame{kind: framePing}) {
				t.Error("ping after close accepted")
			}
			o.flush()
			if ws, cs := o.states(); ws != wsParked || cs != csClosing {
				t.Errorf("states %v %v, want parked closing", ws, cs)
			}
			close(o.sock.hold)
			o.waitClosed(outboxWait)
			o.join(t)
			want(t, o.sock.frames(t), append(tt.want, closeFrame(d))...)
			if _, cs := o.states(); cs != csClosed {
				t.Errorf("close state %v, want closed", cs)
			}
			if o.sock.sent != 1 {
				t.Errorf("closeSent told %d times", o.sock.sent)
			}
			if got := o.stats.dropped.Load(); got != tt.dropped {
				t.Errorf("%d dropped, want %d", got, tt.dropped)
			}
		})
	}
}

// closeAfter queues its error reply and the close frame in one step:
// frames pushed concurrently land before both or are refused.
func TestOutboxCloseAfterKeepsTheReplyAndTheCloseTogether(t *testing.T) {
	for range 50 {
		o := newTestOutbox(t, -1, 1<<20, false)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := 0; o.pushSystem([]byte(fmt.Sprintf("g%d-%d", g, i))) == pushQueued; i++ {
					o.flush()
				}
			})
		}
		o.send(t, "first")
		o.closeAfter([]byte("the reason"), DisconnectAuthFailed, false)
		o.flush()
		wg.Wait()
		o.waitClosed(outboxWait)
		got := payloads(o.sock.frames(t))
		if n := len(got); n < 2 || got[n-2] != "the reason" || got[n-1] != closeFrame(DisconnectAuthFailed) {
			t.Fatalf("the wire ends %q", got[max(0, len(got)-3):])
		}
	}
}

func TestOutboxBackpressureLimit(t *testing.T) {
	const size = 10
	frame10 := []byte(strings.Repeat("x", size))
	for _, tt := range []struct {
		give         string
		closeOnLimit bool
		want         []pushResult
		events       uint64
	}{
		{"drop", false, []pushResult{pushQueued, pushQueued, pushQueued, pushDroppedFirst, pushDropped}, 1},
		{"close", true, []pushResult{pushQueued, pushQueued, pushQueued, pushOverLimit, pushOverLimit}, 1},
	} {
		t.Run(tt.give, func(t *testing.T) {
			// The first frame goes to the writer goroutine, which waits:
			// its bytes count until written.
			o := newTestOutbox(t, 0, 3*size, tt.closeOnLimit)
			o.sock.hold = make(chan struct{})
			var got []pushResult
			for range tt.want {
				got = append(got, o.pushSystem(frame10))
				o.flush()
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("push results %v, want %v", got, tt.want)
			}
			if q, over := o.load(); q != 3*size || !over {
				t.Errorf("load %d %v, want %d over", q, over, 3*size)
			}
			if d, e := o.stats.dropped.Load(), o.stats.backpressureEvents.Load(); d != 2 || e != tt.events {
				t.Errorf("%d dropped in %d episodes, want 2 in %d", d, e, tt.events)
			}
			// Frames the protocol needs are not limited.
			if !o.pushAlways(frame{kind: framePong, data: []byte("p")}) {
				t.Error("pong refused over the limit")
			}
			close(o.sock.hold)
			o.join(t)
			if q, over := o.load(); q != 0 || over {
				t.Errorf("load %d %v once written, want 0 and not over", q, over)
			}
			want(t, o.sock.frames(t), string(frame10), string(frame10), string(frame10), "pong p")
			// A new episode is counted again.
			if r := o.pushSystem(frame10); r != pushQueued {
				t.Errorf("push after draining: %v", r)
			}
		})
	}
}

// A single frame larger than the limit still goes into an empty outbox.
func TestOutboxTakesOneLargeFrame(t *testing.T) {
	o := newTestOutbox(t, -1, 4, false)
	o.send(t, "larger than the limit")
	want(t, o.sock.frames(t), "larger than the limit")
}

// The reader stopping ends a writer goroutine that waits for the socket,
// drops the queue and refuses what comes after.
func TestOutboxStopWhileParked(t *testing.T) {
	o := newTestOutbox(t, 2, 1<<20, false)
	o.sock.hold = make(chan struct{}) // never released: only the close ends the wait
	o.send(t, "stuck")
	o.sock.waitEntered(t)
	o.send(t, "queued")
	o.close(DisconnectShutdown, false)
	o.stop()
	o.join(t)
	if !o.sock.isClosed() {
		t.Error("stop did not close the socket")
	}
	if ws, cs := o.states(); ws != wsIdle || cs != csClosed {
		t.Errorf("states %v %v, want idle closed", ws, cs)
	}
	if r := o.pushSystem([]byte("late")); r != pushRefused {
		t.Errorf("push after stop: %v", r)
	}
	o.waitClosed(outboxWait) // returns at once
	if got := o.stats.dropped.Load(); got != 1 {
		t.Errorf("%d dropped, want 1 (the queued frame)", got)
	}
}

func TestOutboxWriteErrorClosesTheConnection(t *testing.T) {
	o := newTestOutbox(t, -1, 1<<20, false)
	o.sock.failTry = errors.New("connection reset")
	o.send(t, "lost")
	if !o.sock.isClosed() {
		t.Error("a failed write did not close the socket")
	}
	if _, cs := o.states(); cs != csClosed {
		t.Errorf("close state %v, want closed", cs)
	}
	if r := o.pushSystem([]byte("after")); r != pushRefused {
		t.Errorf("push after a failed write: %v", r)
	}
}

// Transform slots hold their place: frames behind an unfilled slot wait
// for it, in whatever order the slots are filled; a dropped slot leaves no
// frame.
func TestOutboxPendingSlotsKeepOrder(t *testing.T) {
	o := newTestOutbox(t, -1, 1<<20, false)
	slot := func() *pendingFrame {
		p := &pendingFrame{}
		if r := o.push(frame{kind: framePending, size: 1, pending: p}); r != pushQueued {
			t.Fatalf("push slot: %v", r)
		}
		return p
	}
	o.send(t, "a")
	p1 := slot()
	o.send(t, "b")
	p2 := slot()
	p3 := slot()
	o.send(t, "c")
	want(t, o.sock.frames(t), "a")

	o.fill(p2, []byte("p2"))
	o.flush()
	want(t, o.sock.frames(t), "a")
	o.fill(p1, []byte("p1"))
	o.flush()
	want(t, o.sock.frames(t), "a", "p1", "b", "p2")
	o.fill(p3, nil) // dropped by the transformer
	o.flush()
	want(t, o.sock.frames(t), "a", "p1", "b", "p2", "c")
	if q, _ := o.load(); q != 0 {
		t.Errorf("%d bytes still counted", q)
	}
}

// Many producers: one write at a time (the fake checks), every frame
// once, each producer's frames in its order.
func TestOutboxConcurrentProducers(t *testing.T) {
	o := newTestOutbox(t, 0, 1<<30, false)
	var mu sync.Mutex
	budget := 0
	const producers, each = 4, 200
	var wg sync.WaitGroup
	for g := range producers {
		wg.Go(func() {
			for i := range each {
				mu.Lock()
				budget++
				o.sock.mu.Lock()
				o.sock.budget += budget % 7 // some sends take part, some nothing
				o.sock.mu.Unlock()
				mu.Unlock()
				o.send(t, fmt.Sprintf("%d:%d", g, i))
			}
		})
	}
	wg.Wait()
	o.close(DisconnectShutdown, false)
	o.flush()
	o.waitClosed(outboxWait)
	o.join(t)
	got := o.sock.frames(t)
	if len(got) != producers*each+1 {
		t.Fatalf("%d frames, want %d", len(got), producers*each+1)
	}
	next := make([]int, producers)
	for _, f := range got[:len(got)-1] {
		var g, i int
		if _, err := fmt.Sscanf(f.payload, "%d:%d", &g, &i); err != nil {
			t.Fatalf("frame %q: %v", f.payload, err)
		}
		if i != next[g] {
			t.Fatalf("producer %d: frame %d after %d", g, i, next[g]-1)
		}
		next[g]++
	}
}

func TestOutboxDeflate(t *testing.T) {
	o := newTestOutbox(t, -1, 1<<20, false)
	o.deflate = true
	m, err := newMessage("big", strings.Repeat("abc", 3000))
	if err != nil {
		t.Fatal(err)
	}
	o.push(frame{kind: frameShared, size: len(m.frame), msg: m})
	o.send(t, "system")
	o.sendControl(t)
	got := o.sock.frames(t)
	want(t, got, string(m.frame), "system", "ping")
	if !got[0].compressed || !got[1].compressed || got[2].compressed {
		t.Errorf("compressed: %v %v %v, want data frames only", got[0].compressed, got[1].compressed, got[2].compressed)
	}
}
