package socketio

// One Engine.IO connection's Socket.IO side: its sockets (one per namespace), the
// packets it receives (with binary attachments reassembled) and what it sends.

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quibly/quibly/app/internal/engineio"
)

// client is one Engine.IO connection and the sockets it has, one per namespace.
type client struct {
	srv  *Server
	conn *engineio.Conn

	mu     sync.Mutex
	main   *Socket            // the socket on "/", which nearly every client has
	others map[string]*Socket // sockets on other namespaces, made on first use
	closed bool
	// connectTimer ends a connection without sockets; it is let go while the
	// connection has one, so that a connected client holds no timer.
	connectTimer *time.Timer

	// asm is the binary packet waiting for its attachments, nil nearly always. The
	// reader fills it; the close and the attachment deadline end it, so pmu guards it.
	pmu sync.Mutex
	asm *assembly
}

// assembly is a binary packet being put together from its attachments.
type assembly struct {
	packet      Packet
	attachments [][]byte
	size        int   // bytes of the attachments so far
	held        int64 // of those, the bytes kept (counted in srv.pending)
	keep        bool  // the handler takes attachments: their bytes are kept
	deadline    *time.Timer
}

// armConnectTimer starts the wait for a namespace connect. Callers hold cl.mu or
// have cl to themselves.
func (cl *client) armConnectTimer() {
	cl.connectTimer = time.AfterFunc(cl.srv.cfg.ConnectTimeout, func() {
		cl.mu.Lock()
		idle := cl.noSocketsLocked()
		cl.mu.Unlock()
		if idle {
			cl.conn.Fail(engineio.ReasonHandshakeTimeout)
		}
	})
}

func (cl *client) noSocketsLocked() bool { return cl.main == nil && len(cl.others) == 0 }

func (cl *client) stopConnectTimerLocked() {
	if cl.connectTimer != nil {
		cl.connectTimer.Stop()
		cl.connectTimer = nil
	}
}

func (cl *client) socket(nsp string) *Socket {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if nsp == "/" {
		return cl.main
	}
	return cl.others[nsp]
}

// add records s; it reports false when the connection closed meanwhile.
func (cl *client) add(s *Socket) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closed {
		return false
	}
	if s.nsp == "/" {
		cl.main = s
	} else {
		if cl.others == nil {
			cl.others = map[string]*Socket{}
		}
		cl.others[s.nsp] = s
	}
	cl.stopConnectTimerLocked()
	return true
}

// remove forgets the socket on nsp and returns it (nil if there was none).
func (cl *client) remove(nsp string) *Socket {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var s *Socket
	if nsp == "/" {
		s, cl.main = cl.main, nil
	} else if s = cl.others[nsp]; s != nil {
		delete(cl.others, nsp)
	}
	if s != nil && cl.noSocketsLocked() && !cl.closed {
		cl.armConnectTimer()
	}
	return s
}

func (cl *client) onClose(reason string) {
	cl.pmu.Lock()
	cl.dropPendingLocked()
	cl.pmu.Unlock()
	cl.mu.Lock()
	cl.closed = true
	cl.stopConnectTimerLocked()
	var gone []*Socket
	if cl.main != nil {
		gone = append(gone, cl.main)
	}
	for _, s := range cl.others {
		gone = append(gone, s)
	}
	cl.main, cl.others = nil, nil
	cl.mu.Unlock()
	for _, s := range gone {
		cl.srv.namespaces[s.nsp].Disconnected(s, reason)
	}
}

// send queues p and its attachments, all or none.
func (cl *client) send(p Packet, attachments [][]byte) error {
	return cl.sendAs(cl.conn.SendPackets, p, attachments)
}

// reply is send for an answer to the client's own request (an ack, a connect answer):
// it waits for room in the client's queue rather than dropping the client
// (engineio.Conn.SendReply).
func (cl *client) reply(p Packet, attachments [][]byte) error {
	return cl.sendAs(cl.conn.SendReply, p, attachments)
}

