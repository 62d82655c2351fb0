package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ignis-go/wscomponent/server"
)

// offable lists the numeric options documented "Off: …"; every other
// numeric option must refuse Off.
var offable = map[string]bool{
	"MessageRate":           true,
	"MaxPendingConnections": true,
	"MaxConnectionsPerUser": true,
	"DrainWindow":           true,
	"Pollers":               true,
}

var durationType = reflect.TypeFor[time.Duration]()

// configFields returns the exported fields of Config that satisfy keep.
func configFields(tb testing.TB, keep func(reflect.StructField) bool) []reflect.StructField {
	tb.Helper()
	t := reflect.TypeFor[server.Config]()
	var out []reflect.StructField
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && keep(f) {
			out = append(out, f)
		}
	}
	return out
}

func jsonKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

func isNumber(f reflect.StructField) bool {
	switch f.Type.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// decode unmarshals give into a zero Config.
func decode(tb testing.TB, give string) (server.Config, error) {
	tb.Helper()
	var c server.Config
	err := json.Unmarshal([]byte(give), &c)
	return c, err
}

// wantFieldErrors checks that err names each of fields, and nothing when
// fields is empty.
func wantFieldErrors(tb testing.TB, err error, fields ...string) {
	tb.Helper()
	if len(fields) == 0 {
		if err != nil {
			tb.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		tb.Fatalf("no error, want one naming %v", fields)
	}
	var ce *server.ConfigError
	if !errors.As(err, &ce) {
		tb.Errorf("%v: not a *server.ConfigError", err)
	}
	for _, f := range fields {
		if !strings.Contains(err.Error(), "Config."+f+" ") {
			tb.Errorf("error does not name %s: %v", f, err)
		}
	}
}

func TestConfigUnmarshalJSON(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		want    server.Config
		wantErr []string // fields the error must name
	}{
		{name: "ignis milliseconds", give: `{"authTimeout":5000}`, want: server.Config{AuthTimeout: 5 * time.Second}},
		{name: "duration string", give: `{"authTimeout":"5s"}`, want: server.Config{AuthTimeout: 5 * time.Second}},
		{name: "compound duration", give: `{"heartbeatInterval":"1m30s"}`, want: server.Config{HeartbeatInterval: 90 * time.Second}},
		{name: "fractional milliseconds", give: `{"writeTimeout":1.5}`, want: server.Config{WriteTimeout: 1500 * time.Microsecond}},
		{name: "key case as encoding/json", give: `{"AuthTimeout":5000}`, want: server.Config{AuthTimeout: 5 * time.Second}},
		{name: "rate off", give: `{"messageRate":"off"}`, want: server.Config{MessageRate: server.Off}},
		{name: "rate -1", give: `{"messageRate":-1}`, want: server.Config{MessageRate: server.Off}},
		{name: "pending off", give: `{"maxPendingConnections":"off"}`, want: server.Config{MaxPendingConnections: server.Off}},
		{name: "per user off", give: `{"maxConnectionsPerUser":"OFF"}`, want: server.Config{MaxConnectionsPerUser: server.Off}},
		{name: "duration off", give: `{"drainWindow":"off"}`, want: server.Config{DrainWindow: server.Off}},
		{name: "duration -1 is Off, not -1ms", give: `{"drainWindow":-1}`, want: server.Config{DrainWindow: server.Off}},
		{name: "pings false", give: `{"sendPings":false}`, want: server.Config{SendPings: server.Bool(false)}},
		{name: "pings off", give: `{"sendPings":"off"}`, want: server.Config{SendPings: server.Bool(false)}},
		{name: "no default rooms", give: `{"defaultRooms":[]}`, want: server.Config{DefaultRooms: []string{}}},
		{name: "unknown keys ignored", give: `{"noSuchOption":1,"path":"/x"}`, want: server.Config{Path: "/x"}},
		{name: "null", give: `null`},
		{name: "duration bool", give: `{"authTimeout":true}`, wantErr: []string{"AuthTimeout"}},
		{name: "duration without unit", give: `{"authTimeout":"5000"}`, wantErr: []string{"AuthTimeout"}},
		{name: "duration overflow", give: `{"authTimeout":1e300}`, wantErr: []string{"AuthTimeout"}},
		{name: "int as string", give: `{"maxPayloadLength":"big"}`, wantErr: []string{"MaxPayloadLength"}},
		{name: "int fraction", give: `{"publishQueue":1.5}`, wantErr: []string{"PublishQueue"}},
		{name: "float word", give: `{"messageRate":"fast"}`, wantErr: []string{"MessageRate"}},
		{name: "bool as string", give: `{"sendPings":"yes"}`, wantErr: []string{"SendPings"}},
		{name: "list as string", give: `{"defaultRooms":"lobby"}`, wantErr: []string{"DefaultRooms"}},
		{
			name:    "every bad field named",
			give:    `{"authTimeout":{},"messageBurst":"x","redisRouting":3}`,
			wantErr: []string{"AuthTimeout", "MessageBurst", "RedisRouting"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(t, tt.give)
			wantFieldErrors(t, err, tt.wantErr...)
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConfigUnmarshalJSONNotObject(t *testing.T) {
	if _, err := decode(t, `[1]`); err == nil || !strings.Contains(err.Error(), "Config") {
		t.Fatalf("err = %v, want a Config error", err)
	}
}

func TestConfigUnmarshalJSONKeepsAbsentFields(t *testing.T) {
	c := server.Config{Path: "/live", AuthTimeout: time.Second}
	if err := json.Unmarshal([]byte(`{"idleTimeout":"2m"}`), &c); err != nil {
		t.Fatal(err)
	}
	want := server.Config{Path: "/live", AuthTimeout: time.Second, IdleTimeout: 2 * time.Minute}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if err := json.Unmarshal([]byte(`{"path":"/other","authTimeout":"soon"}`), &c); err == nil {
		t.Fatal("no error for a bad duration")
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("a failed decode changed the Config: %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		give    server.Config
		wantErr []string
	}{
		{name: "zero", give: server.Config{}},
		{name: "Off where allowed", give: server.Config{
			MessageRate: server.Off, MaxPendingConnections: server.Off,
			MaxConnectionsPerUser: server.Off, DrainWindow: server.Off,
		}},
		{name: "plain values", give: server.Config{
			AuthTimeout: time.Millisecond, MaxPayloadLength: 1 << 10, BackpressureLimit: 1 << 10,
			MessageRate: 0.5, RedisRouting: server.RoutingPattern, MaxRoomsPerClient: 3,
		}},
		{name: "5µs trap", give: server.Config{AuthTimeout: 5 * time.Microsecond}, wantErr: []string{"AuthTimeout"}},
		{name: "negative duration", give: server.Config{HeartbeatTimeout: -time.Second}, wantErr: []string{"HeartbeatTimeout"}},
		{name: "Off not allowed", give: server.Config{AuthTimeout: server.Off, PublishQueue: server.Off}, wantErr: []string{"AuthTimeout", "PublishQueue"}},
		{name: "negative rate", give: server.Config{MessageRate: -2}, wantErr: []string{"MessageRate"}},
		{name: "NaN rate", give: server.Config{MessageRate: math.NaN()}, wantErr: []string{"MessageRate"}},
		{name: "negative cap", give: server.Config{MaxPendingConnections: -10}, wantErr: []string{"MaxPendingConnections"}},
		{name: "negative per user", give: server.Config{MaxConnectionsPerUser: -2}, wantErr: []string{"MaxConnectionsPerUser"}},
		{name: "short drain", give: server.Config{DrainWindow: 500 * time.Microsecond}, wantErr: []string{"DrainWindow"}},
		{name: "huge payload", give: server.Config{MaxPayloadLength: 1<<30 + 1}, wantErr: []string{"MaxPayloadLength"}},
		{name: "tiny payload", give: server.Config{MaxPayloadLength: 100}, wantErr: []string{"MaxPayloadLength"}},
		{name: "tiny backpressure", give: server.Config{BackpressureLimit: 1023}, wantErr: []string{"BackpressureLimit"}},
		{name: "unknown routing", give: server.Config{RedisRouting: "broadcast"}, wantErr: []string{"RedisRouting"}},
		{name: "default rooms do not fit", give: server.Config{MaxRoomsPerClient: 2}, wantErr: []string{"MaxRoomsPerClient"}},
		{name: "no default rooms fit in 1", give: server.Config{DefaultRooms: []string{}, MaxRoomsPerClient: 1}},
		{
			name:    "every bad field named",
			give:    server.Config{AuthTimeout: 5, MessageRate: -3, EncryptedBatchLimit: -1, RedisRouting: "x"},
			wantErr: []string{"AuthTimeout", "MessageRate", "EncryptedBatchLimit", "RedisRouting"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantFieldErrors(t, tt.give.Validate(), tt.wantErr...)
		})
	}
}

// TestConfigJSONThenValidate is the path of a config file: decode, then New
// validates.
func TestConfigJSONThenValidate(t *testing.T) {
	tests := []struct {
		give    string
		wantErr []string
	}{
		{give: `{"authTimeout":5000}`},
		{give: `{"authTimeout":"5s","messageRate":"off","drainWindow":"off","maxConnectionsPerUser":-1}`},
		{give: `{"authTimeout":0.005}`, wantErr: []string{"AuthTimeout"}},
		{give: `{"authTimeout":"5us"}`, wantErr: []string{"AuthTimeout"}},
		{give: `{"idleTimeout":0.5}`, wantErr: []string{"IdleTimeout"}},
		{give: `{"heartbeatInterval":-5000}`, wantErr: []string{"HeartbeatInterval"}},
		{give: `{"messageRate":-5}`, wantErr: []string{"MessageRate"}},
		{give: `{"maxPendingConnections":-2}`, wantErr: []string{"MaxPendingConnections"}},
		{give: `{"authTimeout":"off"}`, wantErr: []string{"AuthTimeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			c, err := decode(t, tt.give)
			if err != nil {
				t.Fatal(err)
			}
			wantFieldErrors(t, c.Validate(), tt.wantErr...)
		})
	}
}

// TestConfigEveryDurationField covers fields added to Config after this
// test was written: each time.Duration field takes both JSON forms, Off,
// refuses the 5µs trap by name, and round-trips as milliseconds.
func TestConfigEveryDurationField(t *testing.T) {
	fields := configFields(t, func(f reflect.StructField) bool { return f.Type == durationType })
	if len(fields) < 9 {
		t.Fatalf("found %d duration fields, want at least 9", len(fields))
	}
	for _, f := range fields {
		key := jsonKey(f)
		t.Run(f.Name, func(t *testing.T) {
			if key == "" || key == "-" {
				t.Fatalf("no JSON key in tag %q", f.Tag)
			}
			for _, tt := range []struct {
				give string
				want time.Duration
			}{
				{give: `5000`, want: 5 * time.Second},
				{give: `"5s"`, want: 5 * time.Second},
				{give: `"1m30s"`, want: 90 * time.Second},
				{give: `"off"`, want: server.Off},
				{give: `-1`, want: server.Off},
			} {
				var c server.Config
				if err := json.Unmarshal([]byte(`{"`+key+`":`+tt.give+`}`), &c); err != nil {
					t.Fatalf("%s: %v", tt.give, err)
				}
				if got := reflect.ValueOf(c).FieldByIndex(f.Index).Interface(); got != tt.want {
					t.Errorf("%s: got %v, want %v", tt.give, got, tt.want)
				}
			}

			var c server.Config
			v := reflect.ValueOf(&c).Elem().FieldByIndex(f.Index)
			v.SetInt(int64(5 * time.Microsecond))
			wantFieldErrors(t, c.Validate(), f.Name)

			v.SetInt(server.Off)
			if offable[f.Name] {
				wantFieldErrors(t, c.Validate())
			} else {
				wantFieldErrors(t, c.Validate(), f.Name)
			}

			v.SetInt(int64(1500 * time.Millisecond))
			b, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			if want := `{"` + key + `":1500}`; string(b) != want {
				t.Errorf("marshal: got %s, want %s", b, want)
			}
		})
	}
}

// TestConfigEveryNumberField: every int, int64 and float64 option refuses a
// negative value by name, takes "off" in JSON, and accepts Off only where
// it is documented.
func TestConfigEveryNumberField(t *testing.T) {
	for _, f := range configFields(t, isNumber) {
		t.Run(f.Name, func(t *testing.T) {
			var c server.Config
			v := reflect.ValueOf(&c).Elem().FieldByIndex(f.Index)
			set := func(x float64) {
				if v.CanInt() {
					v.SetInt(int64(x))
				} else {
					v.SetFloat(x)
				}
			}
			set(-2)
			wantFieldErrors(t, c.Validate(), f.Name)

			if err := json.Unmarshal([]byte(`{"`+jsonKey(f)+`":"off"}`), &c); err != nil {
				t.Fatal(err)
			}
			if got := v.Convert(reflect.TypeFor[float64]()).Float(); got != server.Off {
				t.Fatalf(`"off" decoded to %v`, got)
			}
			if offable[f.Name] {
				wantFieldErrors(t, c.Validate())
			} else {
				wantFieldErrors(t, c.Validate(), f.Name)
			}
		})
	}
	for name := range offable {
		if _, ok := reflect.TypeFor[server.Config]().FieldByName(name); !ok {
			t.Errorf("offable lists %s, which Config does not have", name)
		}
	}
}

func TestConfigMarshalJSONRoundTrip(t *testing.T) {
	give := server.Config{
		Path:                  "/socket",
		DefaultRooms:          []string{},
		AuthTimeout:           5 * time.Second,
		HeartbeatInterval:     1500 * time.Microsecond,
		HeartbeatTimeout:      -time.Millisecond,
		SendPings:             server.Bool(false),
		MaxPayloadLength:      1 << 20,
		MessageRate:           server.Off,
		MaxPendingConnections: server.Off,
		DrainWindow:           server.Off,
		RedisRouting:          server.RoutingSharded,
	}
	b, err := json.Marshal(give)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"authTimeout":5000`, `"heartbeatInterval":"1.5ms"`, `"heartbeatTimeout":"-1ms"`,
		`"defaultRooms":[]`, `"sendPings":false`, `"messageRate":"off"`,
		`"maxPendingConnections":"off"`, `"drainWindow":"off"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	got, err := decode(t, string(b))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, give) {
		t.Errorf("round trip: got %+v, want %+v", got, give)
	}
	if b, _ := json.Marshal(server.Config{}); string(b) != `{}` {
		t.Errorf("zero Config marshals to %s, want {}", b)
	}
}

func TestStatsJSON(t *testing.T) {
	give := server.Stats{
		Connections:     2,
		Accepted:        3,
		RedisSubscribed: true,
		RedisDowntime:   1500 * time.Millisecond,
		RedisLastGap:    2 * time.Second,
	}
	b, err := json.Marshal(give)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  string
		want any
	}{
		{key: "connections", want: 2.0},
		{key: "accepted", want: 3.0},
		{key: "redisSubscribed", want: true},
		{key: "redisDowntimeMs", want: 1500.0},
		{key: "redisLastGapMs", want: 2000.0},
		{key: "callbackPanics", want: 0.0},
	}
	for _, tt := range tests {
		if got := m[tt.key]; got != tt.want {
			t.Errorf("%s = %v, want %v (in %s)", tt.key, got, tt.want, b)
		}
	}
	var back server.Stats
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != give {
		t.Errorf("round trip: got %+v, want %+v", back, give)
	}
}

// TestStatsEveryFieldTagged keeps fields added to Stats camelCase, with
// durations in milliseconds.
func TestStatsEveryFieldTagged(t *testing.T) {
	st := reflect.TypeFor[server.Stats]()
	var s server.Stats
	for i := range st.NumField() {
		f := st.Field(i)
		key := jsonKey(f)
		if key == "" || key[0] < 'a' || key[0] > 'z' {
			t.Errorf("%s: JSON key %q, want camelCase", f.Name, key)
		}
		if f.Type == durationType {
			if !strings.HasSuffix(key, "Ms") {
				t.Errorf("%s: JSON key %q, want a name ending in Ms", f.Name, key)
			}
			reflect.ValueOf(&s).Elem().Field(i).SetInt(int64(7 * time.Millisecond))
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for i := range st.NumField() {
		if f := st.Field(i); f.Type == durationType && m[jsonKey(f)] != 7.0 {
			t.Errorf("%s written as %v, want 7 (milliseconds)", f.Name, m[jsonKey(f)])
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	auth := func(context.Context, server.AuthenticateRequest) (*server.AuthResult, error) {
		return nil, errors.New("unused")
	}
	_, err := server.New(server.Options{
		Config:       server.Config{AuthTimeout: 5000, MaxPendingConnections: -5},
		Redis:        rdb,
		Authenticate: auth,
	})
	wantFieldErrors(t, err, "AuthTimeout", "MaxPendingConnections")

	h, err := server.New(server.Options{
		Config:       server.Config{MessageRate: server.Off, DrainWindow: server.Off, MaxConnectionsPerUser: server.Off},
		Redis:        rdb,
		Authenticate: auth,
	})
	if err != nil || h == nil {
		t.Fatalf("New with Off options: %v", err)
	}
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func ExampleConfig_UnmarshalJSON() {
	var c server.Config
	err := json.Unmarshal([]byte(`{"authTimeout":5000,"heartbeatInterval":"1m","messageRate":"off"}`), &c)
	fmt.Println(c.AuthTimeout, c.HeartbeatInterval, c.MessageRate == server.Off, err)

	err = json.Unmarshal([]byte(`{"authTimeout":0.005}`), &c)
	fmt.Println(err, c.Validate())
	// Output:
	// 5s 1m0s true <nil>
	// <nil> server: Config.AuthTimeout is 5µs: want 0 for the default (5s), or at least 1ms
}
