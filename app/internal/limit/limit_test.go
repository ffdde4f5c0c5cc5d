package limit

import (
	"fmt"
	"testing"
	"time"
)

func TestKeyed(t *testing.T) {
	tests := []struct {
		name      string
		spec      Spec
		calls     int
		wantAllow int
	}{
		{"zero spec allows everything", Spec{}, 1000, 1000},
		{"burst then refused", Spec{Rate: 1, Burst: 5}, 8, 5},
		{"no refill", Spec{Rate: 0, Burst: 3}, 5, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			k := NewKeyed(tt.spec)
			k.now = func() time.Time { return now }
			allowed := 0
			var lastWait time.Duration
			for range tt.calls {
				ok, wait := k.Allow("a")
				if ok {
					allowed++
				} else {
					lastWait = wait
				}
			}
			if allowed != tt.wantAllow {
				t.Fatalf("allowed %d of %d, want %d", allowed, tt.calls, tt.wantAllow)
			}
			if allowed < tt.calls && lastWait <= 0 {
				t.Fatal("a refusal must say how long to wait")
			}
			if tt.spec.Burst > 0 {
				if ok, _ := k.Allow("b"); !ok {
					t.Fatal("another key has its own bucket")
				}
			}
		})
	}
}

func TestKeyedRefillsAndForgets(t *testing.T) {
	now := time.Unix(1000, 0)
	k := NewKeyed(Spec{Rate: 2, Burst: 2})
	k.now = func() time.Time { return now }
	for i := range 100 {
		k.Allow(fmt.Sprint(i))
	}
	k.Allow("x")
	k.Allow("x")
	if ok, wait := k.Allow("x"); ok || wait != 500*time.Millisecond {
		t.Fatalf("third call: %v, wait %v; want refused for 500ms", ok, wait)
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := k.Allow("x"); !ok {
		t.Fatal("not refilled after 500ms")
	}
	now = now.Add(2 * time.Minute)
	k.Allow("y")
	if n := k.Len(); n != 1 {
		t.Fatalf("%d keys held after every other bucket refilled, want 1", n)
	}
}

// Past MaxKeys the table stays at MaxKeys, and a newcomer still gets a bucket of its
// own: it takes the place of an idle key. (Before, every newcomer shared one bucket,
// so 100,000 addresses in a minute locked every later one out.)
func TestKeyedMaxKeysEvictsInsteadOfStarvingNewcomers(t *testing.T) {
	for _, tc := range []struct {
		maxKeys, wantLen int
	}{
		{3, 3},
		{100, 100},
		{0, 1000}, // no bound: every key is kept
	} {
		now := time.Unix(1000, 0)
		k := NewKeyed(Spec{Rate: 0, Burst: 1, MaxKeys: tc.maxKeys})
		k.now = func() time.Time { return now }
		allowed := 0
		for i := range 1000 {
			now = now.Add(time.Millisecond)
			if ok, _ := k.Allow(fmt.Sprint("key", i)); ok {
				allowed++
			}
		}
		if allowed != 1000 {
			t.Errorf("MaxKeys %d: %d of 1000 new keys allowed, want every one", tc.maxKeys, allowed)
		}
		if k.Len() != tc.wantLen {
			t.Errorf("MaxKeys %d: %d keys held, want %d", tc.maxKeys, k.Len(), tc.wantLen)
		}
	}
}

// Eviction takes an idle key, not the one in use: a key that keeps asking keeps its
// (empty) bucket while newcomers come and go.
func TestKeyedEvictionSparesTheActiveKey(t *testing.T) {
	now := time.Unix(1000, 0)
	k := NewKeyed(Spec{Rate: 0, Burst: 1, MaxKeys: 16})
	k.now = func() time.Time { return now }
	refusedActive := 0
	for i := range 500 {
		now = now.Add(time.Millisecond)
		if ok, _ := k.Allow("active"); !ok {
			refusedActive++
		}
		now = now.Add(time.Millisecond)
		k.Allow(fmt.Sprint("newcomer", i))
	}
	// The active key is the most recent of any sample, so it is never the one evicted.
	if refusedActive != 499 {
		t.Fatalf("the active key was refused %d of 500 times, want all but its first", refusedActive)
	}
}
