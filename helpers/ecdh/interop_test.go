package ecdh

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The messages of testdata/webcrypto_interop.mjs, in the order it sends or
// reads them; its header comment is the protocol. encoding/json writes
// []byte as standard base64, the wire encoding, and nil as null.
type (
	nodeHello struct {
		Error           string `json:"error"`
		ClientPublicKey string `json:"clientPublicKey"`
	}
	goMessage struct {
		Plaintext []byte `json:"plaintext"`
		AAD       []byte `json:"aad"`
		Sealed    Sealed `json:"sealed"`
	}
	goConnected struct {
		ServerPublicKey string      `json:"serverPublicKey"`
		Salt            string      `json:"salt"`
		Messages        []goMessage `json:"messages"`
	}
	nodeMessage struct {
		Opened           []byte `json:"opened"`
		Sealed           Sealed `json:"sealed"`
		RejectedWrongAAD bool   `json:"rejectedWrongAAD"`
		RejectedTampered bool   `json:"rejectedTampered"`
	}
	nodeResult struct {
		Error        string        `json:"error"`
		SharedSecret []byte        `json:"sharedSecret"`
		Key          []byte        `json:"key"`
		Messages     []nodeMessage `json:"messages"`
	}
)

// webCryptoPeer is a running webcrypto_interop.mjs.
type webCryptoPeer struct {
	tb     testing.TB
	cmd    *exec.Cmd
	cancel context.CancelFunc
	stdin  io.WriteCloser
	stdout *json.Decoder
	stderr bytes.Buffer
}

// startWebCrypto starts the node side of the handshake. A missing node is a
// failure, not a skip: CI installs it, and a silently skipped interop test
// would hide a break with the browser client.
func startWebCrypto(tb testing.TB) *webCryptoPeer {
	tb.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		tb.Fatalf("the WebCrypto interop test needs node (v20 or later) on PATH: %v", err)
	}
	// The deadline bounds every read below: when it fires node is killed and
	// the pipe reads end, so a hung script cannot hang the test.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	p := &webCryptoPeer{tb: tb, cancel: cancel}
	p.cmd = exec.CommandContext(ctx, node, filepath.Join("testdata", "webcrypto_interop.mjs"))
	p.cmd.Stderr = &p.stderr
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	p.stdout = json.NewDecoder(stdout)
	if err := p.cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("start node: %v", err)
	}
	tb.Cleanup(func() {
		cancel()
		_ = p.cmd.Wait()
	})
	return p
}

// read decodes node's next line into v, failing with node's stderr.
func (p *webCryptoPeer) read(v any, nodeErr func() string) {
	p.tb.Helper()
	err := p.stdout.Decode(v)
	if err == nil && nodeErr() == "" {
		return
	}
	p.cancel()
	waitErr := p.cmd.Wait()
	p.tb.Fatalf("node webcrypto_interop.mjs failed: decode %v, exit %v\nerror: %s\nstderr: %s",
		err, waitErr, nodeErr(), p.stderr.String())
}

func TestWebCryptoInterop(t *testing.T) {
	node := startWebCrypto(t)

	// 1. The browser's public key arrives with authenticate.
	var hello nodeHello
	node.read(&hello, func() string { return hello.Error })
	if len(hello.ClientPublicKey) != 88 {
		t.Fatalf("WebCrypto raw public key %q is not 88 base64 characters", hello.ClientPublicKey)
	}

	// 2. The server answers with its key and a salt and, from then on, sends
	//    sealed messages.
	server := mustKeyPair(t)
	salt := mustSalt(t)
	key, err := DeriveKey(server, hello.ClientPublicKey, salt)
	if err != nil {
		t.Fatalf("DeriveKey from the WebCrypto public key: %v", err)
	}
	messages := []goMessage{
		{Plaintext: []byte(`{"event":"chat","data":{"text":"héllo ✓ 👋"}}`)},
		{Plaintext: []byte(`{"event":"chat","data":{"text":"with aad"}}`), AAD: []byte("client-1")},
		{Plaintext: []byte{}},
		{Plaintext: bytes.Repeat([]byte{0x00, 0xff, 0x10}, 700), AAD: []byte{0, 1, 2}},
	}
	for i := range messages {
		if messages[i].Sealed, err = key.Encrypt(messages[i].Plaintext, messages[i].AAD); err != nil {
			t.Fatal(err)
		}
	}
	in, err := json.Marshal(goConnected{ServerPublicKey: server.PublicKeyBase64(), Salt: salt, Messages: messages})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.stdin.Write(in); err != nil {
		t.Fatalf("write to node: %v", err)
	}
	if err := node.stdin.Close(); err != nil {
		t.Fatalf("close node stdin: %v", err)
	}

	// 3. Both sides hold the same secret and key, and each opens the other's
	//    messages.
	var res nodeResult
	node.read(&res, func() string { return res.Error })

	clientPub, err := ParsePublicKey(hello.ClientPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := server.SharedSecret(clientPub)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(secret, res.SharedSecret) {
		t.Fatalf("shared secret: Go %x, WebCrypto deriveBits %x", secret, res.SharedSecret)
	}
	raw, err := deriveKeyBytes(server, hello.ClientPublicKey, salt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, res.Key) {
		t.Fatalf("derived AES key: Go %x, WebCrypto %x", raw, res.Key)
	}

	if len(res.Messages) != len(messages) {
		t.Fatalf("node answered %d messages, want %d", len(res.Messages), len(messages))
	}
	for i, m := range res.Messages {
		give := messages[i]
		if !bytes.Equal(m.Opened, give.Plaintext) {
			t.Errorf("message %d: WebCrypto opened Go's message as %q, want %q", i, m.Opened, give.Plaintext)
		}
		if !m.RejectedWrongAAD || !m.RejectedTampered {
			t.Errorf("message %d: WebCrypto accepted a wrong AAD (%v) or a tampered tag (%v)",
				i, !m.RejectedWrongAAD, !m.RejectedTampered)
		}
		got, err := key.Decrypt(m.Sealed, give.AAD)
		if err != nil {
			t.Errorf("message %d: Go cannot open WebCrypto's message %+v: %v", i, m.Sealed, err)
			continue
		}
		if !bytes.Equal(got, give.Plaintext) {
			t.Errorf("message %d: Go opened WebCrypto's message as %q, want %q", i, got, give.Plaintext)
		}
		if _, err := key.Decrypt(m.Sealed, append(bytes.Clone(give.AAD), 0)); !errors.Is(err, ErrDecrypt) {
			t.Errorf("message %d: Go opened WebCrypto's message under a wrong AAD: %v", i, err)
		}
		ct, _ := base64.StdEncoding.DecodeString(m.Sealed.CT)
		if want := len(give.Plaintext) + TagSize; len(ct) != want {
			t.Errorf("message %d: WebCrypto ciphertext is %d bytes, want %d", i, len(ct), want)
		}
	}
}
