// Package redisconn builds the redis.UniversalClient that the WebSocket
// server helper and the emitter share: a single node, a Redis Cluster or a
// master found through Redis Sentinel, from Options or from a URL.
//
// The kind of client is always chosen explicitly (Options.Cluster,
// Options.MasterName, or the URL scheme), never guessed from the number of
// addresses as redis.NewUniversalClient does: a list of two seed nodes that
// silently becomes a cluster client is a surprise in production.
//
// URL forms accepted by FromURL:
//
//	redis://[user:pass@]host:port[/db][?opt=value…]            one node
//	rediss://…                                                 one node over TLS
//	unix://[user:pass@]/path/to/redis.sock[?db=N]              one node over a Unix socket
//	redis+cluster://[user:pass@]host:port[,host:port…][/][?opt=value…]
//	rediss+cluster://…                                         cluster over TLS
//	redis+sentinel://[user:pass@]host:port[,host:port…]/master[/db][?opt=value…]
//	rediss+sentinel://…                                        Sentinel and master over TLS
//
// Query options are go-redis' (snake case field names such as dial_timeout,
// read_timeout, pool_size, max_retries; see redis.ParseURL), plus
// skip_verify=true for the TLS forms. A port left out defaults to 6379, or
// 26379 for a Sentinel. In a sentinel URL the user and password are those of
// the Redis master; the Sentinels' own credentials, if they have any, go in
// the sentinel_username and sentinel_password query options. In the TLS
// cluster and sentinel forms every node's certificate is checked against the
// host name that node is dialled at.
package redisconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/redis/go-redis/v9"
)

// Defaults applied to zero Options fields. Spelled out here so that the
// documented behaviour does not drift with go-redis' own defaults.
const (
	DefaultDialTimeout = 5 * time.Second
	DefaultReadTimeout = 5 * time.Second
	// DefaultRedisPort is the port of a node address given without one.
	DefaultRedisPort = "6379"
	// DefaultSentinelPort is the port of a Sentinel address given without one.
	DefaultSentinelPort = "26379"
)

// Errors returned by New and FromURL; test with errors.Is.
var (
	// ErrNoAddr means Options.Addrs (or a URL's host list) is empty.
	ErrNoAddr = errors.New("redisconn: at least one address is required")
	// ErrClusterDB means a database other than 0 was asked of a cluster,
	// which has only database 0.
	ErrClusterDB = errors.New("redisconn: a Redis Cluster has only database 0")
	// ErrNoMasterName means a sentinel URL does not name the master.
	ErrNoMasterName = errors.New("redisconn: a sentinel URL needs the master name as its path: redis+sentinel://host:26379/mymaster[/db]")
)

// Options says which Redis deployment to connect to and how. A zero field
// takes the default written next to it.
type Options struct {
	// Addrs are "host:port" addresses; required. With neither Cluster nor
	// MasterName exactly one node; with Cluster the seed nodes (any of the
	// cluster's nodes, the client discovers the rest); with MasterName the
	// Sentinels' addresses.
	Addrs []string

	// MasterName, when set, connects through Redis Sentinel to the master
	// the Sentinels at Addrs know by this name, following failovers.
	MasterName string

	// Cluster selects a Redis Cluster client. It excludes MasterName.
	Cluster bool

	// Username and Password authenticate to the Redis nodes: an ACL user,
	// or only Password for requirepass (Username empty means "default").
	Username string
	Password string

	// SentinelUsername and SentinelPassword authenticate to the Sentinels
	// (sentinel requirepass / ACL); only with MasterName. Default: none.
	SentinelUsername string
	SentinelPassword string

	// DB is the database number; default 0. It must be 0 with Cluster.
	DB int

	// TLS enables TLS with this configuration; nil (the default) means
	// plain TCP.
	TLS *tls.Config

	// DialTimeout bounds establishing a connection; default
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// ReadTimeout bounds reading one reply; default DefaultReadTimeout;
	// -1 means no timeout. Pub/Sub receives are not bound by it.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one command; default ReadTimeout; -1
	// means no timeout.
	WriteTimeout time.Duration

	// PoolSize is the number of connections per node; default go-redis'
	// 10 per GOMAXPROCS.
	PoolSize int
}

// kind is the family of client a config builds.
type kind int

const (
	kindSingle kind = iota
	kindCluster
	kindSentinel
)

// config is go-redis options for one kind of client, as New and FromURL
// resolve them; exactly the field for kind is set.
type config struct {
	kind     kind
	single   *redis.Options
	cluster  *redis.ClusterOptions
	failover *redis.FailoverOptions
}

