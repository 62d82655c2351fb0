//go:build linux

package js_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const (
	// nodePath is Debian's nodejs; the scripts need Node ≥ 20.
	nodePath = "/usr/bin/node"
	// scriptDeadline bounds one script file, all its tests included.
	scriptDeadline = 90 * time.Second
)

// runNode runs one node:test script of testdata/ against ts and fails t
// with the script's output when any of its tests fails.
func runNode(t *testing.T, ts *testServer, script string) {
	t.Helper()
	requireFile(t, nodePath, "apt-get install -y --no-install-recommends nodejs")
	ctx, cancel := context.WithTimeout(context.Background(), scriptDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodePath,
		// Node 20 has the WHATWG WebSocket behind this flag; 22 and later
		// have it on by default and accept the flag.
		"--experimental-websocket",
		"--test", "--test-reporter=spec", "--test-timeout=60000",
		filepath.Join("testdata", script))
	cmd.Env = append(os.Environ(), ts.env()...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// node --test runs the file in a child process: kill the whole group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %v:\n%s", script, scriptDeadline, out.String())
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out.String())
	}
	t.Logf("%s:\n%s", script, out.String())
}

// TestNodeClient: connect and authenticate (a callback per connection, 4003
// stops), join/leave acks with refusals, requests answered by reply, by
// ClientError, by "Internal error" and by a timeout, application events,
// the presence request and events, heartbeats (a silent client gets 4002 and
// reconnects), session-expiring → refresh → refreshed, a refused refresh and
// 4006, server-decided closes that stop reconnecting.
func TestNodeClient(t *testing.T) {
	runNode(t, startServer(t, serverMode{}), "client.test.mjs")
}

// TestNodeReconnect: the server restarts mid-session (down for a while, so
// attempts fail) and the client re-authenticates, rejoins its rooms (told
// they were not recovered), sends what was requested meanwhile, and gets
// room messages again; the server's Redis is killed and brought back and
// the rooms keep working.
func TestNodeReconnect(t *testing.T) {
	runNode(t, startServer(t, serverMode{}), "reconnect.test.mjs")
}

// TestNodeEncryption: the client against a RequireEncryption server with
// server/encryption's Pair: pinned handshake, encrypted requests, replies,
// acks and room messages, a wrong pin and a plaintext client refused, and a
// restart with a fresh key.
func TestNodeEncryption(t *testing.T) {
	runNode(t, startServer(t, serverMode{encrypted: true}), "encryption.test.mjs")
}
