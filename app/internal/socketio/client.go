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

	// A binary packet waiting for its attachments; touched only by the reader.
	pending     *Packet
	attachments [][]byte
	pendingSize int
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
	if len(attachments) == 0 {
		return cl.conn.Send(p.Encode())
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
	return cl.conn.SendPackets(packets...)
}

// fail ends a connection whose client broke the protocol.
func (cl *client) fail(why string, err error) {
	cl.srv.log.Debug("socket.io: "+why, "err", err, "remote", cl.conn.RemoteAddr)
	cl.conn.Fail(engineio.ReasonProtocolError)
}

func (cl *client) onText(data string) {
	if cl.pending != nil {
		cl.fail("text packet while attachments were due", nil)
		return
	}
	p, err := Decode(data)
	if err != nil {
		cl.fail("malformed packet", err)
		return
	}
	if p.Attachments > 0 {
		cl.pending, cl.attachments, cl.pendingSize = &p, make([][]byte, 0, p.Attachments), 0
		return
	}
	cl.dispatch(p, nil)
}

func (cl *client) onBinary(data []byte) {
	if cl.pending == nil {
		cl.fail("binary packet without a packet announcing it", nil)
		return
	}
	cl.pendingSize += len(data)
	if cl.pendingSize > cl.srv.cfg.MaxAttachmentBytes {
		cl.fail("attachments over the size limit", nil)
		return
	}
	cl.attachments = append(cl.attachments, data)
	if len(cl.attachments) < cl.pending.Attachments {
		return
	}
	p, attachments := *cl.pending, cl.attachments
	cl.pending, cl.attachments, cl.pendingSize = nil, nil, 0
	cl.dispatch(p, attachments)
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
			_ = cl.send(Packet{Type: Ack, Namespace: nsp, AckID: id, Data: data}, attachments)
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
		_ = cl.send(connectError(p.Namespace, "Invalid namespace", nil), nil)
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
		_ = cl.send(connectError(p.Namespace, ce.Message, ce.Data), nil)
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
	_ = cl.send(Packet{Type: Connect, Namespace: s.nsp, AckID: NoAck, Data: b}, nil)
	h.Connected(s)
}
