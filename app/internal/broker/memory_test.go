package broker

import (
	"testing"
	"time"
)

func TestMemoryContract(t *testing.T) {
	runBrokerContract(t, func(t *testing.T) backend {
		m, err := NewMemory(MemoryConfig{Window: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1000, 0)
		m.now = func() time.Time { return now }
		return backend{a: m, b: m, window: time.Minute, advance: func(d time.Duration) { now = now.Add(d) }}
	})
}

func TestMemoryRejectsBadWindow(t *testing.T) {
	if _, err := NewMemory(MemoryConfig{}); err == nil {
		t.Fatal("a zero window must be refused")
	}
}
