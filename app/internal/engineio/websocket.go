package engineio

// The websocket transport, for a session that opens on it or upgrades to it: a writer
// that drains the send queue in batched writes (flushWS, started only while something
// is queued) and a reader that the read poller runs when the socket has data
// (readReady) or, where it cannot, a goroutine (readLoop).

import (
	"errors"
	"net/http"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// upgrade turns the request into a websocket on a batchConn, which every websocket
// of a session is: its writes are batched (writeFrames) and its reads polled
// (startReading). On failure the upgrader has answered the client.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	ws, err := s.upgrader.Upgrade(&batchingWriter{ResponseWriter: w}, r, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(int64(s.cfg.MaxPayload))
	return ws, nil
}

func (s *Server) openWebSocket(w http.ResponseWriter, r *http.Request, ip string) {
	ws, err := s.upgrade(w, r)
	if err != nil {
		s.release(ip)
		return // the upgrader has answered the client
	}
	c := s.register(TransportWebSocket, r, ip)
	// The open packet goes first: nothing is queued until the session is registered
	// with ws, and the writer then waits for wmu.
	c.wmu.Lock()
	c.mu.Lock()
	c.ws = ws
	c.mu.Unlock()
	err = ws.WriteMessage(websocket.TextMessage, []byte(s.openPacket([]string{}, c.ID)))
	c.wmu.Unlock()
	if err != nil {
		ws.Close()
		c.close(ReasonTransportErr, false)
		return
	}
	c.mu.Lock()
	flush := c.startWSWriterLocked()
	c.mu.Unlock()
	if flush != nil {
		go c.flushWS(flush)
	}
	c.startHeartbeat()
	// Return without reading here: the HTTP server then lets go of the hijacked
	// connection's buffers, request and context (~10 KB an idle socket held).
	c.startReading(ws)
}

// upgradeToWebSocket runs the probe exchange on a new websocket for a polling
// session; once the client confirms with an upgrade packet, the websocket takes over.
func (s *Server) upgradeToWebSocket(w http.ResponseWriter, r *http.Request, c *Conn) {
	c.mu.Lock()
	if c.transport != TransportPolling || c.upgrading {
		c.mu.Unlock()
		// As the reference server does: the websocket opens and closes at once, so a
		// client library sees a close, not a failed handshake it may not handle.
		if ws, err := s.upgrade(w, r); err == nil {
			_ = ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "session already upgraded"), time.Now().Add(time.Second))
			_ = ws.Close()
		}
		return
	}
	c.upgrading, c.probed, c.probeDone, c.upgradeEnd = true, false, make(chan struct{}), make(chan struct{})
	c.mu.Unlock()
	// endUpgrade records the outcome; callers hold c.mu.
	endUpgrade := func() {
		c.upgrading, c.probed = false, false
		close(c.upgradeEnd)
	}
	ws, err := s.upgrade(w, r)
	if err != nil {
		c.mu.Lock()
		endUpgrade()
		c.mu.Unlock()
		return
	}
	fail := func() {
		ws.Close()
		c.mu.Lock()
		endUpgrade()
		c.mu.Unlock()
	}
	// The probe must finish in time, and the session may end meanwhile.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-c.closed:
			ws.Close()
		case <-stop:
		}
	}()
	_ = ws.SetReadDeadline(time.Now().Add(s.cfg.PingTimeout))
	for {
		kind, data, err := ws.ReadMessage()
		if err != nil || kind != websocket.TextMessage {
			fail()
			return
		}
		p, err := DecodePacket(string(data))
		if err != nil {
			fail()
			return
		}
		switch {
		case p.Type == Ping && p.Data == "probe":
			if ws.WriteMessage(websocket.TextMessage, []byte("3probe")) != nil {
				fail()
				return
			}
			c.mu.Lock()
			if !c.probed {
				c.probed = true
				close(c.probeDone)
			}
			c.mu.Unlock()
			// Release the pending poll so the client can pause polling.
			select {
			case c.pollWake <- struct{}{}:
			default:
			}
		case p.Type == Upgrade:
			c.mu.Lock()
			if c.isClosed() {
				endUpgrade()
				c.mu.Unlock()
				ws.Close()
				return
			}
			c.transport = TransportWebSocket
			c.ws = ws
			endUpgrade()
			// Packets queued while polling go out over the websocket now.
			flush := c.startWSWriterLocked()
			c.mu.Unlock()
			_ = ws.SetReadDeadline(time.Time{})
			if flush != nil {
				go c.flushWS(flush)
			}
			c.startReading(ws) // see openWebSocket
			return
		case p.Type == Noop:
		default:
			fail()
			return
		}
	}
}

// startWSWriterLocked returns the websocket to flush the queue onto when a writer
// goroutine should start: the transport is websocket, something is queued and no
// writer runs. An idle connection so has no writer goroutine at all (a goroutine's
// stack is the largest part of an idle connection's memory). Callers hold c.mu.
func (c *Conn) startWSWriterLocked() *websocket.Conn {
	if c.ws == nil || c.transport != TransportWebSocket || c.wsWriting || len(c.queue) == 0 || c.isClosed() {
		return nil
	}
	c.wsWriting = true
	return c.ws
}

// maxWSBatch bounds the bytes of one batched write, so one socket's backlog does not
// make one huge buffer.
const maxWSBatch = 64 << 10

