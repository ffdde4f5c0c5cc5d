package engineio

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Transport names as they appear in the query string.
const (
	TransportPolling   = "polling"
	TransportWebSocket = "websocket"
)

var (
	// ErrClosed is returned when sending on a closed connection.
	ErrClosed = errors.New("engine.io: connection closed")
	// ErrSlowConsumer is returned when a connection's send queue overflowed; the
	// connection is closed so that one slow client never holds up the others.
	ErrSlowConsumer = errors.New("engine.io: send queue full, connection dropped")
)

// Close reasons reported to OnClose.
const (
	ReasonClientClose   = "client close"
	ReasonTransportErr  = "transport error"
	ReasonPingTimeout   = "ping timeout"
	ReasonSlowConsumer  = "send queue full"
	ReasonServerClose   = "server close"
	ReasonProtocolError = "protocol error"
	ReasonTooLarge      = "payload too large"
	ReasonInvalidUTF8   = "invalid UTF-8"
	// ReasonHandshakeTimeout: the layer above got no handshake in time.
	ReasonHandshakeTimeout = "handshake timeout"
)

// Conn is one Engine.IO session, whichever transport currently carries it.
type Conn struct {
	ID         string
	RemoteAddr string
	clientIP   string // what admit counted it under

	srv       *Server
	onMessage func(data string)
	onBinary  func(data []byte)
	onClose   func(reason string)

	mu           sync.Mutex
	queue        []string // encoded packets not yet written
	transport    string
	ws           *websocket.Conn
	upgrading    bool
	probed       bool          // the upgrade's probe was answered
	upgradeEnd   chan struct{} // closed when the upgrade in progress ends either way
	pollActive   bool
	postActive   bool
	awaitingPong bool
	closing      bool       // a close packet should be flushed before the socket closes
	reason       string     // why the connection was closed
	wsWriting    bool       // a flushWS goroutine is draining the queue onto ws
	wmu          sync.Mutex // held while writing frames to ws
	dropping     atomic.Bool
	beat         beatLink // in srv.beats; guarded by srv.beats.mu
	unwatch      func()   // ends the read poller's watch of ws

	// Long-polling only (nil on a session that opened as a websocket):
	notify   chan struct{} // a packet was queued
	pollWake chan struct{} // finish the pending poll now (upgrade)
	closed   chan struct{}
	once     sync.Once
}

func newConn(srv *Server, id, remote, transport string) *Conn {
	c := &Conn{ID: id, RemoteAddr: remote, srv: srv, transport: transport, closed: make(chan struct{})}
	if transport == TransportPolling {
		c.notify = make(chan struct{}, 1)
		c.pollWake = make(chan struct{}, 1)
	}
	return c
}

// OnMessage sets the handler for message packets. It is called from one goroutine at a
// time per connection, in arrival order, and must be set before the handshake returns.
func (c *Conn) OnMessage(fn func(data string)) { c.onMessage = fn }

// OnBinary sets the handler for binary message packets, called like OnMessage's. A
// connection without one treats a binary packet as a protocol error.
func (c *Conn) OnBinary(fn func(data []byte)) { c.onBinary = fn }

// OnClose sets the handler called once when the connection ends.
func (c *Conn) OnClose(fn func(reason string)) { c.onClose = fn }

// Transport returns the name of the transport in use.
func (c *Conn) Transport() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.transport
}

// Closed is closed when the connection has ended.
func (c *Conn) Closed() <-chan struct{} { return c.closed }

// Send queues a message packet. It never blocks: when the queue is full the
// connection is dropped and ErrSlowConsumer returned.
func (c *Conn) Send(data string) error { return c.sendPacket(string(Message) + data) }

// MessagePacket encodes data as a message packet for SendPackets, so that a
// broadcast is encoded once for all its connections.
func MessagePacket(data string) string { return string(Message) + data }

// BinaryPacket encodes data as a binary message packet for SendPackets: a binary
// frame on a websocket, base64 in a long-polling payload.
func BinaryPacket(data []byte) string { return string(binaryPrefix) + string(data) }

// SendPackets queues packets made by MessagePacket and BinaryPacket, all or none, so that they leave
// together (in one write on a websocket). It never blocks, like Send.
func (c *Conn) SendPackets(packets ...string) error { return c.sendPacket(packets...) }

