// Package redistest starts real redis-server processes for tests: one server
// per test (Start, or StartWith for a password or extra arguments), one per
// test binary (StartMain), a Sentinel watching a server (StartSentinel) and a
// small Redis Cluster (StartCluster).
//
// Servers listen on free 127.0.0.1 ports, keep nothing on disk (no RDB, no
// AOF) and are SIGKILLed on cleanup, also when the test fails. Readiness is a
// PING polled until a deadline, never a fixed sleep. On Linux a server also
// dies with the test binary (parent-death signal), so a test that times out
// leaves no orphan behind.
//
// The helpers need the redis-server binary (7.0 or newer for clusters):
// `bash scripts/test.sh` (what .ci/run runs) installs it on Debian, as does
// `apt-get install -y redis-server`.
//
// Each running process has one goroutine blocked in exec.Cmd.Wait; it ends
// with the process. Servers from Start are stopped by test cleanups, before
// goleak.VerifyTestMain looks for leaks. A StartMain server must be stopped
// before the leak check too, so such a package writes its TestMain as:
//
//	func TestMain(m *testing.M) {
//		srv, err := redistest.StartMain()
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		shared = srv
//		code := m.Run()
//		srv.Stop()
//		if code == 0 {
//			if err := goleak.Find(); err != nil {
//				fmt.Fprintln(os.Stderr, err)
//				code = 1
//			}
//		}
//		os.Exit(code)
//	}
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// binaryName is looked up on PATH; fallbackBinary is where Debian puts it.
	binaryName     = "redis-server"
	fallbackBinary = "/usr/bin/redis-server"

	// startTimeout bounds how long one server may take to answer PING.
	startTimeout = 15 * time.Second
	// pollInterval is the pause between two readiness probes.
	pollInterval = 10 * time.Millisecond
	// probeTimeout bounds one PING probe (dial, write and read).
	probeTimeout = 500 * time.Millisecond
	// startAttempts is how often a fresh server is tried on new ports when
	// the process exits before it is ready (most often: another process took
	// the free port between our probe and redis-server's bind).
	startAttempts = 5
	// logTail is how much of a server's log an error message quotes.
	logTail = 2048
	// defaultNodeTimeout is a cluster node's --cluster-node-timeout unless
	// StartClusterWith sets another.
	defaultNodeTimeout = 2 * time.Second
)

// mode is what kind of redis-server process a Server runs.
type mode int

const (
	modeStandalone mode = iota
	modeCluster
	modeSentinel
)

// Server is one redis-server process on 127.0.0.1. Its methods are safe for
// concurrent use.
type Server struct {
	bin     string
	mode    mode
	dir     string
	ownsDir bool // StartMain made dir and Stop removes it

	// sentinel only: the master it watches, the quorum (0: 1) and more
	// sentinel.conf lines for that master (StartSentinelGroup).
	masterName   string
	masterAddr   string
	quorum       int
	sentinelConf []string

	// nodeTimeout is the cluster node's --cluster-node-timeout (0: 2 s).
	nodeTimeout time.Duration

	// password, if set, is passed as --requirepass; extra are more
	// command-line arguments (StartWith).
	password string
	extra    []string

	mu      sync.Mutex
	port    int
	busPort int // cluster only
	proc    *process
}

// process is one run of redis-server. done is closed once Wait has returned.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// exitedError reports a process that ended before it answered PING.
type exitedError struct {
	log string
}

func (e *exitedError) Error() string {
	return "redistest: redis-server exited before it was ready; log:\n" + e.log
}

// Start starts a standalone redis-server for tb and stops it when tb's
// cleanups run. A missing binary or a server that does not come up fails tb.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := newServer(tb, modeStandalone)
	if err := s.startFresh(); err != nil {
		tb.Fatal(err)
	}
	return s
}

// Options are the settings StartWith gives a standalone server. The zero
// value is what Start runs.
type Options struct {
	// Password is set with --requirepass: the default user needs it
	// (AUTH). Client and URL include it; readiness probes authenticate.
	// Default: none.
	Password string
	// Args are extra redis-server arguments appended to the command line,
	// e.g. []string{"--databases", "4"}. Default: none.
	Args []string
}

// StartWith starts a standalone redis-server configured by opts for tb and
// stops it when tb's cleanups run, like Start.
func StartWith(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := newServer(tb, modeStandalone)
	s.password = opts.Password
	s.extra = append([]string(nil), opts.Args...)
	if err := s.startFresh(); err != nil {
		tb.Fatal(err)
	}
	return s
}

