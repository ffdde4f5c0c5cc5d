package socketio

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/quibly/quibly/app/internal/engineio"
)

type nopHandler struct{}

func (nopHandler) Connect(*Socket, json.RawMessage) error                      { return nil }
func (nopHandler) Connected(*Socket)                                           {}
func (nopHandler) Event(*Socket, string, []json.RawMessage, [][]byte, AckFunc) {}
func (nopHandler) Disconnected(*Socket, string)                                {}

// A connection that sends no CONNECT in time, or a packet that is not Socket.IO, is
// closed with a close frame that says so (1008, 1002), not 1001 "going away".
func TestCloseCodes(t *testing.T) {
	sio, err := NewServer(Config{ConnectTimeout: 200 * time.Millisecond}, nopHandler{})
	if err != nil {
		t.Fatal(err)
	}
	eio, err := engineio.NewServer(engineio.Config{PingInterval: time.Minute, PingTimeout: time.Minute, MaxPayload: 1 << 16, SendQueueSize: 16}, sio.OnConnection)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(eio)
	defer hs.Close()
	for _, tc := range []struct {
		name string
		send []string
		code int
	}{
		{"no CONNECT in time", nil, websocket.ClosePolicyViolation},
		{"an unknown packet type", []string{"4abc"}, websocket.CloseProtocolError},
		{"an event before CONNECT", []string{`42["x"]`}, websocket.CloseProtocolError},
		{"a binary packet nobody announced", []string{"\x00binary"}, websocket.CloseProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/?EIO=4&transport=websocket", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			_ = ws.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, _, err := ws.ReadMessage(); err != nil { // the open packet
				t.Fatal(err)
			}
			for _, m := range tc.send {
				kind := websocket.TextMessage
				if strings.HasPrefix(m, "\x00") {
					kind = websocket.BinaryMessage
				}
				if err := ws.WriteMessage(kind, []byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			for {
				_, data, err := ws.ReadMessage()
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					if ce.Code != tc.code {
						t.Fatalf("close code %d (%q), want %d", ce.Code, ce.Text, tc.code)
					}
					return
				}
				if err != nil {
					t.Fatalf("connection ended without a close frame: %v", err)
				}
				_ = data // pings and the like
			}
		})
	}
}
