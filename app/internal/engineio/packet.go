// Package engineio implements the server side of Engine.IO protocol v4: the open
// handshake, HTTP long-polling and WebSocket transports, the upgrade from one to the
// other, ping/pong liveness, and binary message packets (base64 over polling, binary
// frames over websocket).
package engineio

import (
	"encoding/base64"
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
	errEmptyPacket = errors.New("engine.io: empty packet")
	errPacketType  = errors.New("engine.io: unknown packet type")
	errBase64      = errors.New("engine.io: binary packet is not valid base64")
)

// binaryPrefix starts a binary message packet in a long-polling payload (its data in
// base64) and in a connection's send queue (its data raw).
const binaryPrefix = 'b'

// Packet is one decoded Engine.IO packet. A binary message has Type Message, Binary
// set and its bytes in Data.
type Packet struct {
	Type   byte
	Data   string
	Binary bool
}

// DecodePacket parses one packet in its text form (a binary message as b<base64>).
func DecodePacket(s string) (Packet, error) {
	if s == "" {
		return Packet{}, errEmptyPacket
	}
	if s[0] == binaryPrefix {
		raw, err := base64.StdEncoding.DecodeString(s[1:])
		if err != nil {
			return Packet{}, errBase64
		}
		return Packet{Type: Message, Data: string(raw), Binary: true}, nil
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
func (p Packet) Encode() string {
	if p.Binary {
		return string(binaryPrefix) + base64.StdEncoding.EncodeToString([]byte(p.Data))
	}
	return string(p.Type) + p.Data
}

// pollingForm turns a queued packet into its long-polling form: a binary one is
// queued raw and travels in base64.
func pollingForm(queued string) string {
	if queued != "" && queued[0] == binaryPrefix {
		return string(binaryPrefix) + base64.StdEncoding.EncodeToString([]byte(queued[1:]))
	}
	return queued
}
