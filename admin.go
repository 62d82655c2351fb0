package wscomponent

import (
	"errors"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ignis-go/wscomponent/server"
)

// AdminRoutes registers a JSON admin API for operators on g, which must
// carry the app's own authentication middleware: the routes add none, so
// whatever g lets through may list and disconnect clients. Mount it on an
// internal listener or behind an admin check, e.g.
//
//	fx.Invoke(func(e *echo.Echo, h *server.Helper) {
//		wscomponent.AdminRoutes(e.Group("/admin/ws", requireAdmin), h)
//	})
//
// Routes (relative to g):
//
//	GET    /stats                   server.Stats of this instance
//	GET    /clients?user=&room=&limit=  local connections (ClientInfo), newest first
//	GET    /clients/:id             one local connection
//	DELETE /clients/:id             close it on whichever instance holds it
//	DELETE /users/:id               close every session of a user, fleet-wide
//	GET    /rooms                   local rooms with their member counts
//	                                (?own=1 includes clients' own-id rooms)
//	GET    /rooms/:room/presence    fleet-wide members of a presence room
//	                                (Config.PresenceRooms; 404 for others)
//
// DELETE takes optional ?code=4000-4999&reason=… (default 4005
// "Disconnected") and answers 202 with {"local": n} when Redis took the
// fleet-wide order, or 503 with the error when only this instance acted.
// Lists are of this instance only.
func AdminRoutes(g *echo.Group, h *server.Helper) {
	a := &admin{h: h}
	g.GET("/stats", a.stats)
	g.GET("/clients", a.clients)
	g.GET("/clients/:id", a.client)
	g.DELETE("/clients/:id", a.disconnectClient)
	g.DELETE("/users/:id", a.disconnectUser)
	g.GET("/rooms", a.rooms)
	g.GET("/rooms/:room/presence", a.presence)
}

type admin struct{ h *server.Helper }

// adminClient is a ClientInfo as the admin API shows it.
type adminClient struct {
	ID              string         `json:"id"`
	UserID          string         `json:"userId,omitempty"`
	State           string         `json:"state"`
	Rooms           []string       `json:"rooms"`
	Metadata        map[string]any `json:"metadata,omitempty"`
	Encrypted       bool           `json:"encrypted"`
	Backpressured   bool           `json:"backpressured"`
	QueuedBytes     int            `json:"queuedBytes"`
	RemoteAddr      string         `json:"remoteAddr"`
	ConnectedAt     time.Time      `json:"connectedAt"`
	AuthenticatedAt *time.Time     `json:"authenticatedAt,omitempty"`
	LastActivity    time.Time      `json:"lastActivity"`
}

func toAdminClient(ci server.ClientInfo) adminClient {
	out := adminClient{
		ID: ci.ID, UserID: ci.UserID, State: string(ci.State), Rooms: ci.Rooms, Metadata: ci.Metadata,
		Encrypted: ci.Encrypted, Backpressured: ci.Backpressured, QueuedBytes: ci.QueuedBytes,
		RemoteAddr: ci.RemoteAddr, ConnectedAt: ci.ConnectedAt.UTC(), LastActivity: ci.LastActivity.UTC(),
	}
	if out.Rooms == nil {
		out.Rooms = []string{}
	}
	if !ci.AuthenticatedAt.IsZero() {
		at := ci.AuthenticatedAt.UTC()
		out.AuthenticatedAt = &at
	}
	return out
}

func (a *admin) stats(c echo.Context) error {
	return c.JSON(http.StatusOK, a.h.Stats())
}

// maxAdminList bounds a client list; ?limit= lowers it.
const maxAdminList = 1000

func (a *admin) clients(c echo.Context) error {
	limit := maxAdminList
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return echo.NewHTTPError(http.StatusBadRequest, "limit: want a positive integer")
		}
		limit = min(n, maxAdminList)
	}
	var list []server.ClientInfo
	switch user, room := c.QueryParam("user"), c.QueryParam("room"); {
	case user != "" && room != "":
		return echo.NewHTTPError(http.StatusBadRequest, "give user or room, not both")
	case user != "":
		list = a.h.ClientsByUser(user)
	case room != "":
		list = a.h.ClientsInRoom(room)
	default:
		list = a.h.Clients()
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ConnectedAt.After(list[j].ConnectedAt) })
	total := len(list)
	out := make([]adminClient, 0, min(total, limit))
	for _, ci := range list[:min(total, limit)] {
		out = append(out, toAdminClient(ci))
	}
	return c.JSON(http.StatusOK, map[string]any{"total": total, "clients": out})
}

func (a *admin) client(c echo.Context) error {
	ci, ok := a.h.Client(c.Param("id"))
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound, "no such client on this instance")
	}
	return c.JSON(http.StatusOK, toAdminClient(ci))
}

// disconnectParams reads ?code= and ?reason=.
func disconnectParams(c echo.Context) (server.Disconnect, error) {
	var d server.Disconnect
	if s := c.QueryParam("code"); s != "" {
		code, err := strconv.Atoi(s)
		if err != nil {
			return d, echo.NewHTTPError(http.StatusBadRequest, "code: want an integer 4000-4999")
		}
		d.Code = code
		d.Reason = c.QueryParam("reason")
	}
	return d, nil
}

func (a *admin) disconnectClient(c echo.Context) error {
	d, err := disconnectParams(c)
	if err != nil {
		return err
	}
	_, local := a.h.Client(c.Param("id"))
	return a.answer(c, a.h.DisconnectClient(c.Request().Context(), c.Param("id"), d), b2i(local))
}

func (a *admin) disconnectUser(c echo.Context) error {
	d, err := disconnectParams(c)
	if err != nil {
		return err
	}
	local := len(a.h.ClientsByUser(c.Param("id")))
	return a.answer(c, a.h.DisconnectUser(c.Request().Context(), c.Param("id"), d), local)
}

// answer turns the result of a fleet-wide disconnect into a response.
func (a *admin) answer(c echo.Context, err error, local int) error {
	var pe *server.PublishError
	switch {
	case err == nil:
		return c.JSON(http.StatusAccepted, map[string]any{"local": local})
	case errors.Is(err, server.ErrInvalidDisconnect):
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	case errors.As(err, &pe):
		return c.JSON(http.StatusServiceUnavailable, map[string]any{"local": pe.Local, "error": err.Error()})
	default:
		return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
	}
}

func (a *admin) rooms(c echo.Context) error {
	names := a.h.Rooms()
	out := make([]map[string]any, 0, len(names))
	for _, r := range names {
		if _, isClient := a.h.Client(r); isClient && c.QueryParam("own") == "" {
			continue // a client's own-id room (?own=1 lists them too)
		}
		out = append(out, map[string]any{"room": r, "members": a.h.RoomSize(r)})
	}
	return c.JSON(http.StatusOK, map[string]any{"rooms": out})
}

func (a *admin) presence(c echo.Context) error {
	entries, err := a.h.Presence(c.Request().Context(), c.Param("room"))
	switch {
	case errors.Is(err, server.ErrPresenceOff):
		return echo.NewHTTPError(http.StatusNotFound, "not a presence room")
	case err != nil:
		return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
	}
	out := make([]map[string]any, 0, len(entries))
	users := map[string]bool{}
	for _, e := range entries {
		users[e.UserID] = true
		out = append(out, map[string]any{"clientId": e.ClientID, "userId": e.UserID,
			"serverId": e.ServerID, "joinedAt": e.JoinedAt.UTC()})
	}
	return c.JSON(http.StatusOK, map[string]any{"room": c.Param("room"), "clients": out, "users": len(users)})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