// flushWS writes the queue onto ws until it is empty, then ends; sendPacket starts
// it again when something is queued. What is queued at once goes out in one write.
func (c *Conn) flushWS(ws *websocket.Conn) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.isClosed() {
			// When closed, finishWS flushes the queue if the close tells the client.
			c.wsWriting = false
			c.mu.Unlock()
			return
		}
		batch := c.takeQueue(maxWSBatch, 0)
		c.mu.Unlock()
		if err := c.writeFrames(ws, batch, c.srv.cfg.WriteTimeout); err != nil {
			go c.close(ReasonTransportErr, false)
			return
		}
	}
}

// writeFrames writes one frame per packet (binary for a binary packet, text for the
// rest), all in one write. Callers hold c.wmu.
func (c *Conn) writeFrames(ws *websocket.Conn, packets []string, timeout time.Duration) error {
	out := batchConnOf(ws)
	out.hold()
	for _, p := range packets {
		if p != "" && p[0] == binaryPrefix {
			out.appendFrame(opBinary, p[1:])
		} else {
			out.appendFrame(opText, p)
		}
	}
	return out.release(timeout)
}

// finishWS runs once the connection is closed: it writes what is queued and a close
// packet when the server ends the session (so clients reconnect at once), then closes
// the socket, which ends any read in progress.
func (c *Conn) finishWS(ws *websocket.Conn) {
	c.wmu.Lock() // after any running flushWS
	defer c.wmu.Unlock()
	defer ws.Close()
	c.mu.Lock()
	pending, closing, reason := c.queue, c.closing, c.reason
	c.queue = nil
	c.mu.Unlock()
	// Best effort: what is queued and a close packet, when the server ends the session.
	if closing && c.writeFrames(ws, append(pending, string(Close)), time.Second) != nil {
		return
	}
	if code, text, ok := wsCloseFrame(reason); ok {
		_ = ws.SetWriteDeadline(time.Now().Add(time.Second))
		_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(code, text))
	}
}

// wsCloseFrame is the close frame (RFC 6455, 7.4.1) that tells the client why the
// server ended the connection. A dead transport or the client's own close gets none;
// an oversized frame got its 1009 from the websocket library already.
func wsCloseFrame(reason string) (code int, text string, ok bool) {
	switch reason {
	case ReasonProtocolError:
		return websocket.CloseProtocolError, "protocol error", true
	case ReasonInvalidUTF8:
		return websocket.CloseInvalidFramePayloadData, "text frame is not valid UTF-8", true
	case ReasonSlowConsumer:
		return websocket.ClosePolicyViolation, "send queue full: reading too slowly", true
	case ReasonHandshakeTimeout:
		return websocket.ClosePolicyViolation, "no handshake in time", true
	case ReasonMessageTooLarge:
		return websocket.CloseMessageTooBig, "binary attachments over the size limit", true
	case ReasonMessageTimeout:
		return websocket.ClosePolicyViolation, "binary attachments not completed in time", true
	case ReasonServerClose:
		return websocket.CloseGoingAway, "server closed the session", true
	}
	return 0, "", false
}

// startReading feeds ws's frames to handlePacket until the socket fails. On Linux
// the read poller runs the reader only while the socket has data; elsewhere, or
// when the socket is not a plain TCP one, a goroutine reads.
func (c *Conn) startReading(ws *websocket.Conn) {
	bc := batchConnOf(ws)
	if sc, ok := bc.Conn.(syscall.Conn); ok {
		if p, err := pollerForReads(); err == nil {
			stop, err := p.watch(sc, bc.reader.Buffered() > 0, c)
			if err == nil {
				c.mu.Lock()
				closed := c.isClosed()
				if !closed {
					c.unwatch = stop
				}
				c.mu.Unlock()
				if closed {
					stop()
				}
				return
			}
			c.srv.log.Warn("engine.io: read poller refused a socket; reading on a goroutine", "err", err)
		}
	}
	go c.readLoop(ws)
}

// reader is what the read poller runs when a socket has data.
type reader interface {
	// readReady reads what the socket has; it reports whether the socket is still open.
	readReady() bool
}

var _ reader = (*Conn)(nil)

// readReady handles messages until none is left in the websocket's read buffer,
// which the kernel does not see; it reports whether the connection is still open. A
// message that has not fully arrived is waited for, as is the next message after a
// client's websocket ping (browsers send none; Engine.IO pings are messages).
func (c *Conn) readReady() bool {
	c.mu.Lock()
	ws := c.ws
	c.mu.Unlock()
	br := batchConnOf(ws).reader
	for {
		if !c.readMessage(ws) {
			return false
		}
		if br.Buffered() == 0 {
			return true
		}
	}
}

// readLoop reads on a goroutine of its own, where the read poller cannot.
func (c *Conn) readLoop(ws *websocket.Conn) {
	for c.readMessage(ws) {
	}
}

// readMessage reads one websocket message and handles its packet; it reports whether
// the connection is still open.
func (c *Conn) readMessage(ws *websocket.Conn) bool {
	kind, data, err := ws.ReadMessage()
	if err != nil {
		if errors.Is(err, websocket.ErrReadLimit) {
			c.close(ReasonTooLarge, false)
		} else {
			c.close(ReasonTransportErr, false)
		}
		return false
	}
	if kind == websocket.BinaryMessage { // a binary frame is a binary message packet
		c.handlePacket(Packet{Type: Message, Data: string(data), Binary: true})
		return !c.isClosed()
	}
	if !utf8.Valid(data) {
		c.close(ReasonInvalidUTF8, false) // RFC 6455: a text frame must be UTF-8
		return false
	}
	p, err := DecodePacket(string(data))
	if err != nil {
		c.close(ReasonProtocolError, false)
		return false
	}
	c.handlePacket(p)
	return !c.isClosed()
}
