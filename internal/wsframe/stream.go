package wsframe

import (
	"errors"
	"io"
)

// DefaultStreamBufferSize is the read buffer of a StreamReader made with
// bufSize zero.
const DefaultStreamBufferSize = 4096

// StreamReader is the blocking mode: it reads from an io.Reader (the
// net.Conn of the portable, goroutine-per-connection path) and returns one
// event per call, with the same checks as Reader. It owns a read buffer for
// its whole life, which is what the event-driven path avoids; use Reader
// directly there.
type StreamReader struct {
	src      io.Reader
	r        Reader
	buf      []byte
	off, end int   // unparsed bytes are buf[off:end]
	readErr  error // sticky error from src
}

// NewStreamReader returns a StreamReader over src. bufSize is the size of
// its read buffer; zero means DefaultStreamBufferSize. Messages larger than
// the buffer are assembled by the Reader, up to cfg.MaxMessageSize.
func NewStreamReader(src io.Reader, cfg Config, bufSize int) *StreamReader {
	if bufSize <= 0 {
		bufSize = DefaultStreamBufferSize
	}
	s := &StreamReader{src: src, buf: make([]byte, bufSize)}
	s.r.Init(cfg)
	return s
}

// ReadEvent blocks until the next event is complete and returns it. The
// payload is valid until the next call. Errors: a *ProtocolError as from
// Reader.Next; ErrClosed after a close event; io.EOF when src ends between
// messages and io.ErrUnexpectedEOF when it ends inside one; any other error
// from src as it is.
func (s *StreamReader) ReadEvent() (Event, error) {
	for {
		// Called even with nothing left, so that a closed or failed reader
		// answers before src is read again.
		n, ev, err := s.r.Next(s.buf[s.off:s.end])
		s.off += n
		if err != nil {
			return Event{}, err
		}
		if ev.Kind != KindNone {
			return ev, nil
		}
		if s.readErr != nil {
			if errors.Is(s.readErr, io.EOF) && !s.r.Idle() {
				return Event{}, io.ErrUnexpectedEOF
			}
			return Event{}, s.readErr
		}
		// Everything read was consumed, and the last event (which may
		// point into buf) is given up by calling again.
		n, err = s.src.Read(s.buf)
		s.off, s.end, s.readErr = 0, n, err
	}
}
