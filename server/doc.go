// Package server is the WebSocket server helper: the Go counterpart of Ignis'
// WebSocketServerHelper. It upgrades HTTP requests, authenticates clients in
// their first message, keeps rooms and user indexes, runs the application
// heartbeat, optionally encrypts per client, and joins many instances into
// one through Redis Pub/Sub. It works without fx: New, Configure, mount the
// Helper as an http.Handler, and Shutdown.
//
// # Goroutines and who stops them
//
//   - The HTTP server's handler goroutine owns the connection after the
//     upgrade: it is the only reader, and when reading ends it removes the
//     client from every index and calls ClientDisconnected.
//   - One writer goroutine per connection drains the client's bounded outbox.
//     Nothing else writes to the socket except gorilla's own control replies.
//   - One goroutine per authenticate call, so the reader keeps reading (and
//     sees the client leave) while the application decides.
//   - Short-lived transform workers, at most EncryptedBatchLimit per fan-out,
//     fill the outbox slots of encrypted clients in order.
//   - One Redis receive loop and one sweeper (heartbeat and pings).
//
// All of them are counted by the Helper and Shutdown waits for every one.
// No lock is held while writing to a socket, talking to Redis or calling
// application code: fan-out copies the recipients, unlocks, then enqueues,
// and enqueueing never blocks.
package server
