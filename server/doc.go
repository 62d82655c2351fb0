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
//   - Writing belongs to the connection's outbox (outbox.go), the only code
//     that writes to the socket. A frame is written by the goroutine that
//     queues it — a fan-out, the reader answering its client, a transform
//     worker, the sweeper's ping — with a send that never waits, when
//     nobody else is writing to that socket; if someone is, it leaves the
//     frame to them. Only when the socket is full does the outbox start a
//     writer goroutine, which waits for it (at most WriteTimeout per write)
//     and ends once the outbox is empty: an idle connection has none.
//     gorilla's reader never writes to the socket: what it would write (the
//     close frame after a protocol error) goes to the outbox too.
//   - Delivery workers: a fan-out to many clients is split over at most
//     GOMAXPROCS goroutines (one of them the caller), which queue and write
//     in parallel; the fan-out returns when all of them have.
//   - One goroutine per authenticate call, so the reader keeps reading (and
//     sees the client leave) while the application decides.
//   - Short-lived transform workers, at most EncryptedBatchLimit per fan-out,
//     fill the outbox slots of encrypted clients in order and write what
//     that made ready.
//   - The bus (internal/bus, chosen once by New; the rest of the server does
//     not know the mode): with Redis, one receive loop (pattern and
//     interest modes; in sharded mode one per cluster master), one
//     goroutine that (un)subscribes the wanted channels (interest and
//     sharded), one publisher that pipelines publishes. The bus starts them
//     in Configure (bus.Start) and Shutdown joins them (bus.Close). The
//     local bus (Options.LocalBus) runs none.
//   - One sweeper: heartbeat timeouts and protocol pings.
//
// All of them are counted by the Helper and Shutdown waits for every one.
// No lock is held while writing to a socket, talking to Redis or calling
// application code: fan-out copies the recipients, unlocks, then queues
// (which never blocks) and writes (which never waits for a socket).
package server
