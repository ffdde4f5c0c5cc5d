package socketio

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/quibly/quibly/app/internal/engineio"
)

// Config tunes the Socket.IO layer.
type Config struct {
	// ConnectTimeout is how long a connection may stay without a connected namespace
	// (after it opens, or after its client left the last one) before it is closed.
	ConnectTimeout time.Duration
	// MaxAttachmentBytes bounds the binary attachments of one packet, together.
	MaxAttachmentBytes int
	// MaxPendingAttachmentBytes bounds the attachment bytes held on this server, over
	// every connection, for packets not yet complete: a connection that would pass it
	// is closed, so many clients announcing large packets cannot pin the memory.
	MaxPendingAttachmentBytes int64
	// AttachmentTimeout is how long a binary packet may take to arrive whole after
	// it was announced; a connection that takes longer is closed.
	AttachmentTimeout time.Duration
	Logger            *slog.Logger
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
	if c.MaxPendingAttachmentBytes <= 0 {
		c.MaxPendingAttachmentBytes = 64 << 20
	}
	if c.AttachmentTimeout <= 0 {
		c.AttachmentTimeout = 15 * time.Second
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
	// pending is the attachment bytes held for incomplete packets, over every
	// connection (MaxPendingAttachmentBytes bounds it).
	pending atomic.Int64
}

// PendingAttachmentBytes returns the attachment bytes held for packets still waiting
// for the rest of their attachments.
func (srv *Server) PendingAttachmentBytes() int64 { return srv.pending.Load() }

// AttachmentsAccepter is implemented by a Handler that takes binary attachments. A
// handler without it (or that answers false) is given an event's attachments as
// empty slices of the right count, so it can refuse them, and their bytes are
// never held while the packet arrives.
type AttachmentsAccepter interface {
	AcceptsAttachments() bool
}

func acceptsAttachments(h Handler) bool {
	a, ok := h.(AttachmentsAccepter)
	return ok && a.AcceptsAttachments()
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

// OnConnection installs the packet handlers of a new Engine.IO connection.
func (srv *Server) OnConnection(c *engineio.Conn) {
	srv.serving.Store(true)
	cl := &client{srv: srv, conn: c}
	cl.armConnectTimer()
	c.OnMessage(cl.onText)
	c.OnBinary(cl.onBinary)
	c.OnClose(cl.onClose)
}
