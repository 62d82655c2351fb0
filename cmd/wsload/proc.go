package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procSample is what /proc tells about a server process at one moment.
type procSample struct {
	cpu time.Duration // utime + stime, in clock ticks (10 ms)
	// sched is the time on CPU of the process's threads from
	// /proc/PID/task/*/schedstat, in nanoseconds; schedOK is false when
	// the kernel does not provide it. Threads that have exited are missing
	// from it (the Go runtime rarely ends threads).
	sched   time.Duration
	schedOK bool
	rss     int64 // VmRSS in bytes
}

// clockTicks is the unit of utime and stime in /proc/PID/stat.
var clockTicks = readClockTicks()

// readClockTicks reads AT_CLKTCK from the auxiliary vector (what
// sysconf(_SC_CLK_TCK) returns); 100, Linux's USER_HZ, if that fails.
func readClockTicks() int64 {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	for len(b) >= 16 {
		k := binary.NativeEndian.Uint64(b)
		v := binary.NativeEndian.Uint64(b[8:])
		if k == atClkTck && v > 0 {
			return int64(v)
		}
		if k == 0 {
			break
		}
		b = b[16:]
	}
	return 100
}

// sampleProc reads the CPU time and resident set size of pid.
func sampleProc(pid int) (procSample, error) {
	var s procSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return s, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	s.cpu = cpu
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	rss, err := parseVmRSS(status)
	if err != nil {
		return s, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	s.rss = rss
	s.sched, s.schedOK = schedTime(pid)
	return s, nil
}

// schedTime sums the first field of /proc/PID/task/*/schedstat.
func schedTime(pid int) (time.Duration, bool) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, false
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the thread ended meanwhile
			}
			return 0, false
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			return 0, false
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		sum += ns
	}
	return time.Duration(sum), true
}

// parseStatCPU returns utime+stime from the content of /proc/PID/stat.
// The command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command field")
	}
	// After ")": field 3 (state) is index 0, utime (14) is 11, stime (15) is 12.
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("too few fields")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration((ut + st) * int64(time.Second) / clockTicks), nil
}

// parseVmRSS returns VmRSS in bytes from the content of /proc/PID/status.
func parseVmRSS(status []byte) (int64, error) {
	for line := range strings.SplitSeq(string(status), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("odd VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		return kb * 1024, err
	}
	return 0, errors.New("no VmRSS line (kernel thread or zombie?)")
}

// procSet samples every server process given with -pid.
type procSet struct {
	pids []int
}

// sample reads every process; a failure is an error, since numbers with a
// process missing would be wrong without saying so.
func (p procSet) sample() ([]procSample, error) {
	out := make([]procSample, len(p.pids))
	for i, pid := range p.pids {
		s, err := sampleProc(pid)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}
