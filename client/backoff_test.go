package client

import (
	"testing"
	"time"
)

func TestBackoffFullJitter(t *testing.T) {
	r := Reconnect{Min: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		give     int // attempt
		wantCeil time.Duration
	}{
		{give: 0, wantCeil: 100 * time.Millisecond},
		{give: 1, wantCeil: 200 * time.Millisecond},
		{give: 3, wantCeil: 800 * time.Millisecond},
		{give: 4, wantCeil: time.Second},
		{give: 1000, wantCeil: time.Second}, // no overflow
	}
	for _, tt := range tests {
		var hi time.Duration
		for range 500 {
			d := r.backoff(tt.give)
			if d < 0 || d >= tt.wantCeil {
				t.Fatalf("attempt %d: backoff %v outside [0, %v)", tt.give, d, tt.wantCeil)
			}
			hi = max(hi, d)
		}
		if hi < tt.wantCeil/2 {
			t.Fatalf("attempt %d: largest of 500 backoffs %v, want the range up to %v used", tt.give, hi, tt.wantCeil)
		}
	}
}

func TestDefaultShouldRetry(t *testing.T) {
	tests := []struct {
		give CloseError
		want bool
	}{
		{give: CloseError{Code: 1001}, want: true},
		{give: CloseError{Code: 1006}, want: true},
		{give: CloseError{Code: 1008, Message: "Rate limit exceeded"}, want: true},
		{give: CloseError{Code: 4001}, want: true},
		{give: CloseError{Code: 4002}, want: true},
		{give: CloseError{Code: 4006}, want: true},
		{give: CloseError{Code: 4003, Message: "Authentication error"}, want: true},
		{give: CloseError{Code: 4003, Message: "Authentication failed"}, want: false},
		{give: CloseError{Code: 4004}, want: false},
		{give: CloseError{Code: 4005}, want: false},
		{give: CloseError{Code: 4321}, want: false},
		{give: CloseError{Code: 1000}, want: false},
	}
	for _, tt := range tests {
		if got := DefaultShouldRetry(&tt.give); got != tt.want {
			t.Errorf("DefaultShouldRetry(%+v) = %v, want %v", tt.give, got, tt.want)
		}
	}
}
