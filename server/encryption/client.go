package encryption

import (
	"bytes"
	_ "embed"
	"net/http"
	"time"
)

// ClientJSName is the file name of the browser client, as JSHandler serves
// it and as pages import it.
const ClientJSName = "ignis-ws-client.js"

//go:embed js/ignis-ws-client.js
var clientJS []byte

// ClientJS returns a copy of the browser client: a plain ES module that uses
// WebCrypto only, with no build step. It exports IgnisSocket and connect;
// the file's header comment documents them.
func ClientJS() []byte { return bytes.Clone(clientJS) }

// JSHandler returns an http.Handler that serves the browser client to GET
// and HEAD requests as text/javascript, whatever the request path, so an
// app mounts it where its pages import it from, e.g.
// mux.Handle("/js/"+encryption.ClientJSName, encryption.JSHandler()).
func JSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		// The zero time leaves out Last-Modified; ServeContent still
		// handles HEAD and ranges.
		http.ServeContent(w, r, ClientJSName, time.Time{}, bytes.NewReader(clientJS))
	})
}
