// Package js embeds the JavaScript client of the component (wscomponent.js,
// with its TypeScript declarations wscomponent.d.ts) so that a Go app can
// serve it to its pages without a build step or a copy:
//
//	e.GET("/"+js.FileName, echo.WrapHandler(js.Handler()))
//
// and in the page: import { connect } from "/wscomponent.js". The module
// works in Node ≥ 20 as well; README.md in this directory documents it.
package js

import (
	"bytes"
	_ "embed" // the module
	"net/http"
	"time"
)

// FileName is the module's file name, also the natural path to serve it at.
const FileName = "wscomponent.js"

// TypesFileName is the file name of its TypeScript declarations.
const TypesFileName = "wscomponent.d.ts"

//go:embed wscomponent.js
var module []byte

//go:embed wscomponent.d.ts
var types []byte

// Module returns the module's source.
func Module() []byte { return bytes.Clone(module) }

// Types returns the module's TypeScript declarations.
func Types() []byte { return bytes.Clone(types) }

// Handler serves the module (GET and HEAD) as text/javascript with
// nosniff. It serves the same bytes whatever the request path, so mount it
// at the path the page imports.
func Handler() http.Handler {
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
		http.ServeContent(w, r, FileName, time.Time{}, bytes.NewReader(module))
	})
}
