package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Off turns off an option that can be turned off, whatever its type: it is
// untyped so that the one spelling fits MessageRate (float64),
// MaxPendingConnections and MaxConnectionsPerUser (int) and DrainWindow
// (time.Duration, where it is -1ns). In JSON it is "off" or -1. Each field
// that accepts it says "Off: …" in its comment; Validate rejects it
// everywhere else. SendPings, a bool, is turned off with Bool(false).
const Off = -1

// minDuration is the smallest non-zero duration Validate accepts. Below it
// is almost surely a unit mistake: Config{AuthTimeout: 5000} is 5µs in Go.
const minDuration = time.Millisecond

// offFields names the numeric options that accept Off. An option that
// learns to be turned off is added here and documents "Off: …".
var offFields = map[string]bool{
	"MessageRate":           true,
	"MaxPendingConnections": true,
	"MaxConnectionsPerUser": true,
	"DrainWindow":           true,
	"Pollers":               true,
}

// limit is a bound tighter than the one every numeric field gets
// (not negative; for durations, at least minDuration).
type limit struct {
	min, max int64 // max 0: none
	want     string
}

var limits = map[string]limit{
	// gorilla reads a whole message into memory, one per connection.
	"MaxPayloadLength": {min: 1 << 10, max: 1 << 30, want: "1 KiB (1024) to 1 GiB (1073741824)"},
	// Below a frame or two every message would be dropped.
	"BackpressureLimit": {min: 1 << 10, want: "at least 1 KiB (1024)"},
	"Pollers":           {min: 1, max: 256, want: "1 to 256"},
}

// ConfigError is one bad field of a Config, found by Validate or while
// decoding JSON.
type ConfigError struct {
	Field string // Go field name, e.g. "AuthTimeout"
	Key   string // JSON key, set when the error comes from decoding
	Value string // the value as given (the JSON text when decoding)
	Want  string // what the field accepts
}

func (e *ConfigError) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("server: Config.%s (JSON %q) is %s: want %s", e.Field, e.Key, e.Value, e.Want)
	}
	return fmt.Sprintf("server: Config.%s is %s: want %s", e.Field, e.Value, e.Want)
}

var durationType = reflect.TypeFor[time.Duration]()

// Validate reports every field of c that New would refuse, each as a
// *ConfigError (joined with errors.Join) that names the field and what it
// accepts. Zero fields are valid: they take their defaults. Beyond the
// bounds documented on each field, every number must not be negative (Off
// aside, where accepted), every duration must be zero or at least 1ms, and
// MessageRate must be finite. New calls Validate first.
func (c Config) Validate() error {
	var errs []error
	defaults := reflect.ValueOf(Config{}.withDefaults())
	v := reflect.ValueOf(c)
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if err := checkNumber(f, v.Field(i), defaults.Field(i)); err != nil {
			errs = append(errs, err)
		}
	}
	switch c.RedisRouting {
	case "", RoutingInterest, RoutingPattern, RoutingSharded:
	default:
		errs = append(errs, &ConfigError{Field: "RedisRouting", Value: strconv.Quote(c.RedisRouting),
			Want: fmt.Sprintf("%q (default), %q or %q", RoutingInterest, RoutingPattern, RoutingSharded)})
	}
	// The own-id room and the default rooms are joined first; a cap below
	// them would silently leave the client out of some default rooms.
	rooms := len(c.withDefaults().DefaultRooms)
	if need := 1 + rooms; c.MaxRoomsPerClient > 0 && c.MaxRoomsPerClient < need {
		errs = append(errs, &ConfigError{Field: "MaxRoomsPerClient", Value: strconv.Itoa(c.MaxRoomsPerClient),
			Want: fmt.Sprintf("0 for the default (%d), or at least %d: the own-id room plus %d default rooms",
				Config{}.withDefaults().MaxRoomsPerClient, need, rooms)})
	}
	return errors.Join(errs...)
}

