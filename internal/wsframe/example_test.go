package wsframe_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/ignis-go/wscomponent/internal/wsframe"
)

// clientFrame masks a payload the way a client must.
func clientFrame(head byte, payload string) []byte {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	out := append([]byte{head, 0x80 | byte(len(payload))}, key[:]...)
	for i := range len(payload) {
		out = append(out, payload[i]^key[i%4])
	}
	return out
}

// An event-driven server keeps one Reader per connection and no buffer.
// When the poller reports the socket readable, a goroutine borrows a read
// buffer, reads what is there, and passes it to Next until it is used up;
// then the buffer goes back to the pool. A message that is not complete
// yet stays in the Reader until the next time.
func Example() {
	pool := sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}
	var r wsframe.Reader // in the connection struct; the zero value uses the defaults

	// Stands for a non-blocking socket with a text message, a ping, and the
	// first part of a close frame ready to read.
	stream := append(append(clientFrame(0x81, "hello"), clientFrame(0x89, "are you there?")...), clientFrame(0x88, "\x03\xe8bye")...)
	socket := bytes.NewReader(stream[:len(stream)-2])

	onReadable := func() {
		bp := pool.Get().(*[]byte)
		defer pool.Put(bp)
		n, _ := socket.Read(*bp)
		p := (*bp)[:n]
		for len(p) > 0 {
			m, ev, err := r.Next(p)
			p = p[m:]
			var pe *wsframe.ProtocolError
			if errors.As(err, &pe) {
				fmt.Println("send close", pe.Code, "and hang up")
				return
			}
			switch ev.Kind {
			case wsframe.KindText:
				fmt.Printf("text %q\n", ev.Payload) // copy it to keep it past the pool
			case wsframe.KindPing:
				fmt.Printf("ping %q: send a pong\n", ev.Payload)
			case wsframe.KindClose:
				fmt.Printf("close %d %q: answer and hang up\n", ev.Code, ev.Payload)
			case wsframe.KindNone:
				fmt.Println("waiting for more; idle:", r.Idle(), "buffered:", r.Buffered())
			}
		}
	}
	onReadable()
	socket = bytes.NewReader(stream[len(stream)-2:]) // the rest arrives
	onReadable()
	// Output:
	// text "hello"
	// ping "are you there?": send a pong
	// waiting for more; idle: false buffered: 5
	// close 1000 "bye": answer and hang up
}
