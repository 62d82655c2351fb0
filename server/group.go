package server

import (
	"context"
	"sync"
)

// group counts goroutines so that Shutdown can wait for all of them. Unlike a
// sync.WaitGroup it can refuse new members once stopping has begun, which is
// what lets connections keep arriving while Wait runs.
type group struct {
	mu      sync.Mutex
	n       int
	stopped bool
	idle    chan struct{}
}

// enter counts the calling goroutine; it fails once stop was called.
func (g *group) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return false
	}
	g.n++
	return true
}

// enterAlways counts a goroutine started by one that is already counted, so
// it cannot race with the count reaching zero.
func (g *group) enterAlways() {
	g.mu.Lock()
	g.n++
	g.mu.Unlock()
}

func (g *group) leave() {
	g.mu.Lock()
	g.n--
	if g.n == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
	g.mu.Unlock()
}

// goAlways runs f in a goroutine counted by g. The caller must itself be
// counted by g (or g must not be stopping).
func (g *group) goAlways(f func()) {
	g.enterAlways()
	go func() {
		defer g.leave()
		f()
	}()
}

// tryGo runs f in a counted goroutine unless g is stopping.
func (g *group) tryGo(f func()) bool {
	if !g.enter() {
		return false
	}
	go func() {
		defer g.leave()
		f()
	}()
	return true
}

// stop refuses new members.
func (g *group) stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
}

// wait blocks until no goroutine is counted or ctx ends.
func (g *group) wait(ctx context.Context) error {
	g.mu.Lock()
	if g.n == 0 {
		g.mu.Unlock()
		return nil
	}
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	ch := g.idle
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