func (c *Conn) sendPacket(ps ...string) error {
	c.mu.Lock()
	if c.isClosed() {
		c.mu.Unlock()
		return ErrClosed
	}
	// A client is slow when its backlog is already full. A batch is taken whole on top
	// of a shorter backlog: a bus read can bring more events for one socket than the
	// queue holds, and that socket is not slow for it.
	if len(c.queue) >= c.srv.cfg.SendQueueSize {
		c.mu.Unlock()
		// Closed from another goroutine: senders (a broadcast) may hold their own locks,
		// which the close handlers need.
		if c.dropping.CompareAndSwap(false, true) {
			go c.close(ReasonSlowConsumer, false)
		}
		return ErrSlowConsumer
	}
	c.queue = append(c.queue, ps...)
	ws := c.startWSWriterLocked()
	c.mu.Unlock()
	if ws != nil {
		go c.flushWS(ws)
	}
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return nil
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

// takeQueue removes and returns queued packets, at most maxBytes of them (at least one).
// Callers hold c.mu.
func (c *Conn) takeQueue(maxBytes int) []string {
	n, size := 0, 0
	for n < len(c.queue) {
		size += len(c.queue[n]) + 1
		if n > 0 && size > maxBytes {
			break
		}
		n++
	}
	out := c.queue[:n:n]
	if n == len(c.queue) {
		c.queue = nil // let the backing array go: idle connections hold no buffer
	} else {
		c.queue = c.queue[n:]
	}
	return out
}

func (c *Conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// Close ends the connection, telling the client with a close packet when the
// transport allows it. Safe to call more than once.
func (c *Conn) Close() { c.close(ReasonServerClose, true) }

// Fail ends the connection because of the client (a malformed packet) or a timeout,
// without a close packet; a websocket gets a close frame that says why (see
// wsCloseFrame). Reason is one of the Reason constants.
func (c *Conn) Fail(reason string) { c.close(reason, false) }

func (c *Conn) close(reason string, notifyClient bool) {
	c.once.Do(func() {
		c.mu.Lock()
		c.closing, c.reason = notifyClient, reason
		// The client's poll may be on its way on another connection (it sends the close
		// packet and may poll at once): that poll gets its noop (see poll), then the
		// session is gone.
		lingering := reason == ReasonClientClose && c.transport == TransportPolling && !c.pollActive
		c.srv.beats.cancel(c)
		close(c.closed)
		var ws *websocket.Conn
		if c.transport == TransportWebSocket {
			ws = c.ws
		}
		unwatch := c.unwatch
		c.unwatch = nil
		c.mu.Unlock()
		if unwatch != nil {
			unwatch()
		}
		if ws != nil {
			go c.finishWS(ws) // flushes (when closing) and closes the socket
		}
		if lingering {
			time.AfterFunc(c.srv.cfg.PingTimeout, func() { c.srv.remove(c) })
		} else {
			c.srv.remove(c)
		}
		if c.onClose != nil {
			c.onClose(reason)
		}
	})
}

// startHeartbeat arms the first ping.
func (c *Conn) startHeartbeat() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.isClosed() {
		c.srv.beats.schedule(c, c.srv.cfg.PingInterval)
	}
}

// heartbeat alternates between sending a ping and checking that its pong came back.
// The wheel calls it for many connections in turn, so it never blocks.
func (c *Conn) heartbeat() {
	c.mu.Lock()
	if c.isClosed() {
		c.mu.Unlock()
		return
	}
	if c.awaitingPong {
		c.mu.Unlock()
		go c.close(ReasonPingTimeout, false) // the close handlers do I/O
		return
	}
	c.awaitingPong = true
	c.srv.beats.schedule(c, c.srv.cfg.PingTimeout)
	c.mu.Unlock()
	_ = c.sendPacket(string(Ping))
}

func (c *Conn) gotPong() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.awaitingPong && !c.isClosed() {
		c.awaitingPong = false
		c.srv.beats.schedule(c, c.srv.cfg.PingInterval)
	}
}

// handlePacket acts on one packet from the client, whatever the transport.
func (c *Conn) handlePacket(p Packet) {
	switch p.Type {
	case Message:
		switch {
		case !p.Binary:
			if c.onMessage != nil {
				c.onMessage(p.Data)
			}
		case c.onBinary != nil:
			c.onBinary([]byte(p.Data))
		default:
			c.close(ReasonProtocolError, false)
		}
	case Pong:
		c.gotPong()
	case Ping: // only probes are expected, but answering is harmless
		_ = c.sendPacket(string(Pong) + p.Data)
	case Close:
		c.close(ReasonClientClose, false)
	case Noop:
	default:
		c.close(ReasonProtocolError, false)
	}
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
		batch := c.takeQueue(maxWSBatch)
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
