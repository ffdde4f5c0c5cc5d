// Package socketio implements the server side of the Socket.IO v5 protocol on top of
// Engine.IO: namespaces, connect with auth, events, acks, connect errors, and events
// and acks with binary attachments.
package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// Packet types of Socket.IO v5.
const (
	Connect      = 0
	Disconnect   = 1
	Event        = 2
	Ack          = 3
	ConnectError = 4
	BinaryEvent  = 5
	BinaryAck    = 6
)

// NoAck marks a packet without an ack id.
const NoAck = -1

// maxAckID bounds ack ids to what JavaScript clients can produce.
const maxAckID = 1<<53 - 1

// MaxAttachments bounds the binary attachments of one packet.
const MaxAttachments = 64

var (
	errEmpty       = errors.New("socket.io: empty packet")
	errType        = errors.New("socket.io: unknown packet type")
	errAttachments = errors.New("socket.io: malformed attachment count")
	errNamespace   = errors.New("socket.io: malformed namespace")
	errAckID       = errors.New("socket.io: malformed ack id")
	errPayload     = errors.New("socket.io: payload is not valid JSON")
	errPayloadKind = errors.New("socket.io: payload has the wrong shape for its packet type")
)

// Packet is one decoded Socket.IO packet.
type Packet struct {
	Type        int
	Attachments int // binary attachments that follow a BinaryEvent or BinaryAck
	Namespace   string
	AckID       int64 // NoAck when absent
	Data        json.RawMessage
}

// Decode parses one Socket.IO packet as carried in an Engine.IO message.
func Decode(s string) (Packet, error) {
	if s == "" {
		return Packet{}, errEmpty
	}
	p := Packet{Namespace: "/", AckID: NoAck}
	t := int(s[0] - '0')
	if t < Connect || t > BinaryAck {
		return Packet{}, errType
	}
	p.Type = t
	rest := s[1:]
	if t == BinaryEvent || t == BinaryAck {
		dash := strings.IndexByte(rest, '-')
		if dash < 1 || dash > 2 {
			return Packet{}, errAttachments
		}
		n, err := strconv.Atoi(rest[:dash])
		if err != nil || n < 0 || n > MaxAttachments || rest[0] == '+' {
			return Packet{}, errAttachments
		}
		p.Attachments, rest = n, rest[dash+1:]
	}
	if strings.HasPrefix(rest, "/") {
		end := strings.IndexByte(rest, ',')
		if end < 0 {
			// A namespace may end the packet: "1/admin".
			if strings.ContainsAny(rest, "[{\"") {
				return Packet{}, errNamespace
			}
			p.Namespace, rest = rest, ""
		} else {
			p.Namespace, rest = rest[:end], rest[end+1:]
		}
	}
	digits := 0
	for digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9' {
		digits++
	}
	if digits > 0 {
		id, err := strconv.ParseInt(rest[:digits], 10, 64)
		if err != nil || id > maxAckID {
			return Packet{}, errAckID
		}
		p.AckID, rest = id, rest[digits:]
	}
	if rest != "" {
		if !json.Valid([]byte(rest)) {
			return Packet{}, errPayload
		}
		p.Data = json.RawMessage(rest)
	}
	if err := p.checkShape(); err != nil {
		return Packet{}, err
	}
	return p, nil
}

func (p Packet) checkShape() error {
	first := byte(0)
	if d := bytes.TrimSpace(p.Data); len(d) > 0 {
		first = d[0]
	}
	switch p.Type {
	case Connect:
		if first != 0 && first != '{' {
			return errPayloadKind
		}
	case Disconnect:
		if first != 0 {
			return errPayloadKind
		}
	case Event, Ack, BinaryEvent, BinaryAck:
		if first != '[' {
			return errPayloadKind
		}
	case ConnectError:
		if first != '{' {
			return errPayloadKind
		}
	}
	if p.AckID != NoAck && !p.isEvent() && !p.isAck() {
		return errAckID
	}
	if p.isAck() && p.AckID == NoAck {
		return errAckID
	}
	return nil
}

func (p Packet) isEvent() bool { return p.Type == Event || p.Type == BinaryEvent }
func (p Packet) isAck() bool   { return p.Type == Ack || p.Type == BinaryAck }

// Encode returns the text form of p.
func (p Packet) Encode() string {
	var b strings.Builder
	b.Grow(8 + len(p.Namespace) + len(p.Data))
	b.WriteByte(byte('0' + p.Type))
	if p.Type == BinaryEvent || p.Type == BinaryAck {
		b.WriteString(strconv.Itoa(p.Attachments))
		b.WriteByte('-')
	}
	if p.Namespace != "" && p.Namespace != "/" {
		b.WriteString(p.Namespace)
		b.WriteByte(',')
	}
	if p.AckID != NoAck {
		b.WriteString(strconv.FormatInt(p.AckID, 10))
	}
	b.Write(p.Data)
	return b.String()
}

// EventName and arguments of an EVENT packet.
func (p Packet) EventArgs() (string, []json.RawMessage, error) {
	var all []json.RawMessage
	if err := json.Unmarshal(p.Data, &all); err != nil || len(all) == 0 {
		return "", nil, errPayloadKind
	}
	var name string
	if err := json.Unmarshal(all[0], &name); err != nil {
		return "", nil, errPayloadKind
	}
	return name, all[1:], nil
}

// EncodeEvent builds an EVENT packet for the default namespace.
func EncodeEvent(event string, args ...any) (string, error) {
	all := make([]any, 0, len(args)+1)
	all = append(all, event)
	all = append(all, args...)
	data, err := json.Marshal(all)
	if err != nil {
		return "", err
	}
	return Packet{Type: Event, AckID: NoAck, Data: data}.Encode(), nil
}

// placeholder stands in an event's arguments for binary attachment Num.
type placeholder struct {
	Placeholder bool `json:"_placeholder"`
	Num         int  `json:"num"`
}

// AttachmentIndex reports whether arg is the placeholder of a binary attachment, and
// which one.
func AttachmentIndex(arg json.RawMessage) (int, bool) {
	d := bytes.TrimSpace(arg)
	if len(d) == 0 || d[0] != '{' || !bytes.Contains(d, []byte("_placeholder")) {
		return 0, false
	}
	var ph placeholder
	if json.Unmarshal(d, &ph) != nil || !ph.Placeholder || ph.Num < 0 {
		return 0, false
	}
	return ph.Num, true
}

// encodeArgs marshals args as a JSON array; a []byte argument becomes a placeholder
// and its bytes an attachment, as the JavaScript client does with a Buffer (only at
// the top level: a []byte inside a struct is marshalled as base64).
func encodeArgs(args []any) (json.RawMessage, [][]byte, error) {
	var attachments [][]byte
	parts := make([]any, len(args))
	for i, a := range args {
		if b, ok := a.([]byte); ok {
			parts[i] = placeholder{Placeholder: true, Num: len(attachments)}
			attachments = append(attachments, b)
			continue
		}
		parts[i] = a
	}
	data, err := json.Marshal(parts)
	return data, attachments, err
}
