//go:build linux

package engineio

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// readPoller waits on one epoll instance, with one goroutine, for any of many
// websockets to become readable, and only then runs that socket's reader on a
// goroutine of its own. An idle socket so holds no goroutine: a reader parked in
// Read holds a stack of 4 KB or more, the largest part of an idle socket's memory.
//
// Each socket is registered one-shot: after an event the kernel reports nothing more
// for it until the reader has drained what it buffered and re-arms it, so one socket
// never has two readers.
type readPoller struct {
	epfd int

	mu      sync.Mutex
	entries map[uint64]*pollEntry
	nextID  uint64
}

type pollEntry struct {
	id     uint64
	raw    syscall.RawConn
	reader reader
	// running orders one reader run before the next, for the Go memory model (the
	// kernel's one-shot re-arm is an ordering Go cannot see).
	running sync.Mutex
}

const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

var (
	sharedPoller    *readPoller
	sharedPollerErr error
	sharedPollerSet sync.Once
)

// pollerForReads returns the process's read poller, started on first use. One is
// enough: it only dispatches, the reading runs on the readers' goroutines.
func pollerForReads() (*readPoller, error) {
	sharedPollerSet.Do(func() {
		sharedPoller, sharedPollerErr = newReadPoller()
	})
	return sharedPoller, sharedPollerErr
}

func newReadPoller() (*readPoller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("engine.io: epoll_create1: %w", err)
	}
	p := &readPoller{epfd: epfd, entries: map[uint64]*pollEntry{}}
	go p.wait()
	return p, nil
}

// watch registers conn: r.readReady runs whenever it has data to read, until it
// returns false or the returned stop is called. When buffered is true, data was
// already read into a buffer the kernel does not know about, so it runs once at
// once. Call stop when the connection ends, before or after the socket is closed.
func (p *readPoller) watch(conn syscall.Conn, buffered bool, r reader) (stop func(), err error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.nextID++
	e := &pollEntry{id: p.nextID, raw: raw, reader: r}
	p.entries[e.id] = e
	p.mu.Unlock()
	if buffered {
		go p.run(e, unix.EPOLL_CTL_ADD)
	} else if err := p.control(e, unix.EPOLL_CTL_ADD); err != nil {
		p.forget(e)
		return nil, err
	}
	return func() { p.stop(e) }, nil
}

// control changes the kernel's registration of e's socket. It runs inside
// RawConn.Control, which keeps the descriptor open meanwhile: a closed descriptor's
// number may already belong to another socket.
func (p *readPoller) control(e *pollEntry, op int) error {
	var opErr error
	err := e.raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: pollEvents, Fd: int32(uint32(e.id)), Pad: int32(uint32(e.id >> 32))}
		opErr = unix.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	if err != nil {
		return err
	}
	return opErr
}

func (p *readPoller) forget(e *pollEntry) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.entries[e.id] != e {
		return false
	}
	delete(p.entries, e.id)
	return true
}

func (p *readPoller) stop(e *pollEntry) {
	if p.forget(e) {
		_ = p.control(e, unix.EPOLL_CTL_DEL) // fails harmlessly once the socket is closed
	}
}

func (p *readPoller) wait() {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			// Cannot happen with a valid descriptor and buffer; say so rather than spin.
			panic(fmt.Sprintf("engine.io: epoll_wait: %v", err))
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if e := p.entries[id]; e != nil {
				go p.run(e, unix.EPOLL_CTL_MOD)
			}
		}
		p.mu.Unlock()
	}
}

// run serves one readiness event, then re-arms the socket (op) unless it is done.
func (p *readPoller) run(e *pollEntry, op int) {
	e.running.Lock()
	more := e.reader.readReady()
	e.running.Unlock()
	if !more {
		p.stop(e)
		return
	}
	p.mu.Lock()
	live := p.entries[e.id] == e
	p.mu.Unlock()
	if live && p.control(e, op) != nil {
		p.forget(e) // the socket was closed meanwhile
	}
}
