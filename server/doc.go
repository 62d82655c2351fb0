// Package server is the WebSocket server helper: the Go counterpart of Ignis'
// WebSocketServerHelper. It upgrades HTTP requests, authenticates clients in
// their first message, keeps rooms and user indexes, runs the application
// heartbeat, optionally encrypts per client, and joins many instances into
// one through Redis Pub/Sub (or runs one instance alone on the local bus).
// It works without fx: New, Configure, mount the
// Helper as an http.Handler, and Shutdown.
//
// # Goroutines and who stops them
//
//   - The HTTP handler returns right after the upgrade; one reader goroutine
//     per connection then owns it: it is the only reader, and when reading
//     ends it removes the client from every index and calls
//     ClientDisconnected.
//   - A writer goroutine per connection writes what is queued, in batches
//     (one writev each). It exists only while there is traffic: it parks
//     between bursts and the sweeper retires it after a quiet period. A send
//     to at most four recipients writes directly from the sender's goroutine
//     when the socket is free and takes the frame at once (a non-blocking
//     write; anything left goes to the writer). Nothing else writes to a
//     connection except gorilla on the permessage-deflate path.
//   - One goroutine per authenticate call, so the reader keeps reading (and
//     sees the client leave) while the application decides.
//   - Short-lived transform workers, at most EncryptedBatchLimit per fan-out,
//     fill the outbox slots of encrypted clients in order.
//   - The bus (internal/bus, chosen once by New; the rest of the server does
//     not know the mode): with Redis, one receive loop (pattern and
//     interest modes; in sharded mode one per cluster master), one
//     goroutine that (un)subscribes the wanted channels (interest and
//     sharded), one publisher that pipelines publishes. The bus starts them
//     in Configure (bus.Start) and Shutdown joins them (bus.Close). The
//     local bus (Options.LocalBus) runs none.
//   - One sweeper: heartbeat timeouts, protocol pings, writer retirement.
//
// All of them are counted by the Helper and Shutdown waits for every one.
// No lock is held while writing to a socket, talking to Redis or calling
// application code: fan-out copies the recipients, unlocks, then enqueues,
// and enqueueing never blocks.
package server