// New returns a client for the deployment o describes: a *redis.ClusterClient
// when o.Cluster is set, a Sentinel-backed *redis.Client (go-redis'
// failover client) when o.MasterName is set, else a *redis.Client. It does
// not connect: the first command does, so call Ping to check the address.
func New(o Options) (redis.UniversalClient, error) {
	cfg, err := o.config()
	if err != nil {
		return nil, err
	}
	return cfg.client(), nil
}

// config validates o and converts it to go-redis options.
func (o Options) config() (config, error) {
	if len(o.Addrs) == 0 {
		return config{}, ErrNoAddr
	}
	for _, a := range o.Addrs {
		if err := checkAddr(a); err != nil {
			return config{}, err
		}
	}
	switch {
	case o.Cluster && o.MasterName != "":
		return config{}, errors.New("redisconn: Cluster and MasterName exclude each other (Redis Cluster has no Sentinel)")
	case !o.Cluster && o.MasterName == "" && len(o.Addrs) > 1:
		return config{}, fmt.Errorf("redisconn: %d addresses for a single node; set Cluster for a Redis Cluster or MasterName for Sentinel", len(o.Addrs))
	case o.MasterName == "" && (o.SentinelUsername != "" || o.SentinelPassword != ""):
		return config{}, errors.New("redisconn: SentinelUsername/SentinelPassword given without MasterName")
	case o.Cluster && o.DB != 0:
		return config{}, ErrClusterDB
	case o.DB < 0:
		return config{}, fmt.Errorf("redisconn: invalid database number %d", o.DB)
	case o.PoolSize < 0:
		return config{}, fmt.Errorf("redisconn: invalid pool size %d", o.PoolSize)
	}

	dial := o.DialTimeout
	if dial == 0 {
		dial = DefaultDialTimeout
	}
	read := o.ReadTimeout
	if read == 0 {
		read = DefaultReadTimeout
	}
	write := o.WriteTimeout
	if write == 0 {
		write = read
	}
	addrs := slices.Clone(o.Addrs)

	switch {
	case o.Cluster:
		return config{kind: kindCluster, cluster: &redis.ClusterOptions{
			Addrs:        addrs,
			Username:     o.Username,
			Password:     o.Password,
			TLSConfig:    o.TLS,
			DialTimeout:  dial,
			ReadTimeout:  read,
			WriteTimeout: write,
			PoolSize:     o.PoolSize,
		}}, nil
	case o.MasterName != "":
		return config{kind: kindSentinel, failover: &redis.FailoverOptions{
			MasterName:       o.MasterName,
			SentinelAddrs:    addrs,
			SentinelUsername: o.SentinelUsername,
			SentinelPassword: o.SentinelPassword,
			Username:         o.Username,
			Password:         o.Password,
			DB:               o.DB,
			TLSConfig:        o.TLS,
			DialTimeout:      dial,
			ReadTimeout:      read,
			WriteTimeout:     write,
			PoolSize:         o.PoolSize,
		}}, nil
	default:
		return config{kind: kindSingle, single: &redis.Options{
			Addr:         addrs[0],
			Username:     o.Username,
			Password:     o.Password,
			DB:           o.DB,
			TLSConfig:    o.TLS,
			DialTimeout:  dial,
			ReadTimeout:  read,
			WriteTimeout: write,
			PoolSize:     o.PoolSize,
		}}, nil
	}
}

// checkAddr accepts "host:port" with a non-empty port.
func checkAddr(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil || port == "" {
		return fmt.Errorf("redisconn: address %q is not host:port", a)
	}
	return nil
}

// client builds the go-redis client for cfg.
func (cfg config) client() redis.UniversalClient {
	switch cfg.kind {
	case kindCluster:
		return redis.NewClusterClient(cfg.cluster)
	case kindSentinel:
		c := redis.NewFailoverClient(cfg.failover)
		remember(c, describeSentinel(cfg.failover.MasterName, cfg.failover.SentinelAddrs))
		return c
	default:
		return redis.NewClient(cfg.single)
	}
}

// FromURL returns a client for the deployment rawURL names; the accepted
// forms are in the package doc. Like New it does not connect.
func FromURL(rawURL string) (redis.UniversalClient, error) {
	cfg, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return cfg.client(), nil
}

