package socketio

import (
	"encoding/json"
	"fmt"

	"github.com/quibly/quibly/app/internal/engineio"
)

// ErrSlowConsumer is returned by a send to a client whose queue overflowed; the
// connection is dropped (engineio.ErrSlowConsumer).
var ErrSlowConsumer = engineio.ErrSlowConsumer

// ReasonClientNamespaceDisconnect is the Disconnected reason when the client left the
// namespace (a DISCONNECT packet); otherwise it is the Engine.IO close reason.
const ReasonClientNamespaceDisconnect = "client namespace disconnect"

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
