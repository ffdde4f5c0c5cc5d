// Command adapter serves Quibly's Engine.IO and Socket.IO layers the way the official
// protocol test suites expect of their reference server: an Engine.IO echo server at
// /engine.io/, and at /socket.io/ the main namespace and "/custom", each answering
// CONNECT with an "auth" event, "message" with "message-back" and
// "message-with-ack" with an ack of the same arguments. The chat server has none of
// these handlers; the transport and protocol code under them is what runs in Quibly.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/quibly/quibly/app/internal/engineio"
	"github.com/quibly/quibly/app/internal/socketio"
)

// The settings the suites assert in the handshake.
const (
	pingInterval = 300 * time.Millisecond
	pingTimeout  = 200 * time.Millisecond
	maxPayload   = 1_000_000
	// The suites' "no handshake" test waits for the close within mocha's 2 s.
	connectTimeout = time.Second
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3000", "listen address (the suites call localhost:3000)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr); err != nil {
		fmt.Fprintln(os.Stderr, "adapter:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	eioCfg := engineio.Config{PingInterval: pingInterval, PingTimeout: pingTimeout, MaxPayload: maxPayload,
		SendQueueSize: 256, Logger: log}

	echo, err := engineio.NewServer(eioCfg, func(c *engineio.Conn) {
		c.OnMessage(func(data string) { _ = c.Send(data) })
		c.OnBinary(func(data []byte) { _ = c.SendPackets(engineio.BinaryPacket(data)) })
	})
	if err != nil {
		return err
	}
	sio, err := socketio.NewServer(socketio.Config{ConnectTimeout: connectTimeout, MaxAttachmentBytes: maxPayload, Logger: log}, echoHandler{})
	if err != nil {
		return err
	}
	if err := sio.Handle("/custom", echoHandler{}); err != nil {
		return err
	}
	sioEngine, err := engineio.NewServer(eioCfg, sio.OnConnection)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/engine.io/", echo)
	mux.Handle("/socket.io/", sioEngine)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Warn("adapter listening", "addr", addr) // the runner waits for the port, not this line
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
}

// echoHandler is the reference server's test namespace.
type echoHandler struct{}

func (echoHandler) Connect(s *socketio.Socket, auth json.RawMessage) error {
	if len(auth) == 0 {
		auth = json.RawMessage(`{}`)
	}
	s.Data = auth
	return nil
}

func (echoHandler) Connected(s *socketio.Socket) {
	_ = s.Emit("auth", s.Data.(json.RawMessage))
}

func (echoHandler) Event(s *socketio.Socket, event string, args []json.RawMessage, attachments [][]byte, ack socketio.AckFunc) {
	back := make([]any, len(args))
	for i, a := range args {
		back[i] = a
		if n, ok := socketio.AttachmentIndex(a); ok {
			back[i] = attachments[n] // sent back as an attachment in the same place
		}
	}
	switch event {
	case "message":
		_ = s.Emit("message-back", back...)
	case "message-with-ack":
		if ack != nil {
			ack(back...)
		}
	}
}

func (echoHandler) Disconnected(*socketio.Socket, string) {}

// AcceptsAttachments: the echo handlers send binary arguments back.
func (echoHandler) AcceptsAttachments() bool { return true }
