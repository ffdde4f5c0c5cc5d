package engineio

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/quibly/quibly/app/internal/testenv"
)

// waitFor polls ok until it holds, for at most 3 s.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	testenv.Eventually(t, 3*time.Second, what, ok)
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func TestBatchConnHoldsWritesUntilRelease(t *testing.T) {
	server, client := tcpPair(t)
	b := &batchConn{Conn: server}

	// Not holding: writes pass straight through.
	if _, err := b.Write([]byte("now")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 3)
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "now" {
		t.Fatalf("pass-through write: got %q, %v", got, err)
	}

	b.hold()
	for _, p := range []string{"one,", "two,", "three"} {
		if _, err := b.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	// A deadline in the past while holding must not fail the batch's write.
	if err := b.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := client.Read(make([]byte, 64)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes while the writes were held (err %v)", n, err)
	}
	if err := b.release(time.Second); err != nil {
		t.Fatalf("release: %v", err)
	}
	want := "one,two,three"
	got = make([]byte, len(want))
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil || string(got) != want {
		t.Fatalf("after release: got %q, %v; want %q", got, err, want)
	}
	// Released: pass-through again, and releasing twice is harmless.
	if err := b.release(time.Second); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if _, err := b.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
}

// Frames written in one batch still arrive as separate websocket messages, in order.
func TestBatchedFramesArriveAsSeparateMessages(t *testing.T) {
	upgrader := websocket.Upgrader{WriteBufferSize: 256}
	// Payload lengths in each of the three length encodings, and empty.
	packets := []string{"4first", "4" + strings.Repeat("x", 1000), "4" + strings.Repeat("y", 70000), "", "4last"}
	served := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(&batchingWriter{ResponseWriter: w}, r, nil)
		if err != nil {
			served <- err
			return
		}
		if _, ok := ws.NetConn().(*batchConn); !ok {
			served <- errors.New("the websocket is not on a batchConn")
			return
		}
		c := &Conn{}
		served <- c.writeFrames(ws, packets, time.Second)
	}))
	defer srv.Close()
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	for i, want := range packets {
		kind, data, err := client.ReadMessage()
		if err != nil || kind != websocket.TextMessage || string(data) != want {
			t.Fatalf("message %d: kind %d, %d bytes, err %v; want %d bytes", i, kind, len(data), err, len(want))
		}
	}
}

// A batch larger than the send queue is taken whole by a connection that is keeping
// up; a connection whose backlog is already full is dropped.
func TestSendQueueLimitCountsTheBacklog(t *testing.T) {
	srv, err := NewServer(Config{PingInterval: time.Minute, PingTimeout: time.Minute, MaxPayload: 1 << 20, SendQueueSize: 3}, func(*Conn) {})
	if err != nil {
		t.Fatal(err)
	}
	c := newConn(srv, "id", "127.0.0.1:1", TransportPolling)
	batch := []string{MessagePacket("1"), MessagePacket("2"), MessagePacket("3"), MessagePacket("4"), MessagePacket("5")}
	if err := c.SendPackets(batch...); err != nil {
		t.Fatalf("a batch of 5 on an empty queue of 3: %v", err)
	}
	if err := c.SendPackets(MessagePacket("6")); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("a send onto a full backlog: got %v, want ErrSlowConsumer", err)
	}
	select {
	case <-c.Closed():
	case <-time.After(2 * time.Second):
		t.Fatal("the slow connection was not closed")
	}
}

// A batch reuses a write deadline that leaves it at least half its timeout and at
// most all of it, and sets a new one otherwise: a stalled write still ends in time.
func TestBatchWriteDeadlineIsReusedWithinItsBounds(t *testing.T) {
	server, _ := tcpPair(t)
	b := &batchConn{Conn: server}
	if err := b.writeDeadline(time.Minute); err != nil {
		t.Fatal(err)
	}
	first := b.deadline
	if until := time.Until(time.Unix(0, first)); until < 59*time.Second || until > time.Minute {
		t.Fatalf("first deadline %v from now; want a minute", until)
	}
	if err := b.writeDeadline(time.Minute); err != nil || b.deadline != first {
		t.Fatalf("a deadline a minute away was replaced (err %v)", err)
	}
	// A shorter timeout must not inherit the minute.
	if err := b.writeDeadline(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if until := time.Until(time.Unix(0, b.deadline)); until > 200*time.Millisecond {
		t.Fatalf("a 200 ms write got a deadline %v away", until)
	}
	// The kept deadline really bounds a write that cannot proceed: the client reads
	// nothing, so a large write stalls and must fail at the deadline.
	b.hold()
	_, _ = b.Write(make([]byte, 32<<20))
	start := time.Now()
	err := b.release(200 * time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a stalled write ended with %v; want a deadline error", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the stalled write took %v", took)
	}
}
