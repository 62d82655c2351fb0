package bus

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBackoffGrowsToCapWithJitter(t *testing.T) {
	var b backoff
	want := backoffMin
	for i := range 20 {
		d := b.Next()
		if d < want/2 || d >= want {
			t.Fatalf("attempt %d: wait %v, want in [%v, %v)", i, d, want/2, want)
		}
		want = min(2*want, backoffMax)
	}
	b.Reset()
	if d := b.Next(); d >= backoffMin {
		t.Errorf("after Reset: wait %v, want below %v", d, backoffMin)
	}
}

func TestBackoffWaitEndsWithContext(t *testing.T) {
	var b backoff
	for range 10 {
		b.Next() // at the cap
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if b.Wait(ctx) {
		t.Error("Wait on an ended context reported true")
	}
	if took := time.Since(start); took > backoffMax/2 {
		t.Errorf("Wait took %v on an ended context", took)
	}
}
