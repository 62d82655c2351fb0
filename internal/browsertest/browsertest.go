//go:build linux

// Package browsertest runs headless Chromium for the browser tests
// (server/encryption's and the JS client's): one process group per page,
// nothing reachable but 127.0.0.1, and every process and profile removed
// when the test ends.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Path is Debian's chromium package (apt-get install chromium).
const Path = "/usr/bin/chromium"

// reapTimeout bounds the wait for Chromium's processes to die.
const reapTimeout = 5 * time.Second

// Browser is one headless Chromium run in its own process group.
type Browser struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error // set before exited is closed
}

// Start opens pageURL in a fresh headless Chromium and registers a
// cleanup that kills its whole process group and removes its profile.
func Start(t testing.TB, pageURL string) *Browser {
	t.Helper()
	profile, err := os.MkdirTemp("", "wscomponent-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "chromium.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	cmd := exec.Command(Path,
		"--headless",
		"--no-sandbox",
		"--disable-gpu",
		"--disable-background-networking",
		"--disable-quic",
		"--no-first-run",
		"--disable-component-update",
		"--disable-sync",
		// Small container /dev/shm mounts crash the renderer otherwise.
		"--disable-dev-shm-usage",
		// Nothing but the test server: any host name fails to resolve.
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--user-data-dir="+profile,
		pageURL,
	)
	cmd.Env = append(os.Environ(), "HOME="+profile, "XDG_CONFIG_HOME="+profile, "XDG_CACHE_HOME="+profile)
	cmd.Stdout = logFile // an *os.File: no copying goroutines to leak
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(profile)
		t.Fatalf("start chromium: %v", err)
	}
	b := &Browser{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		b.err = cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		pgid := cmd.Process.Pid // Setpgid: the group id is the leader's pid
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-b.exited
		if err := waitGroupGone(pgid, reapTimeout); err != nil {
			t.Logf("chromium: %v", err)
		}
		if err := os.RemoveAll(profile); err != nil {
			t.Errorf("remove chromium profile: %v", err)
		}
	})
	return b
}

// waitGroupGone waits until no process of group pgid is left. Killed
// children are reaped by init, not by us, so this polls until a deadline.
func waitGroupGone(pgid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Kill(-pgid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process group %d still has members after %v (%v)", pgid, timeout, err)
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		time.Sleep(20 * time.Millisecond)
	}
}

// LogTail returns the end of Chromium's output, for failure messages.
func (b *Browser) LogTail() string {
	data, err := os.ReadFile(b.logPath)
	if err != nil {
		return "(no chromium log: " + err.Error() + ")"
	}
	const max = 4096
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return "chromium output:\n" + string(data)
}

// Exited is closed when the browser process has ended.
func (b *Browser) Exited() <-chan struct{} { return b.exited }

// Err is how the browser process ended; valid once Exited is closed.
func (b *Browser) Err() error { return b.err }

// Report is what a test page posts back: the stage it reached, or "error"
// with a message.
type Report interface {
	PageStage() (stage, message string)
}

// Await returns the next report, which must be stage. An "error" report,
// another stage, Chromium exiting or ctx ending fails t.
func Await[R Report](t testing.TB, ctx context.Context, b *Browser, reports <-chan R, stage string) R {
	t.Helper()
	var zero R
	select {
	case rep := <-reports:
		got, msg := rep.PageStage()
		if got == "error" {
			t.Fatalf("page reported an error: %s", msg)
		}
		if got != stage {
			t.Fatalf("page reported %+v, want stage %q", rep, stage)
		}
		return rep
	case <-b.Exited():
		t.Fatalf("chromium exited early: %v\n%s", b.Err(), b.LogTail())
	case <-ctx.Done():
		t.Fatalf("no %q report from the page in time (%v)\n%s", stage, ctx.Err(), b.LogTail())
	}
	return zero
}
