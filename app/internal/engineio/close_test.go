package engineio

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A server that ends a connection for the client's fault says why in the close frame
// (RFC 6455, 7.4.1): a text frame that is not UTF-8 gets 1007, a packet that is not
// Engine.IO gets 1002.
func TestCloseFrameSaysWhy(t *testing.T) {
	e := newEchoServer(t)
	for _, tc := range []struct {
		name   string
		frame  []byte
		code   int
		reason string
	}{
		{"text frame that is not UTF-8", maskedFrame("4\xff\xfe\xc3"), websocket.CloseInvalidFramePayloadData, ReasonInvalidUTF8},
		{"not an Engine.IO packet", maskedFrame("x-not-a-packet"), websocket.CloseProtocolError, ReasonProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := e.dial(t, "")
			if _, err := ws.NetConn().Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			_ = ws.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, data, err := ws.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != tc.code {
				t.Fatalf("after the frame: %q, %v; want a close frame with code %d", data, err, tc.code)
			}
			deadline := time.Now().Add(2 * time.Second)
			for !slices.Contains(e.closeReasons(), tc.reason) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if !slices.Contains(e.closeReasons(), tc.reason) {
				t.Fatalf("close reasons %v, want %q", e.closeReasons(), tc.reason)
			}
		})
	}
}

// A polling POST whose payload is not UTF-8 is refused (400), not decoded with
// replacement characters.
func TestPollingRefusesInvalidUTF8(t *testing.T) {
	e := newEchoServer(t)
	base := "http" + strings.TrimPrefix(strings.TrimSuffix(e.url, "websocket"), "ws") + "polling"
	res, err := http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	open, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var hs struct{ Sid string }
	if err := json.Unmarshal(open[1:], &hs); err != nil || hs.Sid == "" {
		t.Fatalf("handshake %q: %v", open, err)
	}
	res, err = http.Post(base+"&sid="+hs.Sid, "text/plain;charset=UTF-8", strings.NewReader("4\xff\xfe"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "UTF-8") {
		t.Fatalf("POST of invalid UTF-8: %d %s, want 400 naming UTF-8", res.StatusCode, body)
	}
}
