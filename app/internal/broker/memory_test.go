package broker

import (
	"sync"
	"testing"
	"time"
)

func TestMemoryContract(t *testing.T) {
	runBrokerContract(t, func(t *testing.T) backend {
		const hold = 200 * time.Millisecond
		m, err := NewMemory(MemoryConfig{Window: time.Minute, Hold: hold})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		now := time.Unix(1000, 0)
		m.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		return backend{a: m, b: m, window: time.Minute, hold: hold,
			advance: func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }}
	})
}

func TestMemoryRejectsBadWindow(t *testing.T) {
	if _, err := NewMemory(MemoryConfig{}); err == nil {
		t.Fatal("a zero window must be refused")
	}
}
