package main

import (
	"context"
	"embed"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	wsjs "github.com/ignis-go/wscomponent/clients/js"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/server/encryption"
)

// web holds the browser page. It is embedded so the binary serves it from
// wherever it runs.
//
//go:embed web
var web embed.FS

// HTTP limits.
const (
	// apiBodyLimit is far above a 500-character message, far below harm.
	apiBodyLimit = "16K"
	// readyTimeout bounds one readiness check.
	readyTimeout = 2 * time.Second
)

// pageSecurityPolicy keeps the page to its own origin: no inline script,
// no third-party resources. The client module (clients/js) is served by the
// app itself, so default-src 'self' admits it.
const pageSecurityPolicy = "default-src 'self'; connect-src 'self' ws: wss:; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// api serves the HTTP side of the chat.
type api struct {
	log    *zap.Logger
	tokens *tokens
	ws     *server.Helper
	// encrypted tells the page to run the encryption handshake.
	encrypted bool
}

// registerRoutes adds the app's routes to e; the component has added
// GET /ws already.
func registerRoutes(e *echo.Echo, cfg config, log *zap.Logger, t *tokens, ws *server.Helper, reg *prometheus.Registry) {
	a := &api{log: log.Named("api"), tokens: t, ws: ws, encrypted: cfg.Encrypt}

	e.GET("/healthz", a.healthz)
	// Prometheus metrics: the component's (wscomponent_…), Go's and the
	// process's. In production put it behind your own auth or on an
	// internal port.
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	e.GET("/readyz", a.readyz)

	g := e.Group("/api", middleware.BodyLimit(apiBodyLimit))
	g.GET("/config", a.config)
	g.POST("/login", a.login)
	g.POST("/rooms/:room/messages", a.postMessage)

	page := echo.MustSubFS(web, "web")
	e.FileFS("/", "index.html", page, pageHeaders)
	e.FileFS("/app.js", "app.js", page, pageHeaders)
	e.FileFS("/style.css", "style.css", page, pageHeaders)
	e.FileFS("/favicon.svg", "favicon.svg", page, pageHeaders)
	// Browsers ask for /favicon.ico whatever the page links; send them to
	// the icon instead of a 404 in every log.
	e.GET("/favicon.ico", func(c echo.Context) error {
		return c.Redirect(http.StatusMovedPermanently, "/favicon.svg")
	})
	// The client the page imports (clients/js): connection, reconnect,
	// rooms and, when the server requires it, encryption.
	e.Match([]string{http.MethodGet, http.MethodHead}, "/"+wsjs.FileName,
		echo.WrapHandler(wsjs.Handler()), pageHeaders)
	// The older encryption-only browser client of server/encryption, for
	// pages written against it.
	e.Match([]string{http.MethodGet, http.MethodHead}, "/"+encryption.ClientJSName,
		echo.WrapHandler(encryption.JSHandler()), pageHeaders)
}

// pageHeaders adds the security and caching headers of the page's files.
func pageHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", pageSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		return next(c)
	}
}

// healthz answers 200 while the process serves HTTP (liveness).
func (a *api) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 503 while the WebSocket helper cannot serve the fleet (not
// started yet, shutting down, or its Redis subscription is down).
func (a *api) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
	defer cancel()
	if err := a.ws.Health(ctx); err != nil {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// clientConfig tells the page how to connect.
type clientConfig struct {
	// Encrypted: send a public key when authenticating and expect
	// "encrypted" frames; the server closes clients that do not with 4004.
	Encrypted bool `json:"encrypted"`
}

// config answers the page's connection settings. The page asks before
// every connection attempt, so it follows a server restarted in the other
// mode.
func (a *api) config(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, clientConfig{Encrypted: a.encrypted})
}

type loginRequest struct {
	// Name is the display name, 1–32 characters once trimmed.
	Name string `json:"name"`
}

type loginResponse struct {
	// Token goes in the authenticate frame and in "Authorization: Bearer".
	Token string `json:"token"`
	// ExpiresAt is when the server stops accepting Token.
	ExpiresAt time.Time `json:"expiresAt"`
}

// login issues a demo token for any name: there are no passwords here.
func (a *api) login(c echo.Context) error {
	var req loginRequest
	if err := c.Bind(&req); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "body must be JSON {\"name\": string}")
	}
	name := strings.TrimSpace(req.Name)
	if err := validName(name); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	token, cl, err := a.tokens.issue(name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, loginResponse{Token: token, ExpiresAt: time.Unix(cl.Exp, 0).UTC()})
}

type postMessageRequest struct {
	// Text is 1–500 characters once trimmed.
	Text string `json:"text"`
}

// postMessage sends a chat message from server code to a room on every
// instance, as "server:<name>". It answers 202: delivery to sockets happens
// afterwards and is not confirmed.
func (a *api) postMessage(c echo.Context) error {
	cl, err := a.bearer(c)
	if err != nil {
		return err
	}
	room := c.Param("room")
	if !validRoom(room) {
		return echo.NewHTTPError(http.StatusBadRequest, "invalid room name")
	}
	var req postMessageRequest
	if err := c.Bind(&req); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "body must be JSON {\"text\": string}")
	}
	text, err := cleanText(req.Text)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	msg := chatMessage{Room: room, From: "server:" + cl.Name, Text: text, At: time.Now().UTC()}
	ctx, cancel := context.WithTimeout(c.Request().Context(), publishTimeout)
	defer cancel()
	if err := a.ws.PublishToRoom(ctx, room, eventChat, msg); err != nil {
		a.log.Warn("publish failed", zap.String("room", room), zap.Error(err))
		return echo.NewHTTPError(http.StatusServiceUnavailable, "message could not be published")
	}
	return c.JSON(http.StatusAccepted, msg)
}

// bearer returns the claims of the request's "Authorization: Bearer" token.
func (a *api) bearer(c echo.Context) (claims, error) {
	scheme, token, ok := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		if cl, err := a.tokens.verify(strings.TrimSpace(token)); err == nil {
			return cl, nil
		}
	}
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="chat"`)
	return claims{}, echo.NewHTTPError(http.StatusUnauthorized, "missing or invalid bearer token")
}
