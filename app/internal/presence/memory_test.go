package presence

import "testing"

func TestMemoryContract(t *testing.T) {
	runTrackerContract(t, func(t *testing.T) (Tracker, Tracker) {
		m := NewMemory()
		return m, m
	})
}