func (cl *client) sendAs(queue func(...string) error, p Packet, attachments [][]byte) error {
	if len(attachments) == 0 {
		return queue(engineio.MessagePacket(p.Encode()))
	}
	switch p.Type {
	case Event:
		p.Type = BinaryEvent
	case Ack:
		p.Type = BinaryAck
	}
	p.Attachments = len(attachments)
	packets := make([]string, 0, 1+len(attachments))
	packets = append(packets, engineio.MessagePacket(p.Encode()))
	for _, a := range attachments {
		packets = append(packets, engineio.BinaryPacket(a))
	}
	return queue(packets...)
}

// fail ends a connection whose client broke the protocol.
func (cl *client) fail(why string, err error) {
	cl.srv.log.Debug("socket.io: "+why, "err", err, "remote", cl.conn.RemoteAddr)
	cl.conn.Fail(engineio.ReasonProtocolError)
}

func (cl *client) onText(data string) {
	cl.pmu.Lock()
	waiting := cl.asm != nil
	cl.pmu.Unlock()
	if waiting {
		cl.fail("text packet while attachments were due", nil)
		return
	}
	p, err := Decode(data)
	if err != nil {
		cl.fail("malformed packet", err)
		return
	}
	if p.Attachments > 0 {
		cl.announce(p)
		return
	}
	cl.dispatch(p, nil)
}

// announce starts waiting for the attachments of binary packet p. Their bytes are
// kept only where they will be used: an event on a namespace whose handler takes
// attachments. An event on a namespace the client has not connected to (before its
// CONNECT, say) would be refused anyway, so it is refused now, before any byte
// arrives; an ack's attachments are counted and let go (the server asks for no acks).
func (cl *client) announce(p Packet) {
	keep := false
	if p.Type == BinaryEvent {
		if cl.socket(p.Namespace) == nil {
			cl.fail("binary event on a namespace the client is not connected to", nil)
			return
		}
		keep = acceptsAttachments(cl.srv.namespaces[p.Namespace])
	}
	a := &assembly{packet: p, attachments: make([][]byte, 0, p.Attachments), keep: keep}
	cl.pmu.Lock()
	defer cl.pmu.Unlock()
	cl.asm = a
	a.deadline = time.AfterFunc(cl.srv.cfg.AttachmentTimeout, func() {
		cl.pmu.Lock()
		late := cl.asm == a
		cl.pmu.Unlock()
		if late {
			cl.srv.log.Debug("socket.io: binary packet not completed in time", "remote", cl.conn.RemoteAddr)
			cl.conn.Fail(engineio.ReasonMessageTimeout)
		}
	})
}

// dropPendingLocked forgets the packet being assembled and gives its bytes back to
// the server's bound. Callers hold cl.pmu.
func (cl *client) dropPendingLocked() {
	a := cl.asm
	if a == nil {
		return
	}
	a.deadline.Stop()
	cl.srv.pending.Add(-a.held)
	cl.asm = nil
}

func (cl *client) onBinary(data []byte) {
	p, attachments, why := cl.addAttachment(data)
	switch {
	case why == engineio.ReasonProtocolError:
		cl.fail("binary packet without a packet announcing it", nil)
	case why != "":
		cl.srv.log.Debug("socket.io: binary attachments over a limit", "reason", why, "remote", cl.conn.RemoteAddr)
		cl.conn.Fail(why)
	case p != nil:
		cl.dispatch(*p, attachments)
	}
}

// addAttachment adds data to the packet being assembled. It returns the packet and
// its attachments once complete, or the close reason when data breaks a bound (the
// packet's own, or the server's over every connection).
func (cl *client) addAttachment(data []byte) (*Packet, [][]byte, string) {
	cl.pmu.Lock()
	defer cl.pmu.Unlock()
	a := cl.asm
	if a == nil {
		return nil, nil, engineio.ReasonProtocolError
	}
	a.size += len(data)
	if a.size > cl.srv.cfg.MaxAttachmentBytes {
		cl.dropPendingLocked()
		return nil, nil, engineio.ReasonMessageTooLarge
	}
	if a.keep {
		n := int64(len(data))
		if cl.srv.pending.Add(n) > cl.srv.cfg.MaxPendingAttachmentBytes {
			cl.srv.pending.Add(-n)
			cl.dropPendingLocked()
			return nil, nil, engineio.ReasonMessageTooLarge
		}
		a.held += n
		a.attachments = append(a.attachments, data)
	} else {
		a.attachments = append(a.attachments, nil) // counted, not kept
	}
	if len(a.attachments) < a.packet.Attachments {
		return nil, nil, ""
	}
	cl.dropPendingLocked()
	return &a.packet, a.attachments, ""
}

