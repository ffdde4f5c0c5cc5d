package engineio

import (
	"sync"
	"testing"
	"time"
)

func heartbeatServer(t *testing.T, interval, timeout time.Duration) *Server {
	t.Helper()
	srv, err := NewServer(Config{PingInterval: interval, PingTimeout: timeout, MaxPayload: 1 << 16, SendQueueSize: 16}, func(*Conn) {})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// pingQueued reports whether a ping packet is queued on c.
func pingQueued(c *Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.queue {
		if p == string(Ping) {
			return true
		}
	}
	return false
}

func TestHeartbeatPingsAndTimesOut(t *testing.T) {
	const interval, timeout = 60 * time.Millisecond, 40 * time.Millisecond
	tests := []struct {
		name       string
		answer     bool
		wantReason string // "" when the connection must stay open
	}{
		{"a client that answers stays", true, ""},
		{"a client that does not answer is closed", false, ReasonPingTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := heartbeatServer(t, interval, timeout)
			c := newConn(srv, "id", "127.0.0.1:1", TransportPolling)
			var mu sync.Mutex
			reason := ""
			c.OnClose(func(r string) { mu.Lock(); reason = r; mu.Unlock() })
			start := time.Now()
			c.startHeartbeat()
			waitFor(t, "the first ping", func() bool { return pingQueued(c) })
			if took := time.Since(start); took <= interval-srv.beats.tick {
				t.Fatalf("pinged after %v, more than a tick before the interval of %v", took, interval)
			}
			if tt.answer {
				c.mu.Lock()
				c.queue = nil
				c.mu.Unlock()
				c.handlePacket(Packet{Type: Pong})
				waitFor(t, "the next ping", func() bool { return pingQueued(c) })
			}
			if tt.wantReason == "" {
				// Unanswered, it would have closed at interval+timeout; the next ping
				// comes an interval after the pong, later than that.
				if c.isClosed() {
					t.Fatal("a connection that answered its ping was closed")
				}
				if took := time.Since(start); took <= interval+timeout-2*srv.beats.tick {
					t.Fatalf("the second ping came %v after the start, before interval+timeout", took)
				}
				c.Close()
				return
			}
			select {
			case <-c.Closed():
			case <-time.After(3 * time.Second):
				t.Fatal("not closed after the ping went unanswered")
			}
			if took := time.Since(start); took <= interval+timeout-2*srv.beats.tick {
				t.Fatalf("closed after %v, before interval+timeout %v", took, interval+timeout)
			}
			waitFor(t, "the close handler", func() bool { mu.Lock(); defer mu.Unlock(); return reason != "" })
			if reason != tt.wantReason {
				t.Fatalf("close reason %q, want %q", reason, tt.wantReason)
			}
		})
	}
}

// A closed connection leaves the wheel: it is never pinged, and the wheel stops
// turning when nothing is scheduled.
func TestHeartbeatWheelForgetsClosedConnections(t *testing.T) {
	srv := heartbeatServer(t, 30*time.Millisecond, time.Second)
	conns := make([]*Conn, 100)
	for i := range conns {
		conns[i] = newConn(srv, "id", "127.0.0.1:1", TransportPolling)
		conns[i].startHeartbeat()
	}
	for i := 1; i < len(conns); i += 2 {
		conns[i].Close()
	}
	waitFor(t, "the open connections' pings", func() bool {
		for i := 0; i < len(conns); i += 2 {
			if !pingQueued(conns[i]) {
				return false
			}
		}
		return true
	})
	for i := 1; i < len(conns); i += 2 {
		if pingQueued(conns[i]) {
			t.Fatalf("closed connection %d was pinged", i)
		}
	}
	for i := 0; i < len(conns); i += 2 {
		conns[i].Close()
	}
	waitFor(t, "the wheel to stop", func() bool {
		srv.beats.mu.Lock()
		defer srv.beats.mu.Unlock()
		return srv.beats.count == 0 && !srv.beats.running
	})
}

// A heartbeat is put in the last slot that fires by its due time: never late (a client
// is pinged within the interval it was promised, a dead session is gone by
// pingInterval+pingTimeout), at most one tick early.
func TestHeartbeatSlotIsNeverLate(t *testing.T) {
	srv := heartbeatServer(t, 300*time.Millisecond, 200*time.Millisecond)
	w := srv.beats
	conns := make([]*Conn, 50)
	for i := range conns {
		conns[i] = newConn(srv, "id", "127.0.0.1:1", TransportPolling)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i, c := range conns {
		d := w.tick + time.Duration(i)*5*time.Millisecond // from a tick to under the longest delay
		before := time.Now()
		w.schedule(c, d)
		after := time.Now()
		w.mu.Lock()
		ahead := (c.beat.slot - w.pos + len(w.slots)) % len(w.slots)
		fires := w.nextAt.Add(time.Duration(ahead) * w.tick)
		w.mu.Unlock()
		if fires.After(after.Add(d)) {
			t.Fatalf("a heartbeat due in %v fires %v late", d, fires.Sub(after.Add(d)))
		}
		if early := before.Add(d).Sub(fires); early > w.tick {
			t.Fatalf("a heartbeat due in %v fires %v early, more than a tick (%v)", d, early, w.tick)
		}
		time.Sleep(3 * time.Millisecond) // let the wheel turn between schedules
	}
}
