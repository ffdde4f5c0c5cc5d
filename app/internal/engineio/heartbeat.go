package engineio

import (
	"sync"
	"time"
)

// heartbeatWheel keeps every connection's next heartbeat (send a ping, or give up
// waiting for its pong) in a ring of time slots turned by one ticker. A time.Timer
// per connection held about 130 bytes and a runtime timer for life; a slot entry is
// two pointers and an index. A heartbeat fires up to one tick early, never late: a
// ping comes within the interval the client was promised, and a session whose pong
// is overdue is gone by the time pingInterval+pingTimeout has passed.
type heartbeatWheel struct {
	tick time.Duration

	mu      sync.Mutex
	slots   []*Conn   // each slot's connections, linked through Conn.beat
	pos     int       // the slot that fires next
	nextAt  time.Time // when slot pos fires
	count   int
	running bool // the ticker goroutine runs while count > 0
}

// beatLink is a connection's place in the wheel; the zero value is "not scheduled".
type beatLink struct {
	prev, next *Conn
	slot       int
	scheduled  bool
}

// newHeartbeatWheel sizes the ring for delays up to maxDelay, with a tick of a
// tenth of the shortest delay, between 10 ms and 1 s.
func newHeartbeatWheel(minDelay, maxDelay time.Duration) *heartbeatWheel {
	tick := min(max(minDelay/10, 10*time.Millisecond), time.Second)
	return &heartbeatWheel{tick: tick, slots: make([]*Conn, int(maxDelay/tick)+2)}
}

// schedule (re)sets c's heartbeat to fire after d (d up to the wheel's maxDelay).
func (w *heartbeatWheel) schedule(c *Conn, d time.Duration) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unlinkLocked(c)
	if !w.running {
		w.nextAt = now.Add(w.tick)
	}
	// The last slot that fires by now+d: slot pos fires at nextAt, each later one a
	// tick after the one before.
	ticks := 0
	if due := now.Add(d); due.After(w.nextAt) {
		ticks = int(due.Sub(w.nextAt) / w.tick)
	}
	ticks = min(ticks, len(w.slots)-1)
	slot := (w.pos + ticks) % len(w.slots)
	c.beat = beatLink{next: w.slots[slot], slot: slot, scheduled: true}
	if head := w.slots[slot]; head != nil {
		head.beat.prev = c
	}
	w.slots[slot] = c
	w.count++
	if !w.running {
		w.running = true
		go w.turn()
	}
}

// cancel removes c's heartbeat, if it has one.
func (w *heartbeatWheel) cancel(c *Conn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unlinkLocked(c)
}

func (w *heartbeatWheel) unlinkLocked(c *Conn) {
	l := c.beat
	if !l.scheduled {
		return
	}
	if l.prev != nil {
		l.prev.beat.next = l.next
	} else {
		w.slots[l.slot] = l.next
	}
	if l.next != nil {
		l.next.beat.prev = l.prev
	}
	c.beat = beatLink{}
	w.count--
}

// turn fires one slot per tick until the wheel is empty.
func (w *heartbeatWheel) turn() {
	w.mu.Lock()
	first := time.Until(w.nextAt)
	w.mu.Unlock()
	time.Sleep(first)
	t := time.NewTicker(w.tick)
	defer t.Stop()
	var due []*Conn
	for fire := true; fire; _, fire = <-t.C {
		w.mu.Lock()
		for c := w.slots[w.pos]; c != nil; {
			next := c.beat.next
			c.beat = beatLink{}
			due = append(due, c)
			c = next
		}
		w.slots[w.pos] = nil
		w.count -= len(due)
		w.pos = (w.pos + 1) % len(w.slots)
		w.nextAt = time.Now().Add(w.tick)
		idle := w.count == 0
		if idle {
			w.running = false
		}
		w.mu.Unlock()
		for i, c := range due {
			c.heartbeat() // reschedules c; never blocks
			due[i] = nil
		}
		due = due[:0]
		if idle {
			return
		}
	}
}

// startHeartbeat arms the first ping.
func (c *Conn) startHeartbeat() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.isClosed() {
		c.srv.beats.schedule(c, c.srv.cfg.PingInterval)
	}
}

// heartbeat alternates between sending a ping and checking that its pong came back.
// The wheel calls it for many connections in turn, so it never blocks.
func (c *Conn) heartbeat() {
	c.mu.Lock()
	if c.isClosed() {
		c.mu.Unlock()
		return
	}
	if c.awaitingPong {
		c.mu.Unlock()
		go c.close(ReasonPingTimeout, false) // the close handlers do I/O
		return
	}
	c.awaitingPong = true
	c.srv.beats.schedule(c, c.srv.cfg.PingTimeout)
	c.mu.Unlock()
	_ = c.sendPacket(string(Ping))
}

func (c *Conn) gotPong() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.awaitingPong && !c.isClosed() {
		c.awaitingPong = false
		c.srv.beats.schedule(c, c.srv.cfg.PingInterval)
	}
}
