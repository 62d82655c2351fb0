// Package faultproxy is a TCP proxy for tests that injects network faults
// between a client and a server (here: wscomponent instances and Redis):
// a partition that black-holes traffic without closing anything, a
// half-open connection, added latency, and cut connections.
//
// A Proxy listens on 127.0.0.1 on a free port and forwards every accepted
// connection to its target. Faults are switched on and off while traffic
// flows; Heal switches them all off.
//
// Bytes are never dropped or reordered: a direction that is blocked holds
// what it has read and stops reading, as TCP does while its peer is
// unreachable; Heal releases it. Closes are held the same way, so a
// black-holed peer sees neither FIN nor RST. Only Cut and Close end
// connections.
//
// Goroutines: one accept loop per Proxy, and per connection one reader and
// one writer per direction (four). All are started through Proxy.goFunc,
// counted in one WaitGroup and joined by Close.
package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

const (
	// dialTimeout bounds the dial to the target.
	dialTimeout = 5 * time.Second
	// chunkSize is the largest read forwarded as one piece.
	chunkSize = 32 << 10
	// queuedChunks bounds what one direction has read but not yet
	// written (latency and blocked directions queue here).
	queuedChunks = 64
)

// ErrClosed is returned by Close when the proxy is already closed.
var ErrClosed = errors.New("faultproxy: proxy closed")

// Proxy forwards TCP connections to a target and injects faults on
// command. Its methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	done   chan struct{} // closed by Close

	mu        sync.Mutex
	closed    bool
	blackHole bool
	latency   time.Duration
	changed   chan struct{} // closed and replaced on every fault change
	links     map[*link]struct{}
	accepted  int
}

// link is one proxied connection.
type link struct {
	client net.Conn
	// halfOpen blocks the server→client direction of this connection
	// (HalfOpen); guarded by Proxy.mu.
	halfOpen bool
	done     chan struct{}
	once     sync.Once

	mu     sync.Mutex
	server net.Conn // set once dialed
	closed bool
}

// direction names which way a pipe forwards.
type direction int

const (
	upstream   direction = iota // client → server
	downstream                  // server → client
)

// chunk is one read, or the read error (io.EOF) that ends a direction.
type chunk struct {
	data []byte
	err  error
	due  time.Time // when it may be written (read time + latency)
}

// New starts a proxy on 127.0.0.1 with a free port that forwards to target
// ("host:port"). The caller must Close it.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{
		ln:      ln,
		target:  target,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		links:   map[*link]struct{}{},
	}
	p.goFunc(p.acceptLoop)
	return p, nil
}

// goFunc runs f in a goroutine that Close waits for.
func (p *Proxy) goFunc(f func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
}

// Addr returns the proxy's "127.0.0.1:port", the address clients dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// BlackHole partitions every connection, existing and new: nothing is
// forwarded in either direction and nothing is closed (no FIN, no RST).
// New connections are accepted (the listening socket is not part of the
// partition) but not dialed through until Heal.
func (p *Proxy) BlackHole() {
	p.update(func() { p.blackHole = true })
}

// HalfOpen stops the server→client direction of the connections open now:
// the client's writes still reach the server, the server's replies are held.
// Connections opened later are not affected.
func (p *Proxy) HalfOpen() {
	p.update(func() {
		for l := range p.links {
			l.halfOpen = true
		}
	})
}

// SetLatency delays every byte read from now on by d in each direction,
// keeping the order; 0 removes the delay.
func (p *Proxy) SetLatency(d time.Duration) {
	p.update(func() { p.latency = d })
}

// Heal ends the partition, the half-open connections and the latency:
// what was held is forwarded, in order.
func (p *Proxy) Heal() {
	p.update(func() {
		p.blackHole = false
		p.latency = 0
		for l := range p.links {
			l.halfOpen = false
		}
	})
}

// Cut closes every current connection on both sides, as a restarted
// middlebox would. The proxy keeps accepting.
func (p *Proxy) Cut() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
}

// Conns returns how many connections are open through the proxy.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Accepted returns how many connections the proxy has accepted in all.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Close stops accepting, closes every connection and waits for all the
// proxy's goroutines. A second call returns ErrClosed.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

// update changes the fault state under the lock and wakes every blocked
// writer to look at it again.
func (p *Proxy) update(f func()) {
	p.mu.Lock()
	f()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

func (p *Proxy) acceptLoop() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // listener closed by Close
		}
		l := &link{client: c, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			return
		}
		p.links[l] = struct{}{}
		p.accepted++
		p.mu.Unlock()
		p.goFunc(func() { p.serve(l) })
	}
}

// serve dials the target once the partition allows it, then forwards both
// directions until either side ends or the link is closed.
func (p *Proxy) serve(l *link) {
	defer p.forget(l)
	if !p.waitOpen(l, upstream) {
		return
	}
	server, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		l.close()
		return
	}
	if !l.setServer(server) { // cut while dialing
		_ = server.Close()
		return
	}
	up := make(chan chunk, queuedChunks)
	down := make(chan chunk, queuedChunks)
	p.goFunc(func() { p.read(l, l.client, up) })
	p.goFunc(func() { p.read(l, server, down) })
	p.goFunc(func() { p.write(l, upstream, server, up) })
	p.write(l, downstream, l.client, down)
	<-l.done
}

// forget drops l from the link set once it is closed.
func (p *Proxy) forget(l *link) {
	l.close()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// read forwards what src sends to the writer through q, stamped with the
// latency in force when it arrived; the read error goes last.
func (p *Proxy) read(l *link, src net.Conn, q chan<- chunk) {
	for {
		buf := make([]byte, chunkSize)
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			due := time.Now().Add(p.latency)
			p.mu.Unlock()
			select {
			case q <- chunk{data: buf[:n], due: due}:
			case <-l.done:
				return
			}
		}
		if err != nil {
			select {
			case q <- chunk{err: err, due: time.Now()}:
			case <-l.done:
			}
			return
		}
	}
}

// write writes each chunk of q to dst once it is due and the direction is
// open; the read error closes the whole link (after any partition heals,
// so a black-holed close stays unseen).
func (p *Proxy) write(l *link, dir direction, dst net.Conn, q <-chan chunk) {
	for {
		var c chunk
		select {
		case c = <-q:
		case <-l.done:
			return
		}
		if !p.waitOpen(l, dir) || !wait(l, c.due) {
			return
		}
		if c.err != nil {
			l.close()
			return
		}
		if _, err := dst.Write(c.data); err != nil {
			l.close()
			return
		}
	}
}

// waitOpen blocks while dir of l is blocked by a fault; it reports false
// when l is closed meanwhile.
func (p *Proxy) waitOpen(l *link, dir direction) bool {
	for {
		p.mu.Lock()
		blocked := p.blackHole || (dir == downstream && l.halfOpen)
		changed := p.changed
		p.mu.Unlock()
		if !blocked {
			return true
		}
		select {
		case <-changed:
		case <-l.done:
			return false
		}
	}
}

// wait blocks until due; it reports false when l is closed meanwhile.
func wait(l *link, due time.Time) bool {
	d := time.Until(due)
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}

// setServer records the dialed server side; it reports false when l was
// closed meanwhile.
func (l *link) setServer(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.server = c
	return true
}

// close closes both sides of l once.
func (l *link) close() {
	l.once.Do(func() {
		close(l.done)
		_ = l.client.Close()
		l.mu.Lock()
		l.closed = true
		s := l.server
		l.mu.Unlock()
		if s != nil {
			_ = s.Close()
		}
	})
}
