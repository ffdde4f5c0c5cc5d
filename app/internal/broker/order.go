package broker

import (
	"crypto/rand"
	"encoding/binary"
	"time"

	"github.com/google/uuid"
)

// DefaultHold is how long a reserved slot holds back the later messages of its
// channel before it is given up: twice the longest a send waits for Kafka, so only a
// node that died or stalled past its own send timeout is ever given up.
const DefaultHold = 10 * time.Second

// maxSeqPerMilli is how many ids one channel gets within one millisecond (the 12 bits
// of a UUIDv7's rand_a); past it the next ids take the next millisecond.
const maxSeqPerMilli = 1 << 12

// clock is a channel's last handed-out (millisecond, sequence).
type clock struct {
	ms  int64
	seq int
}

// next is the (millisecond, sequence) after c for a reservation at nowMs: ids of one
// channel only grow, even when the clock goes back.
func (c clock) next(nowMs int64) clock {
	if nowMs > c.ms {
		return clock{ms: nowMs}
	}
	if c.seq+1 < maxSeqPerMilli {
		return clock{ms: c.ms, seq: c.seq + 1}
	}
	return clock{ms: c.ms + 1}
}

// slotID is the UUIDv7 of (ms, seq): 48 bits of time, the version, 12 bits of
// sequence, the variant and 62 random bits. The id sorts (as bytes and as text) by
// time, then sequence.
func slotID(c clock) string {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[0:8], uint64(c.ms)<<16|0x7000|uint64(c.seq))
	_, _ = rand.Read(u[8:])
	u[8] = u[8]&0x3f | 0x80
	return u.String()
}
