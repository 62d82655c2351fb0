package faultproxy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ignis-go/wscomponent/internal/faultproxy"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	// waitTimeout bounds every wait for something that must happen.
	waitTimeout = 5 * time.Second
	// quietWindow is how long a test watches for something that must NOT
	// happen (a held byte, a close): a non-event can only be checked over
	// a window.
	quietWindow = 300 * time.Millisecond
)

// echo is a TCP server that echoes what it reads and reports each read.
type echo struct {
	ln       net.Listener
	got      chan []byte
	accepted chan struct{}
	eof      chan struct{} // one per connection that saw EOF or an error
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func startEcho(t *testing.T) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{ln: ln, got: make(chan []byte, 1024), accepted: make(chan struct{}, 64), eof: make(chan struct{}, 64)}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			e.accepted <- struct{}{}
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						e.got <- bytes.Clone(buf[:n])
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						e.eof <- struct{}{}
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		e.mu.Lock()
		for _, c := range e.conns {
			_ = c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func (e *echo) addr() string { return e.ln.Addr().String() }

// expectGotAnyOrder waits until the echo server has read a and b, from two
// connections, in either order.
func (e *echo) expectGotAnyOrder(t *testing.T, a, b string) {
	t.Helper()
	var got []byte
	deadline := time.After(waitTimeout)
	for len(got) < len(a)+len(b) {
		select {
		case p := <-e.got:
			got = append(got, p...)
		case <-deadline:
			t.Fatalf("server read %q, want %q and %q", got, a, b)
		}
	}
	if s := string(got); s != a+b && s != b+a {
		t.Fatalf("server read %q, want %q and %q in either order", got, a, b)
	}
}

// expectGot waits until the echo server has read want (possibly in pieces).
func (e *echo) expectGot(t *testing.T, want string) {
	t.Helper()
	var got []byte
	deadline := time.After(waitTimeout)
	for len(got) < len(want) {
		select {
		case b := <-e.got:
			got = append(got, b...)
		case <-deadline:
			t.Fatalf("server read %q, want %q", got, want)
		}
	}
	if string(got) != want {
		t.Fatalf("server read %q, want %q", got, want)
	}
}

// expectNothing checks that the echo server reads nothing for quietWindow.
func (e *echo) expectNothing(t *testing.T) {
	t.Helper()
	select {
	case b := <-e.got:
		t.Fatalf("server read %q through a blocked direction", b)
	case <-time.After(quietWindow):
	}
}

func startProxy(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func dial(t *testing.T, p *faultproxy.Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// expectRead reads exactly want from c within waitTimeout.
func expectRead(t *testing.T, c net.Conn, want string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read %q: got %q, %v", want, buf, err)
	}
	if string(buf) != want {
		t.Fatalf("read %q, want %q", buf, want)
	}
}

// expectSilence checks that c reads nothing, and is not closed, for
// quietWindow.
func expectSilence(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(quietWindow))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	var ne net.Error
	if n > 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read %q, %v through a blocked direction; want a timeout (no data, no FIN, no RST)", buf[:n], err)
	}
}

// expectClosed waits until c reads EOF or a reset.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open")
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, not a wait for the event
	}
}

func TestFaultProxyForwardsBothWays(t *testing.T) {
	t.Parallel()
	e := startEcho(t)
	p := startProxy(t, e.addr())
	c := dial(t, p)
	send(t, c, "hello")
	e.expectGot(t, "hello")
	expectRead(t, c, "hello")
	if p.Target() != e.addr() {
		t.Errorf("Target() = %s, want %s", p.Target(), e.addr())
	}
	if got := p.Conns(); got != 1 {
		t.Errorf("Conns() = %d, want 1", got)
	}
}

