//go:build linux

package engineio

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// pollResult is what one long-polling GET got back.
type pollResult struct {
	status int
	body   string
	err    error
}

// upgradeSession opens a polling session on e and the websocket that upgrades it,
// and returns the session's polling URL and the websocket, probe not yet sent.
func upgradeSession(t *testing.T, e *echoServer) (string, *websocket.Conn) {
	t.Helper()
	base := "http" + strings.TrimPrefix(strings.TrimSuffix(e.url, "websocket"), "ws") + "polling"
	resp, err := http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var open struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(body[1:], &open); err != nil || open.SID == "" {
		t.Fatalf("polling handshake %q: %v", body, err)
	}
	ws, _, err := websocket.DefaultDialer.Dial(e.url+"&sid="+open.SID, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return base + "&sid=" + open.SID, ws
}

// startPoll sends a long-polling GET and returns where its answer arrives.
func startPoll(url string) <-chan pollResult {
	out := make(chan pollResult, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			out <- pollResult{err: err}
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- pollResult{status: resp.StatusCode, body: string(body), err: err}
	}()
	return out
}

func awaitPoll(t *testing.T, polled <-chan pollResult) pollResult {
	t.Helper()
	select {
	case r := <-polled:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("the poll was not answered")
		return pollResult{}
	}
}

func post(t *testing.T, url, payload string) {
	t.Helper()
	resp, err := http.Post(url, "text/plain;charset=UTF-8", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %q: status %d", payload, resp.StatusCode)
	}
}

// A poll and the websocket's frames travel on different connections, so the server
// may see a poll before it has read a probe and upgrade packet the client sent first
// (the official protocol suite does exactly this). Whatever the order, the outcome is
// the one the client's own order implies.
func TestPollDuringUpgrade(t *testing.T) {
	// settle lets a poll reach the server before the websocket's frames are sent.
	const settle = 50 * time.Millisecond
	tests := []struct {
		name string
		run  func(t *testing.T, url string, ws *websocket.Conn)
	}{
		{
			name: "a poll the server sees before the probe is refused once the upgrade completes",
			run: func(t *testing.T, url string, ws *websocket.Conn) {
				polled := startPoll(url)
				time.Sleep(settle)
				for _, frame := range []string{"2probe", string(Upgrade)} {
					if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
						t.Fatal(err)
					}
				}
				if r := awaitPoll(t, polled); r.status != http.StatusBadRequest {
					t.Fatalf("poll answered %d %q, want 400: the session moved to the websocket", r.status, r.body)
				}
			},
		},
		{
			name: "a poll during the probe takes what is queued at once",
			run: func(t *testing.T, url string, ws *websocket.Conn) {
				post(t, url, "4hello") // the echo queues 4hello
				if r := awaitPoll(t, startPoll(url)); r.status != http.StatusOK || r.body != "4hello" {
					t.Fatalf("poll answered %d %q, want 200 4hello", r.status, r.body)
				}
			},
		},
		{
			name: "a poll held by an upgrade that fails goes on as a poll",
			run: func(t *testing.T, url string, ws *websocket.Conn) {
				polled := startPoll(url)
				time.Sleep(settle)
				ws.Close() // the upgrade ends without a probe
				time.Sleep(settle)
				post(t, url, "4after")
				if r := awaitPoll(t, polled); r.status != http.StatusOK || r.body != "4after" {
					t.Fatalf("poll answered %d %q, want 200 4after", r.status, r.body)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEchoServer(t)
			url, ws := upgradeSession(t, e)
			tt.run(t, url, ws)
		})
	}
}
