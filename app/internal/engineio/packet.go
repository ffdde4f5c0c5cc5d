// Package engineio implements the server side of Engine.IO protocol v4: the open
// handshake, HTTP long-polling and WebSocket transports, the upgrade from one to the
// other, and ping/pong liveness. Only text packets are supported; Quibly's events are JSON.
package engineio

import (
	"errors"
	"strings"
)

// Packet types of Engine.IO v4.
const (
	Open    byte = '0'
	Close   byte = '1'
	Ping    byte = '2'
	Pong    byte = '3'
	Message byte = '4'
	Upgrade byte = '5'
	Noop    byte = '6'
)

// separator joins packets in a long-polling payload.
const separator = "\x1e"

var (
	errEmptyPacket  = errors.New("engine.io: empty packet")
	errPacketType   = errors.New("engine.io: unknown packet type")
	errBinaryPacket = errors.New("engine.io: binary packets are not supported")
)

// Packet is one decoded Engine.IO packet.
type Packet struct {
	Type byte
	Data string
}

// DecodePacket parses one text packet.
func DecodePacket(s string) (Packet, error) {
	if s == "" {
		return Packet{}, errEmptyPacket
	}
	if s[0] == 'b' {
		return Packet{}, errBinaryPacket
	}
	if s[0] < Open || s[0] > Noop {
		return Packet{}, errPacketType
	}
	return Packet{Type: s[0], Data: s[1:]}, nil
}

// DecodePayload splits a long-polling body into packets.
func DecodePayload(body string) ([]Packet, error) {
	parts := strings.Split(body, separator)
	out := make([]Packet, 0, len(parts))
	for _, p := range parts {
		pk, err := DecodePacket(p)
		if err != nil {
			return nil, err
		}
		out = append(out, pk)
	}
	return out, nil
}

// Encode returns the text form of a packet.
func (p Packet) Encode() string { return string(p.Type) + p.Data }
