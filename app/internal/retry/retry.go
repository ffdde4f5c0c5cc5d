// Package retry holds the one backoff every retry loop uses: a wait that doubles
// from Initial to Max (optionally with jitter), and a sleep that ends with its context.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the wait between attempts. The zero value is not useful; set Initial and Max.
type Backoff struct {
	Initial, Max time.Duration
	// Jitter draws each wait from [d/2, d], so clients retrying at once (every node
	// after a Redis restart) spread out.
	Jitter bool

	next time.Duration
}

// Next returns the wait before the next attempt and doubles the one after, up to Max.
func (b *Backoff) Next() time.Duration {
	if b.next == 0 {
		b.next = b.Initial
	}
	d := b.next
	b.next = min(2*b.next, b.Max)
	if b.Jitter {
		d = d/2 + rand.N(d/2+1)
	}
	return d
}

// Reset starts the waits from Initial again (after a success).
func (b *Backoff) Reset() { b.next = 0 }

// Sleep waits d unless ctx ends first; it reports whether the whole wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