func (cl *client) dispatch(p Packet, attachments [][]byte) {
	if p.Type == Connect {
		cl.connect(p)
		return
	}
	s := cl.socket(p.Namespace)
	switch p.Type {
	case Disconnect:
		if s = cl.remove(p.Namespace); s != nil {
			cl.srv.namespaces[s.nsp].Disconnected(s, ReasonClientNamespaceDisconnect)
		}
	case Event, BinaryEvent:
		if s == nil {
			// Events before CONNECT (or after DISCONNECT) come from a broken client.
			cl.fail("event on a namespace the client is not connected to", nil)
			return
		}
		name, args, err := p.EventArgs()
		if err != nil {
			cl.fail("malformed event", err)
			return
		}
		for _, a := range args {
			if i, ok := AttachmentIndex(a); ok && i >= len(attachments) {
				cl.fail("placeholder of a missing attachment", nil)
				return
			}
		}
		var ack AckFunc
		if p.AckID != NoAck {
			ack = cl.ackFunc(s.nsp, p.AckID)
		}
		cl.srv.namespaces[s.nsp].Event(s, name, args, attachments, ack)
	case Ack, BinaryAck:
		// The server never asks clients for acks; an unsolicited one is ignored.
	default:
		cl.fail("packet type a client does not send", nil)
	}
}

func (cl *client) ackFunc(nsp string, id int64) AckFunc {
	var once sync.Once
	return func(args ...any) {
		once.Do(func() {
			data, attachments, err := encodeArgs(args)
			if err != nil {
				cl.srv.log.Error("encoding ack", "err", err)
				return
			}
			_ = cl.reply(Packet{Type: Ack, Namespace: nsp, AckID: id, Data: data}, attachments)
		})
	}
}

func connectError(nsp, msg string, data any) Packet {
	body := map[string]any{"message": msg}
	if data != nil {
		body["data"] = data
	}
	b, _ := json.Marshal(body)
	return Packet{Type: ConnectError, Namespace: nsp, AckID: NoAck, Data: b}
}

var idSeq atomic.Uint64

func (cl *client) connect(p Packet) {
	h := cl.srv.namespaces[p.Namespace]
	if h == nil {
		_ = cl.reply(connectError(p.Namespace, "Invalid namespace", nil), nil)
		return
	}
	if cl.socket(p.Namespace) != nil {
		return // a repeated CONNECT for a connected namespace is ignored
	}
	s := &Socket{nsp: p.Namespace, client: cl}
	if err := h.Connect(s, p.Data); err != nil {
		var ce *ConnectErr
		if !errors.As(err, &ce) {
			ce = &ConnectErr{Message: "server error"}
			cl.srv.log.Error("connect handler", "err", err)
		}
		_ = cl.reply(connectError(p.Namespace, ce.Message, ce.Data), nil)
		return
	}
	if s.ID == "" {
		// The main namespace's socket is known by its connection's id; another's gets
		// one of its own, unique on this server.
		s.ID = cl.conn.ID
		if s.nsp != "/" {
			s.ID = fmt.Sprintf("%s.%d", cl.conn.ID, idSeq.Add(1))
		}
	}
	body := map[string]string{"sid": s.ID}
	if s.PID != "" {
		body["pid"] = s.PID
	}
	b, _ := json.Marshal(body)
	if !cl.add(s) {
		h.Disconnected(s, engineio.ReasonTransportErr) // the connection ended during Connect
		return
	}
	_ = cl.reply(Packet{Type: Connect, Namespace: s.nsp, AckID: NoAck, Data: b}, nil)
	h.Connected(s)
}