// StartMain starts a standalone redis-server for a whole test binary, to be
// called from TestMain. The caller owns it and must call Stop (see the
// package doc for the pattern with goleak).
func StartMain() (*Server, error) {
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, fmt.Errorf("redistest: temp dir: %w", err)
	}
	s := &Server{bin: bin, mode: modeStandalone, dir: dir, ownsDir: true}
	if err := s.startFresh(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// StartSentinel starts a Redis Sentinel that monitors master under
// masterName with a quorum of 1, and stops it when tb's cleanups run. It
// returns once the Sentinel answers PING and knows the master's address.
func StartSentinel(tb testing.TB, master *Server, masterName string) *Server {
	tb.Helper()
	if masterName == "" {
		tb.Fatal("redistest: StartSentinel needs a master name")
	}
	s := newServer(tb, modeSentinel)
	s.masterName = masterName
	s.masterAddr = master.Addr()
	if err := s.startFresh(); err != nil {
		tb.Fatal(err)
	}
	c := s.Client(tb)
	want := []string{"127.0.0.1", strconv.Itoa(master.port)}
	err := pollUntil(startTimeout, func(ctx context.Context) error {
		got, err := c.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName).StringSlice()
		if err != nil {
			return err
		}
		if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			return fmt.Errorf("master address is %v, want %v", got, want)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("redistest: sentinel on %s does not know master %q: %v", s.Addr(), masterName, err)
	}
	return s
}

// newServer prepares a Server for tb: a temp dir that outlives the process
// (tb.TempDir's cleanup is registered first, so it runs after Stop) and the
// cleanup that stops the process.
func newServer(tb testing.TB, m mode) *Server {
	tb.Helper()
	bin, err := binary()
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{bin: bin, mode: m, dir: tb.TempDir()}
	tb.Cleanup(s.Stop)
	return s
}

// binary finds the redis-server executable.
func binary() (string, error) {
	if p, err := exec.LookPath(binaryName); err == nil {
		return p, nil
	}
	if _, err := os.Stat(fallbackBinary); err == nil {
		return fallbackBinary, nil
	}
	return "", errors.New("redistest: redis-server not found on PATH or at " + fallbackBinary +
		"; run .ci/run (or bash scripts/test.sh), or apt-get install -y redis-server")
}

// Addr returns the server's "127.0.0.1:port".
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrLocked()
}

func (s *Server) addrLocked() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL returns the server as a redis:// URL selecting database 0, with the
// password of StartWith if there is one.
func (s *Server) URL() string {
	if s.password != "" {
		u := url.URL{Scheme: "redis", User: url.UserPassword("", s.password), Host: s.Addr(), Path: "/0"}
		return u.String()
	}
	return "redis://" + s.Addr() + "/0"
}

// Password returns the password the server was started with (StartWith),
// or "".
func (s *Server) Password() string {
	return s.password
}

// Client returns a go-redis client for the server, closed when tb's cleanups
// run.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.password})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill sends SIGKILL to the server and waits until the process has exited.
// The server can be brought back with Restart. Killing a stopped server does
// nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

func (s *Server) killLocked() {
	if s.proc == nil {
		return
	}
	// Kill fails only when the process has already exited; Wait has then
	// returned or is about to, and done is closed either way.
	_ = s.proc.cmd.Process.Kill()
	<-s.proc.done
	s.proc = nil
}

// Restart starts the server again on the same port (and, for a cluster
// node, the same bus port and node config), killing it first if it is still
// running, and returns once it answers PING. It fails tb if the server does
// not come back.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
	deadline := time.Now().Add(startTimeout)
	for {
		err := s.runLocked(deadline)
		if err == nil {
			return
		}
		var exited *exitedError
		// The port can stay busy for a moment after a kill (another test
		// may also have grabbed it); try again until the deadline.
		if !errors.As(err, &exited) || time.Now().After(deadline) {
			tb.Fatalf("redistest: restart on %s: %v", s.addrLocked(), err)
		}
		time.Sleep(pollInterval) // back-off between two attempts, not a wait for an event
	}
}

// Stop kills the server, waits for it to exit and, for a StartMain server,
// removes its temp dir. It is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
	if s.ownsDir {
		_ = os.RemoveAll(s.dir)
		s.ownsDir = false
	}
}

// startFresh starts the server on new free ports, trying again on other
// ports when the process exits before it is ready.
func (s *Server) startFresh() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	for range startAttempts {
		if s.port, err = freePort(); err != nil {
			return err
		}
		if s.mode == modeCluster {
			if s.busPort, err = freePort(); err != nil {
				return err
			}
		}
		if s.mode == modeSentinel {
			if err = s.writeSentinelConfig(); err != nil {
				return err
			}
		}
		err = s.runLocked(time.Now().Add(startTimeout))
		var exited *exitedError
		if err == nil || !errors.As(err, &exited) {
			return err
		}
	}
	return err
}

