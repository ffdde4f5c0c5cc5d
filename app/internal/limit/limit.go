// Package limit rate-limits by key (a client address, a username) with one token
// bucket per key, forgetting keys whose bucket has refilled so memory stays bounded.
package limit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Spec is a token bucket: Burst at once, then Rate per second. A zero Burst is no limit.
type Spec struct {
	Rate  float64
	Burst int
	// MaxKeys bounds the buckets kept; past it, a new key takes the place of the
	// least recently used of a few sampled keys, so a flood of distinct keys
	// (addresses) cannot grow the map, nor starve the next newcomer by making it share
	// an exhausted bucket. 0 is no bound, for keys the server vouches for (signed-in
	// users).
	MaxKeys int
}

// DefaultMaxKeys is MaxKeys for keys that clients choose.
const DefaultMaxKeys = 100_000

// Keyed is a limiter per key. The zero Spec makes one that allows everything.
type Keyed struct {
	spec Spec
	now  func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	nextSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// NewKeyed returns a limiter of spec per key.
func NewKeyed(spec Spec) *Keyed {
	return &Keyed{spec: spec, now: time.Now, buckets: map[string]*bucket{}}
}

// Allow takes a token from key's bucket. When there is none it reports false and how
// long until there is one (for Retry-After).
func (k *Keyed) Allow(key string) (bool, time.Duration) {
	if k.spec.Burst <= 0 {
		return true, 0
	}
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sweepLocked(now)
	var lim *rate.Limiter
	if b := k.buckets[key]; b != nil {
		b.last, lim = now, b.lim
	} else {
		if k.spec.MaxKeys > 0 && len(k.buckets) >= k.spec.MaxKeys {
			k.evictLocked()
		}
		lim = rate.NewLimiter(rate.Limit(k.spec.Rate), k.spec.Burst)
		k.buckets[key] = &bucket{lim: lim, last: now}
	}
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Minute
	}
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now)
		return false, wait
	}
	return true, 0
}

// evictSample is how many keys eviction compares: the least recently used of a few
// random keys is nearly as old as the oldest of all (as Redis evicts), without a list
// to keep in order or a scan of every key.
const evictSample = 8

// evictLocked forgets the least recently used of evictSample keys (Go's map order is
// random). A key evicted while active starts again with a full bucket: that costs
// less than refusing every newcomer.
func (k *Keyed) evictLocked() {
	var oldest string
	var oldestAt time.Time
	n := 0
	for key, b := range k.buckets {
		if n == 0 || b.last.Before(oldestAt) {
			oldest, oldestAt = key, b.last
		}
		if n++; n == evictSample {
			break
		}
	}
	delete(k.buckets, oldest)
}

// sweepLocked forgets buckets untouched for longer than a refill takes: a new
// bucket for that key would be just as full.
func (k *Keyed) sweepLocked(now time.Time) {
	if now.Before(k.nextSweep) {
		return
	}
	refill := time.Hour
	if k.spec.Rate > 0 {
		refill = time.Duration(float64(k.spec.Burst) / k.spec.Rate * float64(time.Second))
	}
	for key, b := range k.buckets {
		if now.Sub(b.last) > refill {
			delete(k.buckets, key)
		}
	}
	k.nextSweep = now.Add(time.Minute)
}

// Len returns the number of keys held.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}
