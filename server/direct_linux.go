//go:build linux

package server

import (
	"syscall"
	"unsafe"
)

// writevNow writes header and payload with one non-blocking writev. It
// returns syscall.EAGAIN when the socket takes nothing right now.
func writevNow(rc syscall.RawConn, header, payload []byte) (int, error) {
	var n int
	var werr error
	iov := [2]syscall.Iovec{{Base: &header[0]}, {}}
	iov[0].SetLen(len(header))
	cnt := 1
	if len(payload) > 0 {
		iov[1].Base = &payload[0]
		iov[1].SetLen(len(payload))
		cnt = 2
	}
	err := rc.Write(func(fd uintptr) bool {
		for {
			r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(cnt))
			if e == syscall.EINTR {
				continue
			}
			if e != 0 {
				werr = e
			} else {
				n = int(r)
			}
			return true // never wait for the socket: the writer does that
		}
	})
	if err != nil {
		return 0, err
	}
	return n, werr
}