// args is the command line for the current ports.
func (s *Server) args() []string {
	var args []string
	if s.mode == modeSentinel {
		// Sentinel reads (and rewrites) its config file, given first.
		args = append(args, s.sentinelConfigPath(), "--sentinel")
	}
	args = append(args,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", "",
	)
	if s.mode != modeSentinel {
		args = append(args, "--save", "", "--appendonly", "no")
	}
	if s.password != "" {
		args = append(args, "--requirepass", s.password)
	}
	if s.mode == modeCluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			"--cluster-node-timeout", strconv.FormatInt(s.clusterNodeTimeout().Milliseconds(), 10),
			"--cluster-port", strconv.Itoa(s.busPort),
		)
	}
	return append(args, s.extra...)
}

// clusterNodeTimeout is the node timeout of a cluster node.
func (s *Server) clusterNodeTimeout() time.Duration {
	if s.nodeTimeout > 0 {
		return s.nodeTimeout
	}
	return defaultNodeTimeout
}

func (s *Server) sentinelConfigPath() string {
	return filepath.Join(s.dir, "sentinel.conf")
}

func (s *Server) writeSentinelConfig() error {
	host, port, err := net.SplitHostPort(s.masterAddr)
	if err != nil {
		return fmt.Errorf("redistest: master address %q: %w", s.masterAddr, err)
	}
	quorum := max(s.quorum, 1)
	conf := fmt.Sprintf("sentinel monitor %s %s %s %d\n", s.masterName, host, port, quorum)
	for _, line := range s.sentinelConf {
		conf += line + "\n"
	}
	if err := os.WriteFile(s.sentinelConfigPath(), []byte(conf), 0o600); err != nil {
		return fmt.Errorf("redistest: sentinel config: %w", err)
	}
	return nil
}

func (s *Server) logPath() string {
	return filepath.Join(s.dir, "redis.log")
}

// runLocked starts one process with the current ports and waits until it
// answers PING, it exits (*exitedError) or deadline passes (the process is
// then killed). s.mu must be held.
func (s *Server) runLocked(deadline time.Time) error {
	logFile, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("redistest: log file: %w", err)
	}
	cmd := exec.Command(s.bin, s.args()...)
	// An *os.File is handed to the child as is, so exec starts no copying
	// goroutine and the log survives the process for error messages.
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	_ = logFile.Close() // the child has its own descriptor now
	if err != nil {
		return fmt.Errorf("redistest: start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	s.proc = p

	addr := s.addrLocked()
	for {
		if pingAuth(addr, s.password) == nil {
			return nil
		}
		select {
		case <-p.done:
			s.proc = nil
			return &exitedError{log: s.tail()}
		default:
		}
		if time.Now().After(deadline) {
			s.killLocked()
			return fmt.Errorf("redistest: redis-server on %s did not answer PING within %v; log:\n%s",
				addr, startTimeout, s.tail())
		}
		select {
		case <-p.done:
		case <-time.After(pollInterval):
		}
	}
}

// tail returns the end of the server's log.
func (s *Server) tail() string {
	f, err := os.Open(s.logPath())
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > logTail {
		_, _ = f.Seek(-logTail, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// pingOnce sends one RESP PING to addr and expects +PONG. It speaks the
// protocol directly so that readiness probes start no client goroutines.
func pingOnce(addr string) error {
	return pingAuth(addr, "")
}

// pingAuth is pingOnce that first sends AUTH password (and expects +OK)
// when password is not empty.
func pingAuth(addr, password string) error {
	conn, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(probeTimeout)); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	if password != "" {
		auth := fmt.Sprintf("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password)
		if _, err := io.WriteString(conn, auth); err != nil {
			return err
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if line != "+OK\r\n" {
			return fmt.Errorf("redistest: AUTH answered %q", strings.TrimSpace(line))
		}
	}
	if _, err := io.WriteString(conn, "*1\r\n$4\r\nPING\r\n"); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("redistest: PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// freePort asks the kernel for a free TCP port on 127.0.0.1. The port is
// free when this returns, not guaranteed later; startFresh retries.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redistest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pollUntil calls check until it returns nil or timeout passes; it returns
// the last error then. Each call gets a context bounded by the deadline.
func pollUntil(timeout time.Duration, check func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-ticker.C:
		}
	}
}
