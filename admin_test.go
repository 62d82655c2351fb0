package wscomponent_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	wscomponent "github.com/ignis-go/wscomponent"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
)

// requireAdmin is the app's own middleware: the admin API adds none.
func requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().Header.Get("Authorization") != "Bearer admin-secret" {
			return echo.NewHTTPError(http.StatusUnauthorized)
		}
		return next(c)
	}
}

// adminApp starts an app with the admin API under /admin/ws.
func adminApp(t *testing.T, rdb *redis.Client) (*loopbackEcho, *server.Helper) {
	t.Helper()
	srv := &loopbackEcho{}
	_, h := startApp(t,
		baseOptions(srv, rdb),
		wscomponent.SupplyServerOptions(wscomponent.ServerOptions{
			PresenceRooms: func(room string) bool { return room == "ws-default" },
		}),
		wscomponent.ProvideAuthenticateHandler(newAuthenticate),
		fx.Invoke(func(e *echo.Echo, h *server.Helper) {
			wscomponent.AdminRoutes(e.Group("/admin/ws", requireAdmin), h)
		}),
	)
	return srv, h
}

func adminDo(t *testing.T, srv *loopbackEcho, method, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http"+strings.TrimPrefix(srv.url("/admin/ws"+path), "ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func TestAdminRoutesNeedTheAppsMiddleware(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	srv, _ := adminApp(t, rdb)
	c := dial(t, srv.url("/ws"))
	alice := authenticate(t, c, "t-alice")
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/stats"},
		{http.MethodGet, "/clients"},
		{http.MethodGet, "/clients/" + alice.ID},
		{http.MethodDelete, "/clients/" + alice.ID},
		{http.MethodDelete, "/users/alice"},
		{http.MethodGet, "/rooms"},
		{http.MethodGet, "/rooms/ws-default/presence"},
	} {
		for _, token := range []string{"", "wrong"} {
			if status, _ := adminDo(t, srv, r.method, r.path, token); status != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401", r.method, r.path, token, status)
			}
		}
	}
	// None of the refused calls touched the client.
	if status, body := adminDo(t, srv, http.MethodGet, "/clients/"+alice.ID, "admin-secret"); status != http.StatusOK ||
		!strings.Contains(string(body), `"state":"authenticated"`) {
		t.Fatalf("client after refused calls: %d %s", status, body)
	}
}

func TestAdminRoutesListInspectAndDisconnectFleetWide(t *testing.T) {
	rs := redistest.Start(t)
	srvA, _ := adminApp(t, rs.Client(t))
	srvB, hB := adminApp(t, rs.Client(t))
	a1 := dial(t, srvA.url("/ws"))
	alice := authenticate(t, a1, "t-alice")
	b1 := dial(t, srvB.url("/ws"))
	authenticate(t, b1, "t-alice")
	b2 := dial(t, srvB.url("/ws"))
	bob := authenticate(t, b2, "t-bob")

	status, body := adminDo(t, srvA, http.MethodGet, "/clients?user=alice", "admin-secret")
	var list struct {
		Total   int `json:"total"`
		Clients []struct {
			ID, UserID, State string
			Rooms             []string
		} `json:"clients"`
	}
	if err := json.Unmarshal(body, &list); status != http.StatusOK || err != nil || list.Total != 1 ||
		list.Clients[0].ID != alice.ID || list.Clients[0].State != "authenticated" || len(list.Clients[0].Rooms) != 3 {
		t.Fatalf("GET /clients?user=alice: %d %s (%v)", status, body, err)
	}
	if status, body := adminDo(t, srvB, http.MethodGet, "/rooms", "admin-secret"); status != http.StatusOK ||
		!strings.Contains(string(body), `{"members":2,"room":"ws-default"}`) || strings.Contains(string(body), bob.ID) {
		t.Fatalf("GET /rooms on B: %d %s", status, body)
	}
	if status, body := adminDo(t, srvB, http.MethodGet, "/stats", "admin-secret"); status != http.StatusOK ||
		!strings.Contains(string(body), `"authenticated":2`) {
		t.Fatalf("GET /stats on B: %d %s", status, body)
	}
	// Presence is fleet-wide: A lists the members on both instances.
	eventually(t, "fleet-wide presence", func() bool {
		status, body := adminDo(t, srvA, http.MethodGet, "/rooms/ws-default/presence", "admin-secret")
		return status == http.StatusOK && strings.Contains(string(body), `"users":2`) &&
			strings.Contains(string(body), bob.ID) && strings.Contains(string(body), alice.ID)
	})
	if status, _ := adminDo(t, srvA, http.MethodGet, "/rooms/ws-notification/presence", "admin-secret"); status != http.StatusNotFound {
		t.Fatalf("presence of a plain room: %d", status)
	}
	if status, _ := adminDo(t, srvA, http.MethodGet, "/clients/nobody", "admin-secret"); status != http.StatusNotFound {
		t.Fatalf("unknown client: %d", status)
	}
	if status, _ := adminDo(t, srvA, http.MethodDelete, "/users/alice?code=1000", "admin-secret"); status != http.StatusBadRequest {
		t.Fatalf("RFC close code accepted: %d", status)
	}

	// Alice is closed on both instances from A's admin API; Bob stays.
	status, body = adminDo(t, srvA, http.MethodDelete, "/users/alice?code=4040&reason=Banned", "admin-secret")
	if status != http.StatusAccepted || !strings.Contains(string(body), `"local":1`) {
		t.Fatalf("DELETE /users/alice: %d %s", status, body)
	}
	if ce := readClose(t, a1); ce.Code != 4040 || ce.Text != "Banned" {
		t.Fatalf("alice on A closed with %d %q", ce.Code, ce.Text)
	}
	if ce := readClose(t, b1); ce.Code != 4040 || ce.Text != "Banned" {
		t.Fatalf("alice on B closed with %d %q", ce.Code, ce.Text)
	}
	// Bob's session on B, closed through A by client id (not local to A).
	if status, body := adminDo(t, srvA, http.MethodDelete, "/clients/"+bob.ID, "admin-secret"); status != http.StatusAccepted ||
		!strings.Contains(string(body), `"local":0`) {
		t.Fatalf("DELETE /clients/bob: %d %s", status, body)
	}
	if ce := readClose(t, b2); ce.Code != 4005 {
		t.Fatalf("bob closed with %d %q", ce.Code, ce.Text)
	}
	eventually(t, "B empty", func() bool { return len(hB.Clients()) == 0 })
}
