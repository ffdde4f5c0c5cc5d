package socketio

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quibly/quibly/app/internal/engineio"
)

// ErrSlowConsumer is returned by a send to a client whose queue overflowed; the
// connection is dropped (engineio.ErrSlowConsumer).
var ErrSlowConsumer = engineio.ErrSlowConsumer

// ConnectErr is returned by Handler.Connect to refuse a connection; the client
// receives it as a connect_error with Message and Data.
type ConnectErr struct {
	Message string
	Data    any
}

func (e *ConnectErr) Error() string { return e.Message }

// AckFunc answers an event's ack with args; calling it more than once does nothing.
// A []byte argument travels as a binary attachment (see encodeArgs).
type AckFunc func(args ...any)

// Handler is the application behind one namespace. Calls for one socket never overlap.
type Handler interface {
	// Connect authenticates a CONNECT packet's auth object. It may set s.ID and s.PID
	// (to continue a recovered session). A *ConnectErr refuses the connection.
	Connect(s *Socket, auth json.RawMessage) error
	// Connected runs right after the client was told it is connected.
	Connected(s *Socket)
	// Event handles one client event. The arguments of an event with binary
	// attachments hold placeholders (see AttachmentIndex) for them. Ack is nil when
	// the client did not ask for one.
	Event(s *Socket, event string, args []json.RawMessage, attachments [][]byte, ack AckFunc)
	// Disconnected runs once for every socket whose Connect succeeded, when it ends:
	// after Connected, or instead of it when the connection ended during Connect.
	Disconnected(s *Socket, reason string)
}

// Disconnect reasons, besides the Engine.IO close reasons.
const (
	ReasonClientNamespaceDisconnect = "client namespace disconnect"
	ReasonServerNamespaceDisconnect = "server namespace disconnect"
)

// Socket is a client connected to one namespace.
type Socket struct {
	// ID is the socket id sent to the client; PID the private id that lets it recover.
	ID, PID string
	// Recovered is set by the handler when the session was restored.
	Recovered bool
	// Data is the application's per-socket state.
	Data any

	nsp    string
	client *client
}

// Conn returns the underlying Engine.IO connection.
func (s *Socket) Conn() *engineio.Conn { return s.client.conn }

// Namespace returns the namespace the socket is connected to.
func (s *Socket) Namespace() string { return s.nsp }

// Prepare turns a packet produced by EncodeEvent into what SendPrepared sends, so
// that a broadcast is encoded once for all its sockets.
func Prepare(packet string) string { return engineio.MessagePacket(packet) }

// SendPrepared sends packets made by Prepare together: on a websocket they leave in
// one write.
func (s *Socket) SendPrepared(packets ...string) error { return s.client.conn.SendPackets(packets...) }

// Emit sends an event to the socket's client; []byte arguments travel as binary
// attachments.
func (s *Socket) Emit(event string, args ...any) error {
	data, attachments, err := encodeArgs(append([]any{event}, args...))
	if err != nil {
		return fmt.Errorf("socket.io: encoding %q: %w", event, err)
	}
	return s.client.send(Packet{Type: Event, Namespace: s.nsp, AckID: NoAck, Data: data}, attachments)
}

// Disconnect tells the client its session is over (it will not reconnect by itself)
// and closes the connection.
func (s *Socket) Disconnect() {
	_ = s.client.send(Packet{Type: Disconnect, Namespace: s.nsp, AckID: NoAck}, nil)
	s.client.conn.Close()
}

// Config tunes the Socket.IO layer.
type Config struct {
	// ConnectTimeout is how long a connection may stay without a connected namespace
	// (after it opens, or after its client left the last one) before it is closed.
	ConnectTimeout time.Duration
	// MaxAttachmentBytes bounds the binary attachments of one packet, together.
	MaxAttachmentBytes int
	Logger             *slog.Logger
}

// withDefaults fills the fields left zero; every field has a default, so a Config
// needs no Validate.
func (c Config) withDefaults() Config {
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.MaxAttachmentBytes <= 0 {
		c.MaxAttachmentBytes = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Server turns Engine.IO connections into sockets for the Handler of each namespace.
type Server struct {
	cfg        Config
	log        *slog.Logger
	namespaces map[string]Handler
	serving    atomic.Bool
}

// NewServer returns a server with h on the main namespace "/"; pass its OnConnection
// to engineio.NewServer.
func NewServer(cfg Config, h Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("socket.io: a handler is required")
	}
	cfg = cfg.withDefaults()
	return &Server{cfg: cfg, log: cfg.Logger, namespaces: map[string]Handler{"/": h}}, nil
}

// Handle serves namespace nsp ("/name") with h. Call it before the first connection.
func (srv *Server) Handle(nsp string, h Handler) error {
	switch {
	case srv.serving.Load():
		return errors.New("socket.io: namespaces must be added before serving")
	case h == nil:
		return errors.New("socket.io: a handler is required")
	case len(nsp) < 2 || nsp[0] != '/':
		return fmt.Errorf("socket.io: namespace %q must be / followed by a name", nsp)
	case srv.namespaces[nsp] != nil:
		return fmt.Errorf("socket.io: namespace %q is already served", nsp)
	}
	srv.namespaces[nsp] = h
	return nil
}

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

// OnConnection installs the packet handlers of a new Engine.IO connection.
func (srv *Server) OnConnection(c *engineio.Conn) {
	srv.serving.Store(true)
	cl := &client{srv: srv, conn: c}
	cl.armConnectTimer()
	c.OnMessage(cl.onText)
	c.OnBinary(cl.onBinary)
	c.OnClose(cl.onClose)
}

// armConnectTimer starts the wait for a namespace connect. Callers hold cl.mu or
// have cl to themselves.
func (cl *client) armConnectTimer() {
	cl.connectTimer = time.AfterFunc(cl.srv.cfg.ConnectTimeout, func() {
		cl.mu.Lock()
		idle := cl.main == nil && len(cl.others) == 0
		cl.mu.Unlock()
		if idle {
			cl.conn.Fail(engineio.ReasonHandshakeTimeout)
		}
	})
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
	if cl.connectTimer != nil {
		cl.connectTimer.Stop()
		cl.connectTimer = nil
	}
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
	if s != nil && cl.main == nil && len(cl.others) == 0 && !cl.closed {
		cl.armConnectTimer()
	}
	return s
}

func (cl *client) onClose(reason string) {
	cl.mu.Lock()
	cl.closed = true
	if cl.connectTimer != nil {
		cl.connectTimer.Stop()
		cl.connectTimer = nil
	}
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
