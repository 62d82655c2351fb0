package bus

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// RefusedError is returned by Start when Redis answered with an error that
// no retry can fix: a missing or wrong password, an ACL user without the
// permission, a database index out of range, a command the server does not
// know. Start returns it at once instead of waiting for StartTimeout.
// errors.As(err, new(redis.Error)) finds Redis's reply in it. The server
// exports it as server.RedisRefusedError.
type RefusedError struct {
	// Addr is the Redis the bus uses (as redisconn.Addr describes it).
	Addr string
	// Err is the error go-redis returned; it holds Redis's own words.
	Err error
}

// Error names the Redis and quotes its reply.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("server: redis at %s refused the subscription: %v", e.Addr, e.Err)
}

// Unwrap returns Err.
func (e *RefusedError) Unwrap() error { return e.Err }

// permanentPrefixes begin the Redis error replies that the same command with
// the same connection settings will always get again. Anything else
// (LOADING, BUSY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN, MOVED, "max number of
// clients", OOM, network errors) may pass and is retried until RedisTimeout.
var permanentPrefixes = []string{
	"NOAUTH ",    // no password given to a Redis that wants one
	"WRONGPASS ", // wrong user or password (Redis 6+)
	"NOPERM ",    // the ACL user may not run the command or use the channel
	"ERR invalid password",
	"ERR invalid username-password pair",
	"ERR AUTH <password> called without any password configured", // a password given to a Redis without one (6+)
	"ERR Client sent AUTH, but no password is set",               // the same before Redis 6
	"ERR DB index is out of range",                               // SELECT beyond "databases"
	"ERR invalid DB index",
	"ERR SELECT is not allowed in cluster mode",
	"ERR unknown command",                            // e.g. SSUBSCRIBE (sharded mode) before Redis 7
	"ERR This instance has cluster support disabled", // a cluster client on a standalone Redis
}

// permanentRedisError reports whether err holds a Redis error reply that
// retrying cannot change (see permanentPrefixes).
func permanentRedisError(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	for _, p := range permanentPrefixes {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// startWarnEvery bounds Start's WARN lines about a Redis that is not
// ready yet: one per failed attempt, at most one per startWarnEvery. The
// backoff between attempts grows to about one second (backoffMax), so from
// then on nearly every attempt is logged; each line counts the attempts so
// far.
const startWarnEvery = time.Second

// startRetries follows Start's failed attempts: it writes the WARN
// lines and keeps the last meaningful cause for the final error.
type startRetries struct {
	log      *zap.Logger
	addr     string
	start    time.Time
	attempts int // failed attempts so far
	logged   time.Time
	last     error
}

func newStartRetries(log *zap.Logger, addr string, start time.Time) *startRetries {
	return &startRetries{log: log, addr: addr, start: start}
}

// failed records a failed attempt and logs it (rate-limited). A weak cause
// (no reply within the receive timeout, on a live connection) does not
// replace a better one seen before.
func (r *startRetries) failed(err error, weak bool) {
	if !weak || r.last == nil {
		r.last = err
	}
	r.attempts++
	now := time.Now()
	if !r.logged.IsZero() && now.Sub(r.logged) < startWarnEvery {
		return
	}
	r.logged = now
	r.log.Warn("redis not ready at start-up; retrying until RedisTimeout",
		zap.String("addr", r.addr), zap.Int("attempts", r.attempts),
		zap.Duration("waited", now.Sub(r.start).Round(time.Millisecond)), zap.Error(err))
}

// cause is what the final error reports once the time is up: the last
// meaningful failure, not final (the error of the attempt the deadline cut
// short, which mostly just says so) unless nothing else is known, and
// ctxErr when there was no error at all.
func (r *startRetries) cause(final, ctxErr error) error {
	switch {
	case r.last != nil:
		return r.last
	case final != nil:
		return final
	}
	return ctxErr
}

// isReadTimeout reports whether err is a read that ran out of time on an
// established connection: Receive's own wait, not a failure to connect.
func isReadTimeout(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "read" && oe.Timeout()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// startError is Start's final error once its time is up.
func startError(addr string, start time.Time, retries *startRetries, final, ctxErr error) error {
	return fmt.Errorf("server: redis at %s did not confirm the subscriptions within %s: %w",
		addr, time.Since(start).Round(time.Millisecond), retries.cause(final, ctxErr))
}
