//go:build linux && !386

package server

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// tryWrite sends bufs on the socket, which Go keeps non-blocking, and never
// waits for it: one sendto for one buffer (a fan-out frame), one sendmsg
// for several.
func (s *socket) tryWrite(bufs [][]byte) (int, error) {
	if s.rc == nil {
		return 0, errWouldBlock // not TCP: the writer goroutine writes
	}
	op := sendOps.Get().(*sendOp)
	op.bufs = bufs
	err := s.rc.Write(op.fn)
	n, werr := op.n, op.err
	op.bufs, op.n, op.err = nil, 0, nil
	sendOps.Put(op)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// A deadline the writer goroutine set has passed (it clears
		// them, so this is a leftover): let it set a new one.
		return 0, errWouldBlock
	case err != nil:
		werr = err
	case werr == syscall.EAGAIN:
		return n, errWouldBlock
	}
	if werr != nil {
		s.h.logDebug("write failed", s.id, werr)
	}
	return n, werr
}

// sendOp carries one tryWrite through RawConn.Write without allocating:
// fn is bound once per pooled op.
type sendOp struct {
	fn   func(fd uintptr) bool
	bufs [][]byte
	n    int
	err  error
}

var sendOps = sync.Pool{New: func() any {
	op := &sendOp{}
	op.fn = op.send
	return op
}}

func (op *sendOp) send(fd uintptr) bool {
	op.n, op.err = sendBufs(int(fd), op.bufs)
	return true // never wait for the socket: the writer goroutine does
}

// maxIovecs is how many buffers one sendmsg takes here.
const maxIovecs = 64

// sendBufs writes bufs in order until the socket takes less than offered.
func sendBufs(fd int, bufs [][]byte) (int, error) {
	if len(bufs) == 1 {
		return sendto(fd, bufs[0])
	}
	total := 0
	for len(bufs) > 0 {
		var iov [maxIovecs]syscall.Iovec
		k, used, want := 0, 0, 0
		for _, b := range bufs {
			if k == maxIovecs {
				break
			}
			used++
			if len(b) == 0 {
				continue
			}
			iov[k].Base = &b[0]
			iov[k].SetLen(len(b))
			want += len(b)
			k++
		}
		bufs = bufs[used:]
		if k == 0 {
			continue
		}
		n, err := sendmsg(fd, iov[:k], want)
		total += n
		if err != nil || n < want {
			return total, err
		}
	}
	return total, nil
}

// The sends below never wait: Go keeps the socket non-blocking. Small ones
// are made as raw system calls, without telling the runtime: on a single
// core, a goroutine that sends back to back would otherwise be seen in a
// system call on most of sysmon's 20 µs ticks, its P handed to another
// thread (futex wake-ups, context switches) and taken back afterwards.
// What the kernel does in a send (copying, and on loopback the receiver's
// side too) is work the P would wait for anyway. Large sends, which may
// copy for longer, tell the runtime, so that the garbage collector never
// waits long for this thread.

// rawSendMax is the largest send made as a raw system call.
const rawSendMax = 64 << 10

func sendto(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n := uintptr(len(b))
	for {
		var r uintptr
		var e syscall.Errno
		// The pointer conversions stay inside the calls, which keeps b
		// alive while the kernel reads it.
		if len(b) <= rawSendMax {
			r, _, e = syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), n, syscall.MSG_NOSIGNAL, 0, 0)
		} else {
			r, _, e = syscall.Syscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), n, syscall.MSG_NOSIGNAL, 0, 0)
		}
		switch e {
		case 0:
			return int(r), nil
		case syscall.EINTR:
			continue
		}
		return 0, e
	}
}

func sendmsg(fd int, iov []syscall.Iovec, size int) (int, error) {
	var msg syscall.Msghdr
	msg.Iov = &iov[0]
	setLen(&msg.Iovlen, len(iov))
	for {
		var r uintptr
		var e syscall.Errno
		if size <= rawSendMax {
			r, _, e = syscall.RawSyscall(syscall.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), syscall.MSG_NOSIGNAL)
		} else {
			r, _, e = syscall.Syscall(syscall.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), syscall.MSG_NOSIGNAL)
		}
		switch e {
		case 0:
			return int(r), nil
		case syscall.EINTR:
			continue
		}
		return 0, e
	}
}

// setLen sets a length field whose type depends on the architecture.
func setLen[T ~uint32 | ~uint64](p *T, n int) { *p = T(n) }
