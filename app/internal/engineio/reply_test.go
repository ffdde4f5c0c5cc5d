package engineio

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// An answer to the client's own request waits for room in a full queue instead of
// dropping the client; it is dropped only when it reads nothing for the write timeout.
func TestRepliesWaitForRoomInsteadOfDropping(t *testing.T) {
	srv, err := NewServer(Config{PingInterval: time.Minute, PingTimeout: time.Minute, MaxPayload: 1 << 20,
		SendQueueSize: 4, WriteTimeout: 300 * time.Millisecond}, func(*Conn) {})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		reads    bool
		wantErr  error
		wantOpen bool
	}{
		{"a client that reads gets every reply", true, nil, true},
		{"a client that reads nothing is dropped at the write timeout", false, ErrSlowConsumer, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConn(srv, "id-"+tc.name, "127.0.0.1:1", TransportPolling)
			for i := range 4 {
				if err := c.SendReply(MessagePacket(string(rune('a' + i)))); err != nil {
					t.Fatal(err)
				}
			}
			if tc.reads {
				go func() {
					time.Sleep(50 * time.Millisecond)
					c.mu.Lock()
					c.takeQueue(1<<20, maxPollPackets)
					c.mu.Unlock()
				}()
			}
			start := time.Now()
			err := c.SendReply(MessagePacket("e"))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("the fifth reply: %v, want %v", err, tc.wantErr)
			}
			if tc.reads && time.Since(start) < 40*time.Millisecond {
				t.Fatal("the reply did not wait for room")
			}
			if tc.wantOpen {
				if c.isClosed() {
					t.Fatal("a client that reads was dropped for its own replies")
				}
				return
			}
			select {
			case <-c.Closed():
			case <-time.After(2 * time.Second):
				t.Fatal("a client that reads nothing was not dropped")
			}
		})
	}
}

// A long-polling response carries at most 16 packets (python-engineio drops a session
// whose payload has more); the rest come with the next poll, in order.
func TestPollResponsesCarryAtMost16Packets(t *testing.T) {
	var conn *Conn
	srv, err := NewServer(Config{PingInterval: time.Minute, PingTimeout: time.Minute, MaxPayload: 1 << 20, SendQueueSize: 256},
		func(c *Conn) { conn = c })
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	get := func(q string) string {
		t.Helper()
		resp, err := http.Get(hs.URL + "/?EIO=4&transport=polling" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	open := get("")
	sid := strings.TrimSuffix(strings.SplitN(strings.SplitN(open, `"sid":"`, 2)[1], `"`, 2)[0], `"`)
	var burst []string
	for i := range 40 {
		burst = append(burst, MessagePacket(strings.Repeat("m", 1+i%3)))
	}
	if err := conn.SendPackets(burst...); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 40 {
		packets := strings.Split(get("&sid="+sid), separator)
		if len(packets) > maxPollPackets {
			t.Fatalf("a poll carried %d packets, at most %d allowed", len(packets), maxPollPackets)
		}
		got = append(got, packets...)
	}
	for i, p := range got {
		if p != burst[i] {
			t.Fatalf("packet %d is %q, want %q: order lost across polls", i, p, burst[i])
		}
	}
}
