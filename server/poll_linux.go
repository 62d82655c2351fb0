//go:build linux

package server

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pollSupported tells whether this platform has the event-driven read side.
const pollSupported = true

// pollSet is a Helper's pollers; connections are spread over them in turn.
type pollSet struct {
	pollers []*poller
	next    atomic.Uint32
}

// poller is one epoll instance and the goroutine that waits on it. The
// epoll descriptor is itself waited for through Go's network poller (an
// epoll descriptor is readable while it has events), so the waiting
// goroutine is parked like any socket reader rather than holding a thread
// in epoll_wait.
type poller struct {
	h    *Helper
	epfd int
	file *os.File // epfd, for Go's network poller
	rc   syscall.RawConn

	mu    sync.Mutex
	conns map[uint64]*pollConn
	seq   uint64

	// Workers: the goroutines that serve ready connections. One that has
	// served waits on handoff for the next (up to maxParked of them), so
	// that a busy server reuses goroutines whose stacks have already grown
	// to what a message handler needs, instead of growing a new one for
	// every readiness event.
	handoff chan *pollConn
	parked  atomic.Int32
	stop    chan struct{} // closed by close: parked workers exit
	workers sync.WaitGroup
}

// growStack grows a new worker's stack, while it is one frame deep, to what
// a message handler needs (the reader goroutines of the portable side settle
// at 8 KiB). A goroutine starts with 2 KiB, and growing it from deep inside
// a handler — json.Unmarshal, say — copies and adjusts every frame on the
// way, once per doubling: in an echo load that was a fifth of the server's
// CPU.
//
//go:noinline
func growStack() {
	var frame [workerStack]byte
	stackSink(frame[:])
}

// workerStack is the stack space growStack reserves.
const workerStack = 6 << 10

//go:noinline
func stackSink(b []byte) { b[0] = 0 }

// dispatch gives pc, now busy, to a parked worker, or to a new one when
// none is waiting.
func (p *poller) dispatch(pc *pollConn) {
	select {
	case p.handoff <- pc:
	default:
		p.workers.Add(1)
		go p.worker(pc)
	}
}

// worker serves pc, then the connections handed to it, until there are
// enough parked workers or the poller closes.
func (p *poller) worker(pc *pollConn) {
	defer p.workers.Done()
	growStack()
	limit := int32(parkedPerPoller())
	for {
		pc.serve()
		if p.parked.Add(1) > limit {
			p.parked.Add(-1)
			return
		}
		select {
		case pc = <-p.handoff:
			p.parked.Add(-1)
		case <-p.stop:
			p.parked.Add(-1)
			return
		}
	}
}

// newPollSet creates n pollers (they start with start).
func newPollSet(h *Helper, n int) (*pollSet, error) {
	ps := &pollSet{}
	for range n {
		p, err := newPoller(h)
		if err != nil {
			ps.close()
			return nil, err
		}
		ps.pollers = append(ps.pollers, p)
	}
	return ps, nil
}

func newPoller(h *Helper) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("epoll descriptor: %w", err)
	}
	f := os.NewFile(uintptr(epfd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("epoll descriptor: %w", err)
	}
	return &poller{h: h, epfd: epfd, file: f, rc: rc, conns: make(map[uint64]*pollConn),
		handoff: make(chan *pollConn), stop: make(chan struct{})}, nil
}

// start runs each poller's loop in a goroutine of g.
func (ps *pollSet) start(g *group) bool {
	for _, p := range ps.pollers {
		if !g.tryGo(p.loop) {
			return false
		}
	}
	return true
}

// close ends the pollers' loops (and their epoll instances) and their
// parked workers. Every connection has ended by then, so no worker serves.
func (ps *pollSet) close() {
	for _, p := range ps.pollers {
		_ = p.file.Close()
		close(p.stop)
	}
	for _, p := range ps.pollers {
		p.workers.Wait()
	}
}

// add registers pc with the next poller, armed (edge-triggered, for the
// life of the socket: closing it unregisters it). It reports false when the
// socket cannot be polled (the caller then reads it the portable way).
func (ps *pollSet) add(pc *pollConn) bool {
	p := ps.pollers[int(ps.next.Add(1))%len(ps.pollers)]
	p.mu.Lock()
	p.seq++
	pc.p, pc.token = p, p.seq
	p.conns[pc.token] = pc
	p.mu.Unlock()
	pc.state.Store(pcArmed)
	var op pollOp
	op.init()
	if err := op.ctl(pc, unix.EPOLL_CTL_ADD); err != nil {
		p.h.logDebug("epoll registration failed", pc.c.id, err)
		p.remove(pc.token)
		return false
	}
	return true
}

