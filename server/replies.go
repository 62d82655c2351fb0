package server

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// ClientError is an error meant for the client. Returned (or wrapped) by a
// MessageHandler or a ValidateRoomFunc, its Message is sent as
// {"event":"error","id":<the frame's id>,"data":{"message":Message}};
// other errors stay on the server and the client only learns "Internal
// error". It is logged at debug level only.
type ClientError struct {
	Message string
}

// Error returns the message.
func (e ClientError) Error() string { return e.Message }

// clientErrorMessage returns the message of a ClientError in err's chain.
func clientErrorMessage(err error) (string, bool) {
	var v ClientError
	if errors.As(err, &v) {
		return v.Message, true
	}
	var p *ClientError
	if errors.As(err, &p) && p != nil {
		return p.Message, true
	}
	return "", false
}

func isClientError(err error) bool {
	_, ok := clientErrorMessage(err)
	return ok
}

// answerError tells a client that its request failed: a ClientError's
// message, or "Internal error" when the frame had an id (without one, §3
// behaviour: nothing is sent for server-side failures).
func (c *client) answerError(err error, id string) {
	if msg, ok := clientErrorMessage(err); ok {
		c.sendError(msg, id)
		return
	}
	if id != "" {
		c.sendError(protocol.ErrMsgInternal, id)
	}
}

// Reply answers the frame of ev: it sends {"event":event,"data":data,"id":…}
// with the frame's id to that client only (without "id" when the frame had
// none). Encrypted clients get it through the OutboundTransformer, with
// the id kept outside the encrypted payload. It returns ErrClientNotFound
// when the client has gone.
func (h *Helper) Reply(ctx context.Context, ev MessageEvent, event string, data any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m, err := newMessage(event, data)
	if err != nil {
		return err
	}
	if ev.Message.ID != "" {
		if m, err = newRawMessageID(event, m.data, ev.Message.ID); err != nil {
			return err
		}
	}
	c, ok := h.lookup(ev.ClientID)
	if !ok {
		return ErrClientNotFound
	}
	h.deliver(m, []*client{c}, nil)
	return nil
}

// ackFrame encodes the answer to a join or leave that carried an id.
func ackFrame(id string, d protocol.AckData) []byte {
	if d.Rooms == nil {
		d.Rooms = []string{}
	}
	if d.Refused == nil {
		d.Refused = []protocol.RefusedRoom{}
	}
	b, _ := json.Marshal(protocol.OutMessage{Event: protocol.EventAck, Data: d, ID: id})
	return b
}
