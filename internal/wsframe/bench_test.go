package wsframe

import (
	"strings"
	"testing"
	"unsafe"
)

// The benchmarks copy the frames into a read buffer on every iteration, as
// a socket read would, because Next unmasks in place. Each reports the
// Reader's size as reader-bytes: what an idle connection keeps.

var (
	smallText  = msg(opText, `{"event":"chat","data":"hello!"}`) // 32-byte payload
	fragmented = cat(frag(opText, strings.Repeat("a", 64)), frag(opContinuation, strings.Repeat("b", 64)),
		frag(opContinuation, strings.Repeat("c", 64)), msg(opContinuation, strings.Repeat("d", 64)))
	largeBinary = msg(opBinary, strings.Repeat("\xa5", 64<<10))
)

func benchReader(b *testing.B, frames []byte, want Kind) {
	b.ReportAllocs()
	b.SetBytes(int64(len(frames)))
	buf := make([]byte, len(frames))
	var r Reader
	for b.Loop() {
		copy(buf, frames)
		_, ev, err := r.Next(buf)
		if err != nil || ev.Kind != want {
			b.Fatalf("got %v, %v", ev.Kind, err)
		}
	}
	b.ReportMetric(float64(unsafe.Sizeof(r)), "reader-bytes")
}

// BenchmarkReadSmallText: one masked 32-byte text frame per read, the
// common case; the payload is returned in place.
func BenchmarkReadSmallText(b *testing.B) { benchReader(b, smallText, KindText) }

// BenchmarkReadFragmented: a 256-byte text message in four fragments,
// all in one read; reassembly allocates the message.
func BenchmarkReadFragmented(b *testing.B) { benchReader(b, fragmented, KindText) }

// BenchmarkRead64KiBBinary: unmasking throughput.
func BenchmarkRead64KiBBinary(b *testing.B) { benchReader(b, largeBinary, KindBinary) }

// loopReader replays the same bytes forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

// The same frames through gorilla's server-side reader, for comparison:
// ReadMessage, which like Next delivers the whole message in memory (the
// server reads with NextReader and io.ReadAll today).
func benchGorilla(b *testing.B, frames []byte) {
	conn, _ := gorillaConn(b, &loopReader{data: frames})
	b.ReportAllocs()
	b.SetBytes(int64(len(frames)))
	for b.Loop() {
		if _, _, err := conn.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGorillaReadSmallText(b *testing.B)   { benchGorilla(b, smallText) }
func BenchmarkGorillaReadFragmented(b *testing.B)  { benchGorilla(b, fragmented) }
func BenchmarkGorillaRead64KiBBinary(b *testing.B) { benchGorilla(b, largeBinary) }
