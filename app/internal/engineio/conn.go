package engineio

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

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
	// ReasonMessageTooLarge: a message the layer above assembles from several
	// packets (binary attachments) passed its size bound, or the server's.
	ReasonMessageTooLarge = "message too large"
	// ReasonMessageTimeout: such a message did not arrive whole in time.
	ReasonMessageTimeout = "message not completed in time"
)

// Conn is one Engine.IO session, whichever transport currently carries it.
type Conn struct {
	ID         string
	RemoteAddr string
	clientIP   string // what admit counted it under
	ipReleased bool   // its place under clientIP was given back; guarded by srv.mu

	srv       *Server
	onMessage func(data string)
	onBinary  func(data []byte)
	onClose   func(reason string)

	mu           sync.Mutex
	queue        []string      // encoded packets not yet written
	room         chan struct{} // closed when the queue has room again; made by a waiting reply
	transport    string
	ws           *websocket.Conn
	upgrading    bool
	probed       bool          // the upgrade's probe was answered
	probeDone    chan struct{} // closed when probed is set
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

// SendPackets queues packets made by MessagePacket and BinaryPacket, all or none, so
// that they leave together (in one write on a websocket). It never blocks, like Send.
func (c *Conn) SendPackets(packets ...string) error { return c.sendPacket(packets...) }

// SendReply queues packets that answer the client's own request (an ack, a connect
// answer). Unlike SendPackets it does not drop the client when its queue is full: it
// waits for the client to read, so a client that sends requests faster than it reads
// their answers is slowed to its own pace (the caller is its reader, or holds the
// reader back). Only a client that reads nothing for the write timeout is dropped.
func (c *Conn) SendReply(packets ...string) error { return c.enqueue(true, packets) }

func (c *Conn) sendPacket(ps ...string) error { return c.enqueue(false, ps) }

func (c *Conn) enqueue(reply bool, ps []string) error {
	var timeout <-chan time.Time
	for {
		c.mu.Lock()
		if c.isClosed() {
			c.mu.Unlock()
			return ErrClosed
		}
		// A client is slow when its backlog is already full. A batch is taken whole on
		// top of a shorter backlog: a bus read can bring more events for one socket than
		// the queue holds, and that socket is not slow for it.
		if len(c.queue) < c.srv.cfg.SendQueueSize {
			break
		}
		if !reply {
			c.mu.Unlock()
			c.dropSlow()
			return ErrSlowConsumer
		}
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(c.srv.cfg.WriteTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-room:
		case <-c.closed:
			return ErrClosed
		case <-timeout:
			c.dropSlow()
			return ErrSlowConsumer
		}
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

// dropSlow closes a connection whose client does not read its events, once.
func (c *Conn) dropSlow() {
	// Closed from another goroutine: senders (a broadcast) may hold their own locks,
	// which the close handlers need.
	if c.dropping.CompareAndSwap(false, true) {
		go c.close(ReasonSlowConsumer, false)
	}
}

// maxPollPackets bounds the packets of one long-polling response: python-engineio
// refuses a payload of more than 16 (its max_decode_packets) and drops the session;
// the rest go out in the next poll.
const maxPollPackets = 16

// takeQueue removes and returns queued packets, at most maxBytes of them (at least
// one) and, when maxPackets is positive, at most that many. Callers hold c.mu.
func (c *Conn) takeQueue(maxBytes, maxPackets int) []string {
	n, size := 0, 0
	for n < len(c.queue) && (maxPackets <= 0 || n < maxPackets) {
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
	if c.room != nil && len(c.queue) < c.srv.cfg.SendQueueSize {
		close(c.room) // replies waiting for room may go on
		c.room = nil
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
		// session is gone. A close by the server waits likewise for the next poll, which
		// takes what was queued and the close packet.
		lingering := c.transport == TransportPolling && (reason == ReasonClientClose && !c.pollActive || notifyClient)
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
			c.srv.releaseConn(c)
			time.AfterFunc(c.srv.cfg.PingTimeout, func() { c.srv.remove(c) })
		} else {
			c.srv.remove(c)
		}
		if c.onClose != nil {
			c.onClose(reason)
		}
	})
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
