//go:build linux

package engineio

import (
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// echoServer runs an Engine.IO server whose connections echo every message, and
// records why each one closed.
type echoServer struct {
	*Server
	url string

	mu      sync.Mutex
	reasons []string
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	e := &echoServer{}
	srv, err := NewServer(Config{PingInterval: time.Minute, PingTimeout: time.Minute, MaxPayload: 1 << 16, SendQueueSize: 64}, func(c *Conn) {
		c.OnMessage(func(data string) { _ = c.Send(data) })
		c.OnClose(func(reason string) {
			e.mu.Lock()
			e.reasons = append(e.reasons, reason)
			e.mu.Unlock()
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	e.Server, e.url = srv, "ws"+strings.TrimPrefix(hs.URL, "http")+"/?EIO=4&transport=websocket"
	return e
}

func (e *echoServer) closeReasons() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.reasons...)
}

// dial opens a websocket session and reads its open packet.
func (e *echoServer) dial(t *testing.T, query string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(e.url+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	if got := readText(t, ws); !strings.HasPrefix(got, string(Open)) {
		t.Fatalf("first packet %q, want an open packet", got)
	}
	return ws
}

func readText(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	kind, data, err := ws.ReadMessage()
	if err != nil || kind != websocket.TextMessage {
		t.Fatalf("read: kind %d, err %v", kind, err)
	}
	return string(data)
}

// maskedFrame encodes a client text frame (clients must mask; a zero key is valid
// and leaves the payload as it is), so a test controls how frames meet the network.
func maskedFrame(payload string) []byte {
	if len(payload) > 125 {
		panic("maskedFrame: short payloads only")
	}
	return append([]byte{0x81, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
}

func pollerEntries(t *testing.T) int {
	t.Helper()
	p, err := pollerForReads()
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

func TestIdleWebSocketsHoldNoGoroutine(t *testing.T) {
	e := newEchoServer(t)
	const n = 200
	before := runtime.NumGoroutine()
	socks := make([]*websocket.Conn, n)
	for i := range socks {
		socks[i] = e.dial(t, "")
	}
	// Let the handshakes' HTTP goroutines finish.
	waitFor(t, "handshake goroutines to end", func() bool { return runtime.NumGoroutine()-before < n/4 })
	// Every idle socket is still served: each echoes.
	for i, ws := range socks {
		if err := ws.WriteMessage(websocket.TextMessage, []byte("4hello")); err != nil {
			t.Fatal(err)
		}
		if got := readText(t, ws); got != "4hello" {
			t.Fatalf("socket %d echoed %q", i, got)
		}
	}
}

func TestPolledReaderHandlesFramesAsTheyArrive(t *testing.T) {
	e := newEchoServer(t)
	tests := []struct {
		name   string
		writes [][]byte // raw client bytes, each in its own write
		want   []string
	}{
		{"three frames in one write", [][]byte{append(append(maskedFrame("4a"), maskedFrame("4b")...), maskedFrame("4c")...)}, []string{"4a", "4b", "4c"}},
		{"a frame split over two writes", func() [][]byte { f := maskedFrame("4split"); return [][]byte{f[:4], f[4:]} }(), []string{"4split"}},
		{"a frame and the start of the next", func() [][]byte {
			f := append(maskedFrame("4x"), maskedFrame("4y")...)
			return [][]byte{f[:len(f)-2], f[len(f)-2:]}
		}(), []string{"4x", "4y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := e.dial(t, "")
			for _, w := range tt.writes {
				if _, err := ws.NetConn().Write(w); err != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond) // apart on the wire
			}
			for _, want := range tt.want {
				if got := readText(t, ws); got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
		})
	}
}

func TestClosedWebSocketLeavesThePoller(t *testing.T) {
	e := newEchoServer(t)
	// Earlier tests' sockets, closed by their clients, leave the poller too.
	waitFor(t, "earlier sockets to leave the poller", func() bool { return pollerEntries(t) == 0 })
	const base = 0
	ws := e.dial(t, "")
	waitFor(t, "the socket to be watched", func() bool { return pollerEntries(t) == base+1 })
	ws.Close()
	waitFor(t, "the session to end", func() bool { return e.Count() == 0 })
	if got := e.closeReasons(); len(got) != 1 || got[0] != ReasonTransportErr {
		t.Fatalf("close reasons %v, want [%s]", got, ReasonTransportErr)
	}
	waitFor(t, "the poller to forget the socket", func() bool { return pollerEntries(t) == base })

	// A server-side close is also forgotten, and the client told.
	ws = e.dial(t, "")
	waitFor(t, "the socket to be watched", func() bool { return pollerEntries(t) == base+1 })
	e.Drain()
	if got := readText(t, ws); got != string(Close) {
		t.Fatalf("got %q, want a close packet", got)
	}
	waitFor(t, "the poller to forget the socket", func() bool { return pollerEntries(t) == base })
}

// Frames the client sends right behind its upgrade packet are read by the probe
// exchange into the socket's buffer, where no readiness event will announce them.
func TestUpgradeKeepsFramesSentWithTheUpgradePacket(t *testing.T) {
	_, ws := upgradeSession(t, newEchoServer(t))
	if err := ws.WriteMessage(websocket.TextMessage, []byte("2probe")); err != nil {
		t.Fatal(err)
	}
	if got := readText(t, ws); got != "3probe" {
		t.Fatalf("probe answer %q", got)
	}
	burst := append(append(maskedFrame(string(Upgrade)), maskedFrame("4one")...), maskedFrame("4two")...)
	if _, err := ws.NetConn().Write(burst); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"4one", "4two"} {
		if got := readText(t, ws); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}