// parseURL resolves rawURL to go-redis options. Errors never quote the URL,
// which may hold a password.
func parseURL(rawURL string) (config, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return config{}, errors.New("redisconn: URL has no scheme; want redis://, rediss://, unix://, redis+cluster:// or redis+sentinel://")
	}
	switch scheme {
	case "redis", "rediss", "unix":
		if scheme != "unix" && strings.Contains(hostList(authority(rest)), ",") {
			return config{}, fmt.Errorf("redisconn: several hosts in a %s:// URL; use %s+cluster:// or %s+sentinel://", scheme, scheme, scheme)
		}
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return config{}, wrapParseErr(err)
		}
		return config{kind: kindSingle, single: o}, nil
	case "redis+cluster", "rediss+cluster":
		return parseClusterURL(strings.TrimSuffix(scheme, "+cluster"), rest)
	case "redis+sentinel", "rediss+sentinel":
		return parseSentinelURL(strings.TrimSuffix(scheme, "+sentinel"), rest)
	default:
		return config{}, fmt.Errorf("redisconn: unsupported URL scheme %q; want redis, rediss, unix, redis+cluster, rediss+cluster, redis+sentinel or rediss+sentinel", scheme)
	}
}

// authority returns the "[userinfo@]hosts" part of what follows "://".
func authority(rest string) string {
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		return rest[:i]
	}
	return rest
}

// hostList returns the hosts of an authority, without "userinfo@".
func hostList(auth string) string {
	if i := strings.LastIndex(auth, "@"); i >= 0 {
		return auth[i+1:]
	}
	return auth
}

// multiHostURL is a URL whose authority lists several comma-separated hosts,
// which net/url cannot parse on its own.
type multiHostURL struct {
	hosts []string // host:port, default port filled in
	url   *url.URL // the rest: user, path, query; Host is a placeholder
}

// splitMultiHost parses what follows "<scheme>://" in a cluster or sentinel URL.
func splitMultiHost(rest, defaultPort string) (multiHostURL, error) {
	auth := authority(rest)
	tail := rest[len(auth):]
	hostsPart := hostList(auth)
	userinfo := auth[:len(auth)-len(hostsPart)] // "" or "user:pass@"
	var hosts []string
	for h := range strings.SplitSeq(hostsPart, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			// No port (or a bare IPv6 literal in brackets): add the default.
			h = net.JoinHostPort(strings.Trim(h, "[]"), defaultPort)
		}
		if err := checkAddr(h); err != nil {
			return multiHostURL{}, err
		}
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		return multiHostURL{}, ErrNoAddr
	}
	u, err := url.Parse("x://" + userinfo + "placeholder" + tail)
	if err != nil {
		return multiHostURL{}, wrapParseErr(err)
	}
	return multiHostURL{hosts: hosts, url: u}, nil
}

// takeSkipVerify removes skip_verify from q and reports its value.
func takeSkipVerify(q url.Values, tlsOn bool) (bool, error) {
	if !q.Has("skip_verify") {
		return false, nil
	}
	v := q.Get("skip_verify")
	q.Del("skip_verify")
	if !tlsOn {
		return false, errors.New("redisconn: skip_verify needs a TLS (rediss) URL")
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("redisconn: invalid skip_verify %q", v)
	}
	return b, nil
}

// nodeTLS is the TLS config of a multi-host URL: no fixed ServerName, so
// that crypto/tls checks every node against the host it was dialled at.
func nodeTLS(skipVerify bool) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skipVerify}
}

// parseClusterURL handles redis+cluster:// and rediss+cluster://; base is
// "redis" or "rediss".
func parseClusterURL(base, rest string) (config, error) {
	m, err := splitMultiHost(rest, DefaultRedisPort)
	if err != nil {
		return config{}, err
	}
	if p := strings.Trim(m.url.Path, "/"); p != "" && p != "0" {
		return config{}, fmt.Errorf("%w (the URL path selects %q)", ErrClusterDB, p)
	}
	q := m.url.Query()
	if db := q.Get("db"); db != "" && db != "0" {
		return config{}, fmt.Errorf("%w (the URL asks for db=%s)", ErrClusterDB, db)
	}
	q.Del("db")
	skip, err := takeSkipVerify(q, base == "rediss")
	if err != nil {
		return config{}, err
	}
	for _, h := range m.hosts[1:] {
		q.Add("addr", h)
	}
	// Hand the rest to go-redis so that every option it knows stays available.
	u := url.URL{Scheme: "redis", User: m.url.User, Host: m.hosts[0], RawQuery: q.Encode()}
	o, err := redis.ParseClusterURL(u.String())
	if err != nil {
		return config{}, wrapParseErr(err)
	}
	if base == "rediss" {
		o.TLSConfig = nodeTLS(skip)
	}
	return config{kind: kindCluster, cluster: o}, nil
}

