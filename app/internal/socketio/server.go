package socketio

import (
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quibly/quibly/app/internal/engineio"
)

// ConnectErr is returned by Handler.Connect to refuse a connection; the client
// receives it as a connect_error with Message and Data.
type ConnectErr struct {
	Message string
	Data    any
}

func (e *ConnectErr) Error() string { return e.Message }

// AckFunc answers an event's ack; calling it more than once does nothing.
type AckFunc func(v any)

// Handler is the application behind the server. Calls for one socket never overlap.
type Handler interface {
	// Connect authenticates a CONNECT packet's auth object. It may set s.ID and s.PID
	// (to continue a recovered session). A *ConnectErr refuses the connection.
	Connect(s *Socket, auth json.RawMessage) error
	// Connected runs right after the client was told it is connected.
	Connected(s *Socket)
	// Event handles one client event; ack is nil when the client did not ask for one.
	Event(s *Socket, event string, args []json.RawMessage, ack AckFunc)
	// Disconnected runs once when a connected socket ends.
	Disconnected(s *Socket, reason string)
}

// Socket is a client connected to the default namespace.
type Socket struct {
	// ID is the socket id sent to the client; PID the private id that lets it recover.
	ID, PID string
	// Recovered is set by the handler when the session was restored.
	Recovered bool
	// Data is the application's per-socket state.
	Data any

	conn      *engineio.Conn
	connected atomic.Bool
	// connectTimer ends a session that does not connect in time; it is let go once
	// the socket connects, so that a connected socket holds no timer.
	connectTimer atomic.Pointer[time.Timer]
}

func (s *Socket) stopConnectTimer() {
	if t := s.connectTimer.Swap(nil); t != nil {
		t.Stop()
	}
}

// Conn returns the underlying Engine.IO connection.
func (s *Socket) Conn() *engineio.Conn { return s.conn }

// Prepare turns a packet produced by EncodeEvent into what SendPrepared sends, so
// that a broadcast is encoded once for all its sockets.
func Prepare(packet string) string { return engineio.MessagePacket(packet) }

// SendPrepared sends packets made by Prepare together: on a websocket they leave in
// one write.
func (s *Socket) SendPrepared(packets ...string) error { return s.conn.SendPackets(packets...) }

// Disconnect tells the client its session is over (it will not reconnect by itself)
// and closes the connection.
func (s *Socket) Disconnect() {
	_ = s.conn.Send(Packet{Type: Disconnect, AckID: NoAck}.Encode())
	s.conn.Close()
}

// Config tunes the Socket.IO layer.
type Config struct {
	ConnectTimeout time.Duration // how long a new connection may take to send CONNECT
	Logger         *slog.Logger
}

// Server turns Engine.IO connections into sockets for a Handler.
type Server struct {
	cfg     Config
	handler Handler
	log     *slog.Logger
	mu      sync.Mutex
	sockets map[*Socket]struct{}
}

// NewServer returns a server; pass its OnConnection to engineio.NewServer.
func NewServer(cfg Config, h Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("socket.io: a handler is required")
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{cfg: cfg, handler: h, log: cfg.Logger, sockets: map[*Socket]struct{}{}}, nil
}

// Count returns the number of connected sockets.
func (srv *Server) Count() int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return len(srv.sockets)
}

// OnConnection installs the packet handlers of a new Engine.IO connection.
func (srv *Server) OnConnection(c *engineio.Conn) {
	s := &Socket{conn: c}
	s.connectTimer.Store(time.AfterFunc(srv.cfg.ConnectTimeout, func() {
		if !s.connected.Load() {
			c.Close()
		}
	}))
	c.OnMessage(func(data string) { srv.onPacket(s, data) })
	c.OnClose(func(reason string) {
		s.stopConnectTimer()
		if s.connected.CompareAndSwap(true, false) {
			srv.mu.Lock()
			delete(srv.sockets, s)
			srv.mu.Unlock()
			srv.handler.Disconnected(s, reason)
		}
	})
}

func (srv *Server) send(s *Socket, p Packet) {
	_ = s.conn.Send(p.Encode())
}

func (srv *Server) onPacket(s *Socket, data string) {
	p, err := Decode(data)
	if err != nil {
		// A malformed packet means a broken or hostile client: drop only that connection.
		srv.log.Debug("malformed socket.io packet", "err", err, "remote", s.conn.RemoteAddr)
		s.conn.Close()
		return
	}
	if p.Namespace != "/" {
		if p.Type == Connect {
			srv.send(s, connectError(p.Namespace, "Invalid namespace", nil))
		}
		return // packets for namespaces we refused are ignored, as the reference server does
	}
	switch p.Type {
	case Connect:
		srv.connect(s, p)
	case Disconnect:
		if s.connected.Load() {
			s.conn.Close() // only one namespace, so leaving it ends the connection
		}
	case Event:
		if !s.connected.Load() {
			s.conn.Close()
			return
		}
		name, args, err := p.EventArgs()
		if err != nil {
			s.conn.Close()
			return
		}
		var ack AckFunc
		if p.AckID != NoAck {
			ack = srv.ackFunc(s, p.AckID)
		}
		srv.handler.Event(s, name, args, ack)
	case Ack:
		// The server never asks clients for acks; an unsolicited one is ignored.
	default:
		s.conn.Close()
	}
}

func (srv *Server) ackFunc(s *Socket, id int64) AckFunc {
	var once sync.Once
	return func(v any) {
		once.Do(func() {
			data, err := json.Marshal([]any{v})
			if err != nil {
				srv.log.Error("encoding ack", "err", err)
				return
			}
			srv.send(s, Packet{Type: Ack, AckID: id, Data: data})
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

func (srv *Server) connect(s *Socket, p Packet) {
	if s.connected.Load() {
		return // a repeated CONNECT for a connected namespace is ignored
	}
	if err := srv.handler.Connect(s, p.Data); err != nil {
		var ce *ConnectErr
		if !errors.As(err, &ce) {
			ce = &ConnectErr{Message: "server error"}
			srv.log.Error("connect handler", "err", err)
		}
		srv.send(s, connectError("/", ce.Message, ce.Data))
		return
	}
	if s.ID == "" {
		s.ID = s.conn.ID
	}
	body := map[string]string{"sid": s.ID}
	if s.PID != "" {
		body["pid"] = s.PID
	}
	b, _ := json.Marshal(body)
	s.connected.Store(true)
	s.stopConnectTimer()
	srv.mu.Lock()
	srv.sockets[s] = struct{}{}
	srv.mu.Unlock()
	srv.send(s, Packet{Type: Connect, AckID: NoAck, Data: b})
	srv.handler.Connected(s)
}
