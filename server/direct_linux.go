//go:build linux

package server

import "syscall"

// writeNow writes b with one non-blocking write. It returns
// syscall.EAGAIN when the socket takes nothing right now.
func writeNow(rc syscall.RawConn, b []byte) (int, error) {
	var n int
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for {
			r, e := syscall.Write(int(fd), b)
			if e == syscall.EINTR {
				continue
			}
			if e != nil {
				werr = e
			} else {
				n = r
			}
			return true // never wait for the socket: the writer does that
		}
	})
	if err != nil {
		return 0, err
	}
	return n, werr
}
