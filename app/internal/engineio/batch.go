package engineio

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// batchConn is the net.Conn under a websocket. gorilla/websocket writes every frame
// with its own write call; between hold and release, batchConn collects those
// frames instead, and release sends them in one write. Frames queued together (one
// bus read fanned out to a socket, or a burst of acks) so cost one system call, here
// and in every proxy and client downstream, instead of one each.
type batchConn struct {
	net.Conn
	// reader is the websocket's read buffer, made here so that the connection's reader
	// can tell whether it holds data the kernel no longer reports as readable.
	reader *bufio.Reader

	mu      sync.Mutex
	holding bool
	buf     *[]byte // taken from batchBufs while holding
	// deadline is the write deadline last set on Conn (unix ns; 0: none), so that a
	// batch can reuse it instead of setting its own (see writeDeadline).
	deadline int64
}

// batchBufs keeps batch buffers between flushes, so an idle socket holds none.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// maxPooledBatch is the largest buffer put back in the pool; a rare huge batch
// does not stay allocated.
const maxPooledBatch = 256 << 10

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.holding {
		*b.buf = append(*b.buf, p...)
		b.mu.Unlock()
		return len(p), nil
	}
	b.mu.Unlock()
	return b.Conn.Write(p)
}

// SetWriteDeadline is ignored while holding (gorilla sets one per frame, and each
// costs a timer update); release sets one for the whole batch.
func (b *batchConn) SetWriteDeadline(t time.Time) error {
	b.mu.Lock()
	holding := b.holding
	if !holding {
		b.deadline = 0
		if !t.IsZero() {
			b.deadline = t.UnixNano()
		}
	}
	b.mu.Unlock()
	if holding {
		return nil
	}
	return b.Conn.SetWriteDeadline(t)
}

// writeDeadline makes the next write end within timeout. A deadline already set
// between timeout/2 and timeout from now is kept: setting one costs a runtime timer
// update, which at one per batch was 4 % of a node's CPU at half load. A write so
// gets at least half its timeout and never more than all of it.
func (b *batchConn) writeDeadline(timeout time.Duration) error {
	now := time.Now().UnixNano()
	b.mu.Lock()
	keep := b.deadline != 0 && b.deadline >= now+int64(timeout/2) && b.deadline <= now+int64(timeout)
	if !keep {
		b.deadline = now + int64(timeout)
	}
	deadline := b.deadline
	b.mu.Unlock()
	if keep {
		return nil
	}
	return b.Conn.SetWriteDeadline(time.Unix(0, deadline))
}

// appendFrame adds p to the batch as one final, unmasked frame of the given opcode
// (RFC 6455 5.2; a server does not mask). gorilla's writers copy each payload into a
// buffer of their own and allocate per frame; framing here copies it once, straight
// into the batch. Call between hold and release; gorilla's own writes (control
// frames) still interleave whole.
func (b *batchConn) appendFrame(opcode byte, p string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	buf := *b.buf
	first := 0x80 | opcode // FIN
	switch n := len(p); {
	case n <= 125:
		buf = append(buf, first, byte(n))
	case n <= 0xFFFF:
		buf = append(buf, first, 126, byte(n>>8), byte(n))
	default:
		buf = binary.BigEndian.AppendUint64(append(buf, first, 127), uint64(n))
	}
	*b.buf = append(buf, p...)
}

// Frame opcodes (RFC 6455 5.2).
const (
	opText   byte = 0x1
	opBinary byte = 0x2
)

// hold starts collecting writes.
func (b *batchConn) hold() {
	b.mu.Lock()
	b.holding = true
	b.buf = batchBufs.Get().(*[]byte)
	b.mu.Unlock()
}

// release stops collecting and writes what was collected in one call, which must
// finish within timeout.
func (b *batchConn) release(timeout time.Duration) error {
	b.mu.Lock()
	buf := b.buf
	b.holding, b.buf = false, nil
	b.mu.Unlock()
	if buf == nil {
		return nil
	}
	defer func() {
		if cap(*buf) <= maxPooledBatch {
			*buf = (*buf)[:0]
			batchBufs.Put(buf)
		}
	}()
	if len(*buf) == 0 {
		return nil
	}
	if err := b.writeDeadline(timeout); err != nil {
		return err
	}
	_, err := b.Conn.Write(*buf)
	return err
}

// batchConnOf returns the batchConn under ws: Server.upgrade puts every websocket on one.
func batchConnOf(ws *websocket.Conn) *batchConn { return ws.NetConn().(*batchConn) }

// batchingWriter hands gorilla's upgrader a batchConn when it hijacks the connection.
type batchingWriter struct {
	http.ResponseWriter
}

func (w *batchingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("engine.io: the response writer cannot be hijacked")
	}
	nc, brw, err := h.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if brw.Reader.Buffered() > 0 { // what gorilla checks; it only sees the reader below
		_ = nc.Close()
		return nil, nil, errors.New("engine.io: client sent data before the handshake completed")
	}
	// The HTTP server's request deadlines (ReadTimeout, WriteTimeout) stay on a
	// hijacked connection; a websocket lives longer and sets its own.
	if err := nc.SetDeadline(time.Time{}); err != nil {
		_ = nc.Close()
		return nil, nil, err
	}
	bc := &batchConn{Conn: nc}
	// gorilla reads through this reader when the upgrader's ReadBufferSize is 0 and the
	// reader is larger than 256 bytes (room for a control frame).
	bc.reader = bufio.NewReaderSize(bc, wsReadBufferSize)
	return bc, bufio.NewReadWriter(bc.reader, brw.Writer), nil
}

// wsReadBufferSize is each socket's read buffer, kept for the socket's life. Clients
// send little (a chat message is a few hundred bytes) and gorilla reads a payload
// larger than the buffer straight into the message, so a small one costs few reads.
const wsReadBufferSize = 272 // gorilla needs more than 256; 272 is a 288-byte allocation

// gorilla ignores a reader of 256 bytes or less and makes its own, which readReady
// could not see into: refuse to compile then.
const _ = uint(wsReadBufferSize - 257)
