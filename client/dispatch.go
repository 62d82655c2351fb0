package client

import (
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
)

// lifecycleSlack is how many lifecycle notices (disconnect, reconnect,
// refresh, …) the queue takes beyond Options.EventQueue: they are few, and
// dropping one would hide a state change from the app.
const lifecycleSlack = 64

// dispatcher runs the handlers on one goroutine, in order, from a bounded
// queue that the reader fills without ever waiting. The goroutine starts
// with the first item: a client whose frames go to OnFrame and that loses
// no connection never has one.
type dispatcher struct {
	log   *zap.Logger
	limit int

	mu        sync.Mutex
	q         []item
	frames    int  // items in q that are frames
	finishing bool // run delivers what is queued, then returns
	state     int  // idle, running or closed

	wake chan struct{} // capacity 1
	stop chan struct{} // closed by close: run returns after the current handler
	done chan struct{} // closed when run returns, or by close when it never ran
	// goid is the goroutine of run, so Close can tell a handler called
	// it; set before the first handler runs (reading a goroutine's id
	// costs a stack trace, which clients that never run a handler skip).
	goid atomic.Uint64
}

// The states of a dispatcher.
const (
	dispIdle    = iota // no goroutine yet
	dispRunning        // run was started; it closes done
	dispClosed         // closed before anything was queued; done is closed
)

type item struct {
	fn    func()
	frame bool
}

func newDispatcher(log *zap.Logger, limit int) *dispatcher {
	return &dispatcher{log: log, limit: limit, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
}

// push queues fn. A frame is refused (false) when Options.EventQueue frames
// are waiting; a lifecycle notice only when far more are.
func (d *dispatcher) push(fn func(), frame bool) bool {
	d.mu.Lock()
	if frame && d.frames >= d.limit || len(d.q) >= d.limit+lifecycleSlack {
		d.mu.Unlock()
		return false
	}
	if d.state == dispClosed {
		d.mu.Unlock()
		return true // Close drops what was not run anyway
	}
	d.q = append(d.q, item{fn: fn, frame: frame})
	if frame {
		d.frames++
	}
	start := d.state == dispIdle
	d.state = dispRunning
	d.mu.Unlock()
	if start {
		go d.run()
		return true
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return true
}

// notice queues a lifecycle notice, logging when even the slack is used up.
func (d *dispatcher) notice(what string, fn func()) {
	if !d.push(fn, false) {
		d.log.Warn("handler queue full: notice dropped", zap.String("notice", what))
	}
}

// finish makes run return once the queue is empty (the Client stopped for
// good: the app still gets what was queued and the last OnDisconnect).
func (d *dispatcher) finish() {
	d.mu.Lock()
	d.finishing = true
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// close stops run after the current handler (Close) and returns the
// channel closed once it has returned.
func (d *dispatcher) close() <-chan struct{} {
	close(d.stop)
	d.mu.Lock()
	if d.state == dispIdle {
		d.state = dispClosed
		close(d.done)
	}
	d.mu.Unlock()
	return d.done
}

func (d *dispatcher) run() {
	defer close(d.done)
	for {
		d.mu.Lock()
		if len(d.q) == 0 {
			fin := d.finishing
			d.q = d.q[:0:0] // let a burst's backing array go
			d.mu.Unlock()
			if fin {
				return
			}
			select {
			case <-d.wake:
			case <-d.stop:
				return
			}
			continue
		}
		it := d.q[0]
		d.q[0] = item{}
		d.q = d.q[1:]
		if it.frame {
			d.frames--
		}
		d.mu.Unlock()
		select {
		case <-d.stop:
			return
		default:
		}
		d.call(it.fn)
	}
}

func (d *dispatcher) call(fn func()) {
	if d.goid.Load() == 0 {
		d.goid.Store(goid())
	}
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("handler panicked", zap.Any("panic", p), zap.Stack("stack"))
		}
	}()
	fn()
}

// inHandler reports whether the caller runs on the handler goroutine. Only
// a handler can call from there, and goid is set before the first one.
func (d *dispatcher) inHandler() bool {
	id := d.goid.Load()
	return id != 0 && goid() == id
}

// goid returns the current goroutine's id from the first line of its stack
// ("goroutine 42 [running]:"). Only Close uses it, to tell whether a
// handler called it: waiting for the handler goroutine from inside a
// handler would deadlock, and handlers calling Close is common enough
// ("close on this event") to support rather than forbid.
func goid() uint64 {
	var buf [64]byte
	s := strings.TrimPrefix(string(buf[:runtime.Stack(buf[:], false)]), "goroutine ")
	if i := strings.IndexByte(s, ' '); i > 0 {
		s = s[:i]
	}
	id, _ := strconv.ParseUint(s, 10, 64)
	return id
}