// checkNumber applies the rules every numeric field shares, and its limit.
func checkNumber(f reflect.StructField, v, dflt reflect.Value) error {
	var (
		value  string
		n      int64 // v as an int64, floats rounded towards zero
		ok     bool
		isOff  bool
		minTxt string
	)
	lim, hasLim := limits[f.Name]
	switch {
	case f.Type == durationType:
		d := time.Duration(v.Int())
		n, isOff, value = int64(d), d == Off, d.String()
		ok = d == 0 || d >= minDuration
		minTxt = "at least " + minDuration.String()
	case v.CanInt():
		n = v.Int()
		isOff, value = n == Off, strconv.FormatInt(n, 10)
		ok = n >= 0
		minTxt = "more than 0"
	case v.CanFloat():
		x := v.Float()
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return &ConfigError{Field: f.Name, Value: strconv.FormatFloat(x, 'g', -1, 64), Want: "a finite number"}
		}
		n = int64(x)
		isOff, value = x == Off, strconv.FormatFloat(x, 'g', -1, 64)
		ok = x >= 0
		minTxt = "more than 0"
	default:
		return nil
	}
	if isOff {
		value += " (Off)"
	}
	if hasLim {
		minTxt = lim.want
		ok = n == 0 || n >= lim.min && (lim.max == 0 || n <= lim.max)
	}
	if ok || isOff && offFields[f.Name] {
		return nil
	}
	var want string
	switch zeroDefault := dflt.IsZero(); {
	case offFields[f.Name] && zeroDefault:
		want = "0 or Off (-1) to turn it off, or " + minTxt
	case offFields[f.Name]:
		want = fmt.Sprintf("0 for the default (%v), Off (-1) to turn it off, or %s", dflt.Interface(), minTxt)
	case zeroDefault:
		want = "0, or " + minTxt
	default:
		want = fmt.Sprintf("0 for the default (%v), or %s", dflt.Interface(), minTxt)
	}
	return &ConfigError{Field: f.Name, Value: value, Want: want}
}

// jsonShadow is Config with every JSON field as a json.RawMessage under the
// same tag, built by reflection so that a field added to Config is decoded
// and encoded without an edit here. encoding/json still matches the keys
// (case-insensitively, the last of duplicates winning); the fields are
// then converted one by one, knowing their names.
type jsonShadow struct {
	typ   reflect.Type
	index []int // Config field index of each shadow field
}

var configShadow = sync.OnceValue(func() jsonShadow {
	t := reflect.TypeFor[Config]()
	var s jsonShadow
	var fields []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || f.Tag.Get("json") == "-" {
			continue
		}
		fields = append(fields, reflect.StructField{Name: f.Name, Type: reflect.TypeFor[json.RawMessage](), Tag: f.Tag})
		s.index = append(s.index, i)
	}
	s.typ = reflect.StructOf(fields)
	return s
})

// jsonKey is the key encoding/json uses for f.
func jsonKey(f reflect.StructField) string {
	if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" {
		return name
	}
	return f.Name
}

