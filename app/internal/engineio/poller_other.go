//go:build !linux

package engineio

import (
	"errors"
	"syscall"
)

// readPoller is Linux-only (epoll); elsewhere every websocket reads on a goroutine
// of its own, which works the same and costs a stack per idle socket.
type readPoller struct{}

func pollerForReads() (*readPoller, error) {
	return nil, errors.New("engine.io: no read poller on this platform")
}

func (p *readPoller) watch(syscall.Conn, bool, reader) (func(), error) {
	return nil, errors.New("engine.io: no read poller on this platform")
}
