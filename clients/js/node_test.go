//go:build linux

package js_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// scriptDeadline bounds one script file, all its tests included.
const scriptDeadline = 90 * time.Second

// nodeBinary is the node that runs the scripts: $WSCOMPONENT_NODE, else
// Debian's nodejs. Node 18 (bookworm's) and later work: testdata/node-env.mjs
// supplies the WebSocket and crypto globals an older Node lacks.
func nodeBinary() string {
	if p := os.Getenv("WSCOMPONENT_NODE"); p != "" {
		return p
	}
	return "/usr/bin/node"
}

var (
	nodeFlagsOnce sync.Once
	nodeFlags     []string
)

// optionalNodeFlags returns the flags of interest that node accepts, probed
// once: --experimental-websocket (Node 20.10–21 have the WHATWG WebSocket
// only behind it, 22+ accept it; without it node-env.mjs's shim stands in)
// and --test-timeout (not in Node 18; scriptDeadline bounds the run anyway).
func optionalNodeFlags(node string) []string {
	nodeFlagsOnce.Do(func() {
		for _, f := range []string{"--experimental-websocket", "--test-timeout=60000"} {
			if exec.Command(node, f, "-e", "0").Run() == nil {
				nodeFlags = append(nodeFlags, f)
			}
		}
	})
	return nodeFlags
}

// runNode runs one node:test script of testdata/ against ts and fails t
// with the script's output when any of its tests fails.
func runNode(t *testing.T, ts *testServer, script string) {
	t.Helper()
	node := nodeBinary()
	requireFile(t, node, "apt-get install -y --no-install-recommends nodejs")
	ctx, cancel := context.WithTimeout(context.Background(), scriptDeadline)
	defer cancel()
	flags := optionalNodeFlags(node)
	args := append(append([]string(nil), flags...), "--test", "--test-reporter=spec", filepath.Join("testdata", script))
	cmd := exec.CommandContext(ctx, node, args...)
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
	t.Logf("%s (%s %v):\n%s", script, node, flags, out.String())
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
