package engineio

import (
	"strings"
	"testing"
)

func TestDecodePacket(t *testing.T) {
	tests := []struct {
		in      string
		want    Packet
		wantErr error
	}{
		{in: "2", want: Packet{Type: Ping}},
		{in: "2probe", want: Packet{Type: Ping, Data: "probe"}},
		{in: `40{"token":"x"}`, want: Packet{Type: Message, Data: `0{"token":"x"}`}},
		{in: "6", want: Packet{Type: Noop}},
		{in: "", wantErr: errEmptyPacket},
		{in: "7", wantErr: errPacketType},
		{in: "x", wantErr: errPacketType},
		{in: "bAQID", want: Packet{Type: Message, Data: "\x01\x02\x03", Binary: true}},
		{in: "b", want: Packet{Type: Message, Binary: true}},
		{in: "b!!", wantErr: errBase64},
	}
	for _, tt := range tests {
		got, err := DecodePacket(tt.in)
		if err != tt.wantErr || got != tt.want {
			t.Errorf("DecodePacket(%q) = %+v, %v; want %+v, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.Encode() != tt.in {
			t.Errorf("round trip of %q gave %q", tt.in, got.Encode())
		}
	}
}

func TestDecodePayload(t *testing.T) {
	got, err := DecodePayload("4hello\x1e2\x1e4world")
	if err != nil || len(got) != 3 || got[0].Data != "hello" || got[1].Type != Ping || got[2].Data != "world" {
		t.Fatalf("got %+v, %v", got, err)
	}
	bin, err := DecodePayload("4hello\x1ebAQIDBA==")
	if err != nil || len(bin) != 2 || !bin[1].Binary || bin[1].Data != "\x01\x02\x03\x04" {
		t.Fatalf("a payload with a binary packet: %+v, %v", bin, err)
	}
	if _, err := DecodePayload("4a\x1e\x1e4b"); err == nil {
		t.Fatal("an empty packet inside a payload must be an error")
	}
}

func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{"4hello\x1e2", "2probe", "", "\x1e", "b", `42["message:send",{}]`, "5", "1\x1e6"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		pkts, err := DecodePayload(body)
		if err != nil {
			return
		}
		for _, p := range pkts {
			if p.Binary { // base64 has more than one spelling of some bytes (padding bits)
				return
			}
		}
		var enc []string
		for _, p := range pkts {
			enc = append(enc, p.Encode())
		}
		if strings.Join(enc, separator) != body {
			t.Fatalf("payload %q did not round-trip", body)
		}
	})
}
