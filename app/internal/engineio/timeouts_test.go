package engineio

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Quibly's HTTP server cuts stalled requests and idle connections with read, write and
// idle timeouts far shorter than a long-poll or a websocket lives; neither transport
// may be cut by them.
func TestTransportsOutliveHTTPTimeouts(t *testing.T) {
	const interval = 900 * time.Millisecond // the poll is held this long, past the timeouts
	srv, err := NewServer(Config{PingInterval: interval, PingTimeout: time.Second, MaxPayload: 1 << 16, SendQueueSize: 16},
		func(c *Conn) { c.OnMessage(func(data string) { _ = c.Send(data) }) })
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	hs.Config.ReadTimeout, hs.Config.WriteTimeout, hs.Config.IdleTimeout = 200*time.Millisecond, 300*time.Millisecond, 200*time.Millisecond
	hs.Start()
	defer hs.Close()
	base := hs.URL + "/?EIO=4&transport="

	t.Run("long-polling", func(t *testing.T) {
		res, err := http.Get(base + "polling")
		if err != nil {
			t.Fatal(err)
		}
		open, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var hsk struct{ Sid string }
		if err := json.Unmarshal(open[1:], &hsk); err != nil {
			t.Fatalf("handshake %q: %v", open, err)
		}
		start := time.Now()
		res, err = http.Get(base + "polling&sid=" + hsk.Sid)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || string(body) != string(Ping) {
			t.Fatalf("held poll after %v: %d %q %v; want the ping", time.Since(start), res.StatusCode, body, err)
		}
	})

	t.Run("websocket", func(t *testing.T) {
		ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"websocket", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		readText(t, ws) // open
		time.Sleep(500 * time.Millisecond)
		if err := ws.WriteMessage(websocket.TextMessage, []byte("4still here")); err != nil {
			t.Fatal(err)
		}
		if got := readText(t, ws); got != "4still here" {
			t.Fatalf("after the HTTP timeouts passed: %q", got)
		}
	})
}

// One client address holds at most MaxSessionsPerIP sessions, over either transport;
// a closed session frees its place, and other addresses are not affected.
func TestSessionsPerAddressAreBounded(t *testing.T) {
	srv, err := NewServer(Config{PingInterval: time.Minute, PingTimeout: time.Minute, MaxPayload: 1 << 16, SendQueueSize: 16,
		MaxSessionsPerIP: 3, ClientIP: func(r *http.Request) string { return r.Header.Get("X-Test-Client") }}, func(*Conn) {})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	base := hs.URL + "/?EIO=4&transport="
	open := func(client string) (int, string) {
		req, _ := http.NewRequest("GET", base+"polling", nil)
		req.Header.Set("X-Test-Client", client)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var hsk struct{ Sid string }
		if res.StatusCode == http.StatusOK {
			_ = json.Unmarshal(body[1:], &hsk)
		}
		return res.StatusCode, hsk.Sid
	}
	var sids []string
	for i := range 3 {
		code, sid := open("a")
		if code != http.StatusOK {
			t.Fatalf("session %d of 3: %d", i+1, code)
		}
		sids = append(sids, sid)
	}
	if code, _ := open("a"); code != http.StatusTooManyRequests {
		t.Fatalf("a fourth polling session: %d, want 429", code)
	}
	_, res, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"websocket", http.Header{"X-Test-Client": {"a"}})
	if err == nil || res == nil || res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a fourth session over websocket: %v %v, want 429", res, err)
	}
	if code, _ := open("b"); code != http.StatusOK {
		t.Fatalf("another address: %d", code)
	}
	srv.lookup(sids[0]).Close()
	if code, _ := open("a"); code != http.StatusOK {
		t.Fatalf("after one closed: %d, want a session", code)
	}
}

// Accepting says whether new sessions are taken: /health's socketio reads it.
func TestAcceptingUntilDrained(t *testing.T) {
	srv, err := NewServer(Config{PingInterval: time.Minute, PingTimeout: time.Minute, MaxPayload: 1 << 16, SendQueueSize: 16}, func(*Conn) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Accepting(); err != nil {
		t.Fatalf("a new server: %v", err)
	}
	srv.Drain()
	if srv.Accepting() == nil {
		t.Fatal("a draining server says it accepts sessions")
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	res, err := http.Get(hs.URL + "/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a handshake while draining: %d, want 503", res.StatusCode)
	}
}