// idleSince returns the registered connections from which nothing arrived
// since limit (unix nanoseconds).
func (ps *pollSet) idleSince(limit int64) []*pollConn {
	var out []*pollConn
	for _, p := range ps.pollers {
		p.mu.Lock()
		for _, pc := range p.conns {
			if pc.lastRead.Load() < limit {
				out = append(out, pc)
			}
		}
		p.mu.Unlock()
	}
	return out
}

// remove forgets token: a readiness event still on its way for it is
// ignored.
func (p *poller) remove(token uint64) {
	p.mu.Lock()
	delete(p.conns, token)
	p.mu.Unlock()
}

// pollEvents is how many readiness events one epoll_wait returns at most.
const pollEvents = 256

// loop waits for readiness and gives each ready connection a goroutine,
// until the epoll descriptor is closed.
func (p *poller) loop() {
	events := make([]unix.EpollEvent, pollEvents)
	ready := make([]*pollConn, 0, pollEvents)
	var n int
	var werr error
	wait := func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), events, 0)
		if werr == unix.EINTR {
			n, werr = 0, nil
		}
		return n > 0 || werr != nil // nothing yet: park until readable
	}
	for {
		if err := p.rc.Read(wait); err != nil {
			return // closed: Shutdown
		}
		if werr != nil {
			p.h.log.Error("epoll_wait failed: polled connections get no more input")
			return
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			if pc := p.conns[eventToken(&ev)]; pc != nil {
				if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
					pc.peerDone.Store(true)
				}
				ready = append(ready, pc)
			}
		}
		p.mu.Unlock()
		for i, pc := range ready {
			pc.ready()
			ready[i] = nil
		}
		ready = ready[:0]
	}
}

// pollOp carries the system calls of a busy goroutine through RawConn
// without allocating: its functions are bound once.
type pollOp struct {
	readFn func(fd uintptr) bool
	ctlFn  func(fd uintptr)
	buf    []byte
	n      int
	err    error
	epfd   int
	ctlOp  int
	ev     unix.EpollEvent
}

func (op *pollOp) init() {
	op.readFn = op.doRead
	op.ctlFn = op.doCtl
}

// read reads what the socket holds into b, never waiting: errWouldBlock
// when it holds nothing, io.EOF when the peer closed its side.
func (op *pollOp) read(rc syscall.RawConn, b []byte) (int, error) {
	op.buf = b
	err := rc.Read(op.readFn)
	n, rerr := op.n, op.err
	op.buf, op.n, op.err = nil, 0, nil
	switch {
	case err != nil:
		return 0, err
	case rerr == syscall.EAGAIN:
		return 0, errWouldBlock
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, errEOF
	}
	return n, nil
}

func (op *pollOp) doRead(fd uintptr) bool {
	for {
		// A read of at most readBufSize bytes from a socket that never
		// blocks is short: a raw system call, as the sends are (see
		// transport_linux.go).
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&op.buf[0])), uintptr(len(op.buf)))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			op.n, op.err = 0, e
		} else {
			op.n, op.err = int(r), nil
		}
		return true // never wait here: the poller does
	}
}

func (op *pollOp) ctl(pc *pollConn, how int) error {
	op.epfd, op.ctlOp = pc.p.epfd, how
	op.ev = unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET}
	setEventToken(&op.ev, pc.token)
	if err := pc.c.sock.rc.Control(op.ctlFn); err != nil {
		return err
	}
	err := op.err
	op.err = nil
	return err
}

func (op *pollOp) doCtl(fd uintptr) {
	op.err = unix.EpollCtl(op.epfd, op.ctlOp, int(fd), &op.ev)
}

// The token fills the 64 bits of epoll's user data, which x/sys/unix
// splits into Fd and Pad.
func setEventToken(ev *unix.EpollEvent, token uint64) {
	ev.Fd, ev.Pad = int32(uint32(token)), int32(uint32(token>>32))
}

func eventToken(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}
