package server

import "time"

// Observer receives the Helper's measurements, for metrics; package
// github.com/ignis-go/wscomponent/metrics turns them into Prometheus
// histograms. Its methods are called concurrently from hot paths (once per
// queued frame, per callback, per publish) and must return quickly without
// blocking. A nil Options.Observer costs nothing.
type Observer interface {
	// ObserveCallback is called after each application callback with its
	// name ("authenticate", "message", "validate room", …) and how long it
	// ran, errors and panics included.
	ObserveCallback(name string, d time.Duration)
	// ObservePublish is called for each Redis publish: the time from the
	// call (Send, Publish…, a fleet-wide Disconnect) until Redis answered,
	// queueing for the shared pipeline included, and its error.
	ObservePublish(d time.Duration, err error)
	// ObserveConnected is called when a client is authenticated, with the
	// time since its upgrade.
	ObserveConnected(d time.Duration)
	// ObserveOutbox is called when a frame is queued for a client that
	// could not take it at once — behind frames still waiting or being
	// written — with the bytes then waiting in its outbox (a frame that
	// finds the outbox empty is written straight to the socket and not
	// observed). It is called with the client's outbox lock held: it must
	// not call back into the Helper.
	ObserveOutbox(bytes int)
}