// parseSentinelURL handles redis+sentinel:// and rediss+sentinel://; base is
// "redis" or "rediss".
func parseSentinelURL(base, rest string) (config, error) {
	m, err := splitMultiHost(rest, DefaultSentinelPort)
	if err != nil {
		return config{}, err
	}
	segs := strings.FieldsFunc(m.url.Path, func(r rune) bool { return r == '/' })
	if len(segs) == 0 {
		return config{}, ErrNoMasterName
	}
	if len(segs) > 2 {
		return config{}, errors.New("redisconn: a sentinel URL path is /master or /master/db")
	}
	master := segs[0]
	db := "0"
	if len(segs) == 2 {
		db = segs[1]
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return config{}, fmt.Errorf("redisconn: invalid database number %q in sentinel URL", db)
		}
	}

	q := m.url.Query()
	for _, k := range []string{"master_name", "username", "password", "addr"} {
		if q.Has(k) {
			return config{}, fmt.Errorf("redisconn: option %s is not allowed in a sentinel URL; use the URL's host list, user info and path", k)
		}
	}
	skip, err := takeSkipVerify(q, base == "rediss")
	if err != nil {
		return config{}, err
	}
	// go-redis' failover URL takes the Sentinels' credentials from the user
	// info and the master's from the query; ours is the other way round
	// (the master's credentials are the ones nearly everyone needs).
	var sentinelUser *url.Userinfo
	if su, sp := q.Get("sentinel_username"), q.Get("sentinel_password"); su != "" || sp != "" {
		sentinelUser = url.UserPassword(su, sp)
	}
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	if m.url.User != nil {
		q.Set("username", m.url.User.Username())
		if p, ok := m.url.User.Password(); ok {
			q.Set("password", p)
		}
	}
	q.Set("master_name", master)
	for _, h := range m.hosts[1:] {
		q.Add("addr", h)
	}
	u := url.URL{Scheme: "redis", User: sentinelUser, Host: m.hosts[0], Path: "/" + db, RawQuery: q.Encode()}
	o, err := redis.ParseFailoverURL(u.String())
	if err != nil {
		return config{}, wrapParseErr(err)
	}
	if base == "rediss" {
		o.TLSConfig = nodeTLS(skip)
	}
	return config{kind: kindSentinel, failover: o}, nil
}

// wrapParseErr adds the package prefix and drops the URL that net/url puts
// in its errors, since it may carry a password.
func wrapParseErr(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return fmt.Errorf("redisconn: invalid URL: %w", err)
}

// descriptions maps the failover clients made here to their description:
// a go-redis failover client does not expose its master name or Sentinels.
// Entries are keyed by weak pointers and removed when a client is collected.
var descriptions sync.Map // weak.Pointer[redis.Client] -> string

func remember(c *redis.Client, desc string) {
	key := weak.Make(c)
	descriptions.Store(key, desc)
	runtime.AddCleanup(c, func(k weak.Pointer[redis.Client]) { descriptions.Delete(k) }, key)
}

func describeSentinel(master string, sentinels []string) string {
	return "sentinel master " + master + " via " + strings.Join(sentinels, ",")
}

// failoverAddr is what go-redis puts in Options().Addr of a failover client.
const failoverAddr = "FailoverClient"

// Addr describes the address(es) c points at, for log lines and error
// messages; it never includes credentials. Examples: "127.0.0.1:6379",
// "unix:/run/redis.sock", "cluster 127.0.0.1:7000,127.0.0.1:7001",
// "sentinel master mymaster via 10.0.0.1:26379,10.0.0.2:26379".
func Addr(c redis.UniversalClient) string {
	switch c := c.(type) {
	case nil:
		return "<nil>"
	case *redis.ClusterClient:
		if c == nil {
			return "<nil>"
		}
		return "cluster " + strings.Join(c.Options().Addrs, ",")
	case *redis.Client:
		if c == nil {
			return "<nil>"
		}
		if d, ok := descriptions.Load(weak.Make(c)); ok {
			return d.(string)
		}
		o := c.Options()
		switch {
		case o.Addr == failoverAddr:
			return "sentinel failover client"
		case o.Network == "unix":
			return "unix:" + o.Addr
		}
		return o.Addr
	case *redis.Ring:
		if c == nil {
			return "<nil>"
		}
		addrs := make([]string, 0, len(c.Options().Addrs))
		for _, a := range c.Options().Addrs {
			addrs = append(addrs, a)
		}
		slices.Sort(addrs)
		return "ring " + strings.Join(addrs, ",")
	default:
		return fmt.Sprintf("%T", c)
	}
}
