package wsframe

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
	"unsafe"
)

// idleReaderMax is the budget for a Reader's own size: what an idle
// connection pays for it.
const idleReaderMax = 64

func TestReaderSize(t *testing.T) {
	size := unsafe.Sizeof(Reader{})
	t.Logf("unsafe.Sizeof(Reader{}) = %d bytes", size)
	if size > idleReaderMax {
		t.Errorf("Reader is %d bytes, budget %d", size, idleReaderMax)
	}
}

func TestIdleReaderHoldsNoBuffer(t *testing.T) {
	tests := []struct {
		name string
		give []byte
	}{
		{name: "message split between reads", give: msg(opText, strings.Repeat("x", 300))},
		{name: "fragmented message", give: cat(frag(opBinary, "ab"), msg(opContinuation, "cd"))},
		{name: "ping split between reads", give: msg(opPing, "ping payload")},
		{name: "ping split inside a fragmented message", give: cat(frag(opText, "ab"), msg(opPing, "ping payload"), msg(opContinuation, "cd"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := bytes.Clone(tt.give)
			r := NewReader(Config{})
			held := false
			for i := 0; i < len(data); i += 5 {
				p := data[i:min(i+5, len(data))]
				for len(p) > 0 {
					n, ev, err := r.Next(p)
					if err != nil {
						t.Fatal(err)
					}
					p = p[n:]
					held = held || r.Buffered() > 0
					if ev.Kind == KindText || ev.Kind == KindBinary {
						if r.Buffered() != 0 || !r.Idle() {
							t.Fatalf("after the message: Buffered %d, Idle %v", r.Buffered(), r.Idle())
						}
					}
				}
			}
			if !held {
				t.Error("no buffer was used: the case does not test what it says")
			}
			if r.Buffered() != 0 || !r.Idle() {
				t.Fatalf("at the end: Buffered %d, Idle %v", r.Buffered(), r.Idle())
			}
		})
	}
}

func TestPayloadInPlace(t *testing.T) {
	data := cat(msg(opText, "hello"), msg(opPing, "p"), msg(opClose, "\x03\xe8bye"))
	r := NewReader(Config{})
	p := data
	for _, want := range []got{text("hello"), ping("p"), closed(1000, "bye")} {
		n, ev, err := r.Next(p)
		if err != nil {
			t.Fatal(err)
		}
		if g := (got{ev.Kind, string(ev.Payload), ev.Code}); g != want {
			t.Fatalf("got %v, want %v", g, want)
		}
		if len(ev.Payload) > 0 && &ev.Payload[0] != &p[n-len(ev.Payload)] {
			t.Errorf("%v: payload was copied", want)
		}
		p = p[n:]
	}
	if len(p) != 0 {
		t.Errorf("%d bytes left", len(p))
	}
}

func TestReaderAfterTheEnd(t *testing.T) {
	r := NewReader(Config{})
	if _, _, err := r.Next(msg(opText, "\xff")); err != causeTextUTF8.err() {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := r.Next(msg(opText, "ok")); err != causeTextUTF8.err() {
		t.Errorf("after a failure, err = %v, want the same error again", err)
	}
	var pe *ProtocolError
	if err := error(causeTextUTF8.err()); !errors.As(err, &pe) || pe.Code != CloseInvalidPayload {
		t.Errorf("errors.As: %v", err)
	}
	if got := causeTooBig.err().Error(); got != "wsframe: message too big (close code 1009)" {
		t.Errorf("Error() = %q", got)
	}

	r.Init(Config{})
	if _, ev, err := r.Next(closeFrame(1000, "")); err != nil || ev.Kind != KindClose {
		t.Fatalf("after Init: %v %v", ev, err)
	}
	if n, _, err := r.Next(msg(opText, "late")); err != ErrClosed || n != 0 {
		t.Errorf("after a close: n=%d err=%v, want 0, ErrClosed", n, err)
	}
	for _, c := range causes[1:] {
		if len(c.Reason) > 123 || c.Code == 0 {
			t.Errorf("%+v cannot be sent in a close frame", c)
		}
	}
}

// TestSlowSenderBuffer: a client that declares a large frame and sends it
// a little at a time makes the buffer grow with what arrived, never to the
// declared size at once.
func TestSlowSenderBuffer(t *testing.T) {
	const size = 100 << 10
	data := msg(opBinary, strings.Repeat("s", size))
	r := NewReader(Config{})
	for off := 0; off < 14+1000; off += 100 {
		if _, _, err := r.Next(data[off : off+100]); err != nil {
			t.Fatal(err)
		}
	}
	if b := r.Buffered(); b > 2048 {
		t.Errorf("after 1000 payload bytes the buffer is %d bytes", b)
	}
}

func TestMaskBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		key := [4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}
		pos := uint8(rng.IntN(4))
		b := make([]byte, rng.IntN(80))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		want := bytes.Clone(b)
		for i := range want {
			want[i] ^= key[(int(pos)+i)&3]
		}
		end := maskBytes(key, pos, b)
		if !bytes.Equal(b, want) || end != uint8((int(pos)+len(b))&3) {
			t.Fatalf("key %x pos %d len %d: wrong result", key, pos, len(b))
		}
	}
}

func TestStreamReader(t *testing.T) {
	stream := cat(msg(opText, "hello"), frag(opBinary, strings.Repeat("b", 5000)), msg(opPing, "p"),
		msg(opContinuation, "!"), closeFrame(1001, "bye"))
	want := []got{text("hello"), ping("p"), binMsg(strings.Repeat("b", 5000) + "!"), closed(1001, "bye")}
	readers := map[string]func() io.Reader{
		"plain":    func() io.Reader { return bytes.NewReader(bytes.Clone(stream)) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(bytes.Clone(stream))) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(bytes.Clone(stream))) },
		"data+EOF": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(bytes.Clone(stream))) },
	}
	for name, src := range readers {
		t.Run(name, func(t *testing.T) {
			s := NewStreamReader(src(), Config{}, 64)
			for _, w := range want {
				ev, err := s.ReadEvent()
				if err != nil {
					t.Fatal(err)
				}
				if g := (got{ev.Kind, string(ev.Payload), ev.Code}); g != w {
					t.Fatalf("got %v, want %v", g, w)
				}
			}
			if _, err := s.ReadEvent(); err != ErrClosed {
				t.Fatalf("after the close: %v", err)
			}
		})
	}
}

func TestStreamReaderEnds(t *testing.T) {
	errBroken := errors.New("broken pipe")
	tests := []struct {
		name    string
		give    io.Reader
		wantErr error
	}{
		{name: "EOF between messages", give: bytes.NewReader(msg(opText, "a")), wantErr: io.EOF},
		{name: "EOF inside a frame", give: bytes.NewReader(msg(opText, "abc")[:7]), wantErr: io.ErrUnexpectedEOF},
		{name: "EOF between fragments", give: bytes.NewReader(cat(msg(opText, "a"), frag(opText, "b"))), wantErr: io.ErrUnexpectedEOF},
		{name: "read error", give: io.MultiReader(bytes.NewReader(msg(opText, "a")), iotest.ErrReader(errBroken)), wantErr: errBroken},
		{name: "protocol error", give: bytes.NewReader(cat(msg(opText, "a"), msg(3, ""))), wantErr: causeOpcode.err()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStreamReader(tt.give, Config{}, 0)
			var err error
			for err == nil {
				_, err = s.ReadEvent()
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
