package sessions

import (
	"sync"
	"testing"
	"time"
)

func TestMemoryStore(t *testing.T) {
	m := NewMemory()
	var mu sync.Mutex
	now := time.Unix(0, 0)
	m.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	runStoreContract(t, m, func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	})
}
