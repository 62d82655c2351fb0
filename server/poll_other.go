//go:build !linux

package server

import "syscall"

// pollSupported tells whether this platform has the event-driven read side:
// not here, every connection is read by a goroutine of its own.
const pollSupported = false

type pollSet struct{}

type poller struct{ h *Helper }

func newPollSet(*Helper, int) (*pollSet, error) { return nil, errPollUnsupported }

func (*pollSet) start(*group) bool           { return true }
func (*pollSet) close()                      {}
func (*pollSet) idleSince(int64) []*pollConn { return nil }
func (*pollSet) add(*pollConn) bool          { return false }
func (*poller) remove(uint64)                {}
func (*poller) dispatch(*pollConn)           {}

type pollOp struct{}

func (*pollOp) init()                                     {}
func (*pollOp) read(syscall.RawConn, []byte) (int, error) { return 0, errPollUnsupported }
