package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// errRemote is returned for a target outside 127.0.0.0/8 and ::1 when
// -allow-remote is not given.
var errRemote = errors.New("target is not a loopback address; load tests here run only against 127.0.0.0/8 or ::1 (pass -allow-remote to test your own remote deployment)")

// policy decides which addresses wsload may connect to.
type policy struct {
	allowRemote bool
}

// checkURL resolves the host of u and refuses it unless every address is
// loopback (or remote targets are allowed).
func (p policy) checkURL(ctx context.Context, u *url.URL) error {
	if p.allowRemote {
		return nil
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%s: no host", u.Redacted())
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s: %w", u.Redacted(), errRemote)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("%s: %w", u.Redacted(), err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("%s (%s): %w", u.Redacted(), a.IP, errRemote)
		}
	}
	return nil
}

// control checks, at connect time, the address actually dialled, so that a
// name resolving differently later cannot lead the load elsewhere.
func (p policy) control(_, address string, _ syscall.RawConn) error {
	if p.allowRemote {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("dial %s: %w", address, errRemote)
	}
	return nil
}

func (p policy) netDialer() *net.Dialer {
	return &net.Dialer{Timeout: 10 * time.Second, Control: p.control}
}

// wsDialer dials WebSockets with the policy, never through a proxy from
// the environment.
func (p policy) wsDialer() *websocket.Dialer {
	return &websocket.Dialer{
		NetDialContext:   p.netDialer().DialContext,
		Proxy:            nil,
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   2048,
		WriteBufferSize:  1024,
	}
}

// httpClient talks to the control routes with the policy, without proxies.
func (p policy) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         p.netDialer().DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// parseWSURL accepts ws:// and wss:// URLs; a bare host:port becomes
// ws://host:port/ws.
func parseWSURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "ws://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("%s: scheme must be ws or wss", u.Redacted())
	}
	if u.Path == "" {
		u.Path = "/ws"
	}
	return u, nil
}

// controlURL is the HTTP base of the control routes that belong to a
// WebSocket URL: same host, http(s), no path.
func controlURL(ws *url.URL) *url.URL {
	c := *ws
	c.Scheme = "http"
	if ws.Scheme == "wss" {
		c.Scheme = "https"
	}
	c.Path, c.RawPath, c.RawQuery, c.Fragment = "", "", "", ""
	return &c
}
