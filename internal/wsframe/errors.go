package wsframe

import (
	"errors"
	"strconv"
)

// Close codes the reader reports (RFC 6455 section 7.4.1).
const (
	// CloseNormal is sent by a peer that is done with the connection.
	CloseNormal = 1000
	// CloseProtocolError is the code to send for a framing violation.
	CloseProtocolError = 1002
	// CloseNoStatus is reported for a close frame without a payload; it is
	// never sent on the wire.
	CloseNoStatus = 1005
	// CloseInvalidPayload is the code to send for invalid UTF-8 in a text
	// message or a close reason.
	CloseInvalidPayload = 1007
	// CloseMessageTooBig is the code to send for a message over the limit.
	CloseMessageTooBig = 1009
)

// ErrClosed is returned by Reader.Next once a close frame has been
// received: RFC 6455 section 5.5.1 lets nothing follow it, so the bytes are
// not looked at.
var ErrClosed = errors.New("wsframe: close frame already received")

// ProtocolError is a violation of RFC 6455 by the client. Code is the close
// code to send before closing the connection (CloseProtocolError,
// CloseInvalidPayload or CloseMessageTooBig); Reason is short enough to be
// sent as the close reason. The reader never writes anything itself.
//
// The values are shared and must not be modified; compare by Code.
type ProtocolError struct {
	Code   int
	Reason string
}

// Error implements error.
func (e *ProtocolError) Error() string {
	return "wsframe: " + e.Reason + " (close code " + strconv.Itoa(e.Code) + ")"
}

// cause indexes causes; a Reader keeps one byte instead of an error value
// so that a failed reader stays as small as an idle one.
type cause uint8

const (
	causeNone cause = iota
	causeReservedBits
	causeOpcode
	causeControlFragmented
	causeControlTooLong
	causeUnmasked
	causeContinuation
	causeExpectedContinuation
	causeLength
	causeTooBig
	causeTextUTF8
	causeCloseLength
	causeCloseCode
	causeCloseUTF8
)

// causes holds one shared value per failure so that failing costs no
// allocation, even for a client that fails on purpose.
var causes = [...]ProtocolError{
	causeNone:                 {},
	causeReservedBits:         {CloseProtocolError, "reserved bits set without a negotiated extension"},
	causeOpcode:               {CloseProtocolError, "unknown opcode"},
	causeControlFragmented:    {CloseProtocolError, "fragmented control frame"},
	causeControlTooLong:       {CloseProtocolError, "control frame payload over 125 bytes"},
	causeUnmasked:             {CloseProtocolError, "unmasked client frame"},
	causeContinuation:         {CloseProtocolError, "continuation frame without a message to continue"},
	causeExpectedContinuation: {CloseProtocolError, "new data frame inside a fragmented message"},
	causeLength:               {CloseProtocolError, "64-bit payload length with the most significant bit set"},
	causeTooBig:               {CloseMessageTooBig, "message too big"},
	causeTextUTF8:             {CloseInvalidPayload, "invalid UTF-8 in text message"},
	causeCloseLength:          {CloseProtocolError, "close frame payload of 1 byte"},
	causeCloseCode:            {CloseProtocolError, "invalid close code"},
	causeCloseUTF8:            {CloseInvalidPayload, "invalid UTF-8 in close reason"},
}

func (c cause) err() *ProtocolError { return &causes[c] }

// validCloseCode reports whether a client may send code (RFC 6455 section
// 7.4): the codes defined there for use on the wire, and the ranges for
// registered (3000-3999) and private (4000-4999) use. 1004-1006 and 1015
// are reserved and must never be sent; 1012-1014 (IANA-registered later),
// 1016-2999, below 1000 and from 5000 are refused as well.
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
