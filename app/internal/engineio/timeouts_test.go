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
