// Package load drives a Socket.IO v4 chat server (Quibly or the reference Node peer
// under bench/reference) with many websocket clients and measures send→ack and
// send→delivery latency, throughput and errors. It also holds the small raw-limit
// probes the benchmark compares against: a loopback websocket echo, Redis pub/sub and
// PostgreSQL batch writes against raw COPY.
package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// ErrClosed is returned for a request on a connection that has ended.
var ErrClosed = errors.New("load: connection closed")

// Conn is one Socket.IO client over a websocket-only Engine.IO v4 session.
type Conn struct {
	ws *websocket.Conn

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	nextAck int64
	pending map[int64]AckFunc
	err     error

	onEvent func(event string, payload []byte) // called from the read goroutine
	done    chan struct{}
}

// SocketURL turns an http(s) base URL into the Engine.IO websocket endpoint.
func SocketURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("load: URL %q: scheme must be http, https, ws or wss", base)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/socket.io/"
	u.RawQuery = "EIO=4&transport=websocket"
	return u.String(), nil
}

// Dialer returns a websocket dialer whose connections leave from localIP (nil: any).
// Spreading clients over 127.0.0.x source addresses lifts the ~28k ephemeral port
// limit of one source address.
func Dialer(localIP net.IP) *websocket.Dialer {
	nd := &net.Dialer{Timeout: 10 * time.Second}
	if localIP != nil {
		nd.LocalAddr = &net.TCPAddr{IP: localIP}
	}
	return &websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: 15 * time.Second,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
	}
}

// Dial opens a session at wsURL, sends the namespace connect with auth (token may be
// empty) and waits for the server's connect packet. onEvent receives every event
// packet the server sends (Socket.IO type 2) with its raw JSON array.
func Dial(ctx context.Context, d *websocket.Dialer, wsURL, token string, onEvent func(event string, payload []byte)) (*Conn, error) {
	ws, _, err := d.DialContext(ctx, wsURL, http.Header{})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Conn, error) {
		_ = ws.Close()
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.SetReadDeadline(dl)
	} else {
		_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	}
	_, open, err := ws.ReadMessage()
	if err != nil {
		return fail(fmt.Errorf("reading the open packet: %w", err))
	}
	if len(open) == 0 || open[0] != '0' {
		return fail(fmt.Errorf("expected an Engine.IO open packet, got %q", trunc(open)))
	}
	auth := "40"
	if token != "" {
		b, _ := json.Marshal(map[string]string{"token": token})
		auth += string(b)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(auth)); err != nil {
		return fail(err)
	}
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return fail(fmt.Errorf("waiting for the connect packet: %w", err))
		}
		switch {
		case bytes.HasPrefix(msg, []byte("40")):
			_ = ws.SetReadDeadline(time.Time{})
			c := &Conn{ws: ws, pending: map[int64]AckFunc{}, onEvent: onEvent, done: make(chan struct{})}
			go c.readLoop()
			return c, nil
		case bytes.HasPrefix(msg, []byte("44")):
			return fail(fmt.Errorf("connect refused: %s", trunc(msg[2:])))
		case len(msg) == 1 && msg[0] == '2':
			if err := ws.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				return fail(err)
			}
		}
	}
}

func trunc(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while it is open).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection.
func (c *Conn) Close() error { return c.ws.Close() }

func (c *Conn) write(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, p)
}

// AckFunc receives an ack's first argument; ok is false when the connection ended
// before the ack came. It runs on the connection's read goroutine: keep it short.
type AckFunc func(arg json.RawMessage, ok bool)

// Emit sends event with payload (already JSON); fn gets the ack.
func (c *Conn) Emit(event string, payload []byte, fn AckFunc) error {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return ErrClosed
	}
	c.nextAck++
	id := c.nextAck
	c.pending[id] = fn
	c.mu.Unlock()
	buf := make([]byte, 0, 24+len(event)+len(payload))
	buf = append(buf, "42"...)
	buf = strconv.AppendInt(buf, id, 10)
	buf = append(buf, `["`...)
	buf = append(buf, event...)
	buf = append(buf, `",`...)
	buf = append(buf, payload...)
	buf = append(buf, ']')
	if err := c.write(buf); err != nil {
		c.mu.Lock()
		_, still := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if !still {
			return nil // the read loop already reported the end to fn
		}
		return err
	}
	return nil
}

// Call emits and waits for the ack.
func (c *Conn) Call(ctx context.Context, event string, payload []byte) (json.RawMessage, error) {
	ch := make(chan json.RawMessage, 1)
	if err := c.Emit(event, payload, func(arg json.RawMessage, ok bool) {
		if ok {
			ch <- arg
		}
		close(ch)
	}); err != nil {
		return nil, err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, ErrClosed
		}
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Conn) readLoop() {
	var err error
	defer func() {
		c.mu.Lock()
		c.err = err
		if c.err == nil {
			c.err = ErrClosed
		}
		pending := c.pending
		c.pending = map[int64]AckFunc{}
		c.mu.Unlock()
		for _, fn := range pending {
			fn(nil, false)
		}
		close(c.done)
		_ = c.ws.Close()
	}()
	for {
		var msg []byte
		_, msg, err = c.ws.ReadMessage()
		if err != nil {
			return
		}
		if len(msg) == 0 {
			continue
		}
		switch msg[0] {
		case '2': // ping
			if err = c.write([]byte("3")); err != nil {
				return
			}
		case '1': // close
			err = errors.New("server closed the session")
			return
		case '4':
			if len(msg) < 2 {
				continue
			}
			switch msg[1] {
			case '2': // event
				if c.onEvent != nil {
					if ev, ok := eventName(msg[2:]); ok {
						c.onEvent(ev, msg[2:])
					}
				}
			case '3': // ack: 43<id>[...]
				c.ack(msg[2:])
			case '1':
				err = errors.New("server disconnected the socket")
				return
			}
		}
	}
}

// eventName reads the event name of `["name",...]`.
func eventName(b []byte) (string, bool) {
	if len(b) < 4 || b[0] != '[' || b[1] != '"' {
		return "", false
	}
	end := bytes.IndexByte(b[2:], '"')
	if end < 0 {
		return "", false
	}
	return string(b[2 : 2+end]), true
}

func (c *Conn) ack(b []byte) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	id, err := strconv.ParseInt(string(b[:i]), 10, 64)
	if err != nil {
		return
	}
	var args []json.RawMessage
	if json.Unmarshal(b[i:], &args) != nil {
		return
	}
	c.mu.Lock()
	fn := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if fn == nil {
		return
	}
	if len(args) == 0 {
		fn(json.RawMessage("null"), true)
		return
	}
	fn(args[0], true)
}