func TestFaultProxyBlackHoleHoldsBothWaysWithoutClosing(t *testing.T) {
	t.Parallel()
	e := startEcho(t)
	p := startProxy(t, e.addr())
	c := dial(t, p)
	send(t, c, "a")
	expectRead(t, c, "a")
	<-e.accepted
	e.expectGot(t, "a")

	p.BlackHole()
	send(t, c, "b")
	e.expectNothing(t)
	expectSilence(t, c)

	// A connection made during the partition is accepted but goes nowhere.
	late := dial(t, p)
	send(t, late, "late")
	select {
	case <-e.accepted:
		t.Fatal("the proxy dialed the target during a partition")
	case <-time.After(quietWindow):
	}

	// The client gives up: its close is held too, the server sees no FIN.
	_ = c.Close()
	select {
	case <-e.eof:
		t.Fatal("the server saw a close through a partition")
	case <-time.After(quietWindow):
	}

	p.Heal()
	// What was held goes through, then the held close; the connection
	// made during the partition is dialed now. The two connections' bytes
	// have no order between them.
	e.expectGotAnyOrder(t, "b", "late")
	select {
	case <-e.eof:
	case <-time.After(waitTimeout):
		t.Fatal("the held close never reached the server")
	}
	select {
	case <-e.accepted:
	case <-time.After(waitTimeout):
		t.Fatal("the connection made during the partition was not dialed after Heal")
	}
	expectRead(t, late, "late")
}

func TestFaultProxyHalfOpenBlocksOnlyServerToClientOfExistingConns(t *testing.T) {
	t.Parallel()
	e := startEcho(t)
	p := startProxy(t, e.addr())
	old := dial(t, p)
	send(t, old, "1")
	expectRead(t, old, "1")
	e.expectGot(t, "1")

	p.HalfOpen()
	send(t, old, "2")
	e.expectGot(t, "2") // the request reaches the server...
	expectSilence(t, old)

	// ...and a new connection is not affected.
	fresh := dial(t, p)
	send(t, fresh, "3")
	expectRead(t, fresh, "3")
	e.expectGot(t, "3")

	p.Heal()
	expectRead(t, old, "2")
}

func TestFaultProxyLatencyDelaysInOrder(t *testing.T) {
	t.Parallel()
	e := startEcho(t)
	p := startProxy(t, e.addr())
	c := dial(t, p)
	const lat = 100 * time.Millisecond
	p.SetLatency(lat)
	var want bytes.Buffer
	start := time.Now()
	for i := range 50 {
		s := fmt.Sprintf("<%d>", i)
		want.WriteString(s)
		send(t, c, s)
	}
	expectRead(t, c, want.String())
	if took := time.Since(start); took < 2*lat {
		t.Errorf("round trip took %v, want at least %v (latency both ways)", took, 2*lat)
	}
	p.SetLatency(0)
	start = time.Now()
	send(t, c, "fast")
	expectRead(t, c, "fast")
	if took := time.Since(start); took >= 2*lat {
		t.Errorf("round trip took %v after SetLatency(0)", took)
	}
}

func TestFaultProxyCutClosesEveryConnectionAndKeepsAccepting(t *testing.T) {
	t.Parallel()
	e := startEcho(t)
	p := startProxy(t, e.addr())
	c1, c2 := dial(t, p), dial(t, p)
	for _, c := range []net.Conn{c1, c2} {
		send(t, c, "x")
		expectRead(t, c, "x")
	}
	p.Cut()
	expectClosed(t, c1)
	expectClosed(t, c2)
	for range 2 {
		select {
		case <-e.eof:
		case <-time.After(waitTimeout):
			t.Fatal("the server side was not closed")
		}
	}
	eventually(t, "links forgotten", func() bool { return p.Conns() == 0 })
	c3 := dial(t, p)
	send(t, c3, "y")
	expectRead(t, c3, "y")
	if got := p.Accepted(); got != 3 {
		t.Errorf("Accepted() = %d, want 3", got)
	}
}

func TestFaultProxyUnreachableTargetClosesTheClient(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	p := startProxy(t, addr)
	expectClosed(t, dial(t, p))
}

func TestFaultProxyCloseEndsEverythingOnce(t *testing.T) {
	t.Parallel()
	e := startEcho(t)
	p, err := faultproxy.New(e.addr())
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	send(t, c, "x")
	expectRead(t, c, "x")
	blocked := dial(t, p)
	p.BlackHole() // a blocked writer must not keep Close waiting
	send(t, blocked, "y")
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	expectClosed(t, c)
	expectClosed(t, blocked)
	if err := p.Close(); !errors.Is(err, faultproxy.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), waitTimeout); err == nil {
		t.Error("proxy still accepts after Close")
	}
}