// UnmarshalJSON decodes c like encoding/json (absent and unknown keys leave
// c as it is), except that:
//
//   - a time.Duration field takes an integer number of milliseconds, as
//     Ignis writes them ({"authTimeout":5000} is 5s; fractions are allowed),
//     or a Go duration string ("5s", "1m30s");
//   - every numeric field takes "off" for Off, and -1 is Off for a
//     duration too (not -1ms); SendPings takes "off" for false;
//   - a value of the wrong type is a *ConfigError naming the field.
//
// Values are not checked here; New calls Validate. On error c is unchanged.
func (c *Config) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		if string(b) == "null" {
			return nil
		}
		return errors.New("server: Config: want a JSON object")
	}
	s := configShadow()
	raw := reflect.New(s.typ)
	if err := json.Unmarshal(b, raw.Interface()); err != nil {
		return fmt.Errorf("server: Config: %w", err)
	}
	out := *c
	dst := reflect.ValueOf(&out).Elem()
	var errs []error
	for i, idx := range s.index {
		msg := raw.Elem().Field(i).Bytes()
		if msg == nil {
			continue
		}
		f := dst.Type().Field(idx)
		if want := decodeField(dst.Field(idx), msg); want != "" {
			errs = append(errs, &ConfigError{Field: f.Name, Key: jsonKey(f), Value: string(msg), Want: want})
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	*c = out
	return nil
}

// decodeField sets v from msg; on failure it returns what v accepts.
func decodeField(v reflect.Value, msg []byte) (want string) {
	if string(msg) == "null" {
		// As encoding/json: nil for pointers and slices, no change otherwise.
		_ = json.Unmarshal(msg, v.Addr().Interface())
		return ""
	}
	str, isStr := "", msg[0] == '"'
	if isStr {
		if json.Unmarshal(msg, &str) != nil {
			isStr = false
		}
	}
	isOff := isStr && strings.EqualFold(str, "off")
	switch {
	case v.Type() == durationType:
		const want = `integer milliseconds (5000), a duration string ("5s", "1m30s") or "off"`
		var d time.Duration
		var err error
		switch {
		case isOff:
			d = Off
		case isStr:
			d, err = time.ParseDuration(str)
		case string(msg) == "-1":
			d = Off
		default:
			d, err = parseMillis(msg)
		}
		if err != nil {
			return want
		}
		v.SetInt(int64(d))
		return ""
	case isOff && (v.CanInt() || v.CanFloat()):
		if v.CanInt() {
			v.SetInt(Off)
		} else {
			v.SetFloat(Off)
		}
		return ""
	case isOff && v.Type() == reflect.TypeFor[*bool]():
		v.Set(reflect.ValueOf(Bool(false)))
		return ""
	}
	if err := json.Unmarshal(msg, v.Addr().Interface()); err != nil {
		switch {
		case v.CanInt():
			return `an integer or "off"`
		case v.CanFloat():
			return `a number or "off"`
		case v.Type() == reflect.TypeFor[*bool]():
			return `true, false or "off"`
		}
		return "JSON that decodes into " + v.Type().String()
	}
	return ""
}

// parseMillis reads a JSON number of milliseconds.
func parseMillis(msg []byte) (time.Duration, error) {
	s := string(msg)
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms > math.MaxInt64/int64(time.Millisecond) || ms < math.MinInt64/int64(time.Millisecond) {
			return 0, errors.New("out of range")
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	ns := math.Round(x * float64(time.Millisecond))
	if math.IsNaN(ns) || ns >= math.MaxInt64 || ns < math.MinInt64 {
		return 0, errors.New("out of range")
	}
	return time.Duration(ns), nil
}

// MarshalJSON encodes c so that UnmarshalJSON reads it back unchanged:
// durations as integer milliseconds (a duration string when not a whole,
// positive number of milliseconds), Off as "off" in the fields that accept
// it. A field with omitempty is left out when it is zero in the Go sense,
// so an empty non-nil DefaultRooms (no default rooms) is written as [],
// unlike encoding/json, which would drop it and turn it into the default.
func (c Config) MarshalJSON() ([]byte, error) {
	s := configShadow()
	raw := reflect.New(s.typ).Elem()
	src := reflect.ValueOf(c)
	for i, idx := range s.index {
		f, v := src.Type().Field(idx), src.Field(idx)
		if v.IsZero() && omitEmpty(f) {
			continue
		}
		var b []byte
		switch {
		case offFields[f.Name] && (v.CanInt() && v.Int() == Off || v.CanFloat() && v.Float() == Off):
			b = []byte(`"off"`)
		case f.Type == durationType:
			b = encodeDuration(time.Duration(v.Int()))
		default:
			var err error
			if b, err = json.Marshal(v.Interface()); err != nil {
				return nil, fmt.Errorf("server: Config.%s: %w", f.Name, err)
			}
		}
		raw.Field(i).SetBytes(b)
	}
	return json.Marshal(raw.Interface())
}

func omitEmpty(f reflect.StructField) bool {
	_, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
	for o := range strings.SplitSeq(opts, ",") {
		if o == "omitempty" || o == "omitzero" {
			return true
		}
	}
	return false
}

// encodeDuration writes whole positive milliseconds as a number and
// anything else as a string: -1 would read back as Off, and a fraction of a
// millisecond would lose nanoseconds.
func encodeDuration(d time.Duration) []byte {
	if d >= 0 && d%time.Millisecond == 0 {
		return strconv.AppendInt(nil, d.Milliseconds(), 10)
	}
	return strconv.AppendQuote(nil, d.String())
}
