package socketio

import (
	"encoding/json"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		in      string
		want    Packet
		wantErr error
	}{
		{in: "0", want: Packet{Type: Connect, Namespace: "/", AckID: NoAck}},
		{in: `0{"token":"abc"}`, want: Packet{Type: Connect, Namespace: "/", AckID: NoAck, Data: json.RawMessage(`{"token":"abc"}`)}},
		{in: `0/admin,{"token":"abc"}`, want: Packet{Type: Connect, Namespace: "/admin", AckID: NoAck, Data: json.RawMessage(`{"token":"abc"}`)}},
		{in: "1", want: Packet{Type: Disconnect, Namespace: "/", AckID: NoAck}},
		{in: "1/admin,", want: Packet{Type: Disconnect, Namespace: "/admin", AckID: NoAck}},
		{in: "1/admin", want: Packet{Type: Disconnect, Namespace: "/admin", AckID: NoAck}},
		{in: `2["hello",1]`, want: Packet{Type: Event, Namespace: "/", AckID: NoAck, Data: json.RawMessage(`["hello",1]`)}},
		{in: `212["message:send",{"text":"hi"}]`, want: Packet{Type: Event, Namespace: "/", AckID: 12, Data: json.RawMessage(`["message:send",{"text":"hi"}]`)}},
		{in: `2/admin,7["x"]`, want: Packet{Type: Event, Namespace: "/admin", AckID: 7, Data: json.RawMessage(`["x"]`)}},
		{in: `35[{"ok":true}]`, want: Packet{Type: Ack, Namespace: "/", AckID: 5, Data: json.RawMessage(`[{"ok":true}]`)}},
		{in: "", wantErr: errEmpty},
		{in: "9", wantErr: errType},
		{in: "x", wantErr: errType},
		{in: `51-["x",{"_placeholder":true,"num":0}]`, want: Packet{Type: BinaryEvent, Attachments: 1, Namespace: "/", AckID: NoAck, Data: json.RawMessage(`["x",{"_placeholder":true,"num":0}]`)}},
		{in: `52-/custom,789["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, want: Packet{Type: BinaryEvent, Attachments: 2, Namespace: "/custom", AckID: 789, Data: json.RawMessage(`["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)}},
		{in: `61-12[{"_placeholder":true,"num":0}]`, want: Packet{Type: BinaryAck, Attachments: 1, Namespace: "/", AckID: 12, Data: json.RawMessage(`[{"_placeholder":true,"num":0}]`)}},
		{in: `5["x"]`, wantErr: errAttachments},
		{in: `5-["x"]`, wantErr: errAttachments},
		{in: `5+1-["x"]`, wantErr: errAttachments},
		{in: `565-["x"]`, wantErr: errAttachments},
		{in: `5100-["x"]`, wantErr: errAttachments},
		{in: `61-[1]`, wantErr: errAckID},
		{in: `2[not json`, wantErr: errPayload},
		{in: `2{"a":1}`, wantErr: errPayloadKind},
		{in: `2`, wantErr: errPayloadKind},
		{in: `0"token"`, wantErr: errPayloadKind},
		{in: `1{}`, wantErr: errPayloadKind},
		{in: `3[1]`, wantErr: errAckID},
		{in: `099{}`, wantErr: errAckID},
		{in: `299999999999999999999["x"]`, wantErr: errAckID},
		{in: `2/admin["x"]`, wantErr: errNamespace},
	}
	for _, tt := range tests {
		got, err := Decode(tt.in)
		if err != tt.wantErr {
			t.Errorf("Decode(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if got.Type != tt.want.Type || got.Attachments != tt.want.Attachments || got.Namespace != tt.want.Namespace || got.AckID != tt.want.AckID || string(got.Data) != string(tt.want.Data) {
			t.Errorf("Decode(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, s := range []string{"0", `0{"sid":"a"}`, `2["m",{"a":1},"off"]`, `312[{"id":"x"}]`, `4{"message":"bad"}`, `2/admin,3["x"]`, "1", `52-/custom,789["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`} {
		p, err := Decode(s)
		if err != nil {
			t.Fatalf("Decode(%q): %v", s, err)
		}
		if got := p.Encode(); got != s {
			t.Errorf("Encode(Decode(%q)) = %q", s, got)
		}
	}
}

func TestEventArgs(t *testing.T) {
	p, _ := Decode(`2["message:send",{"text":"hi"},3]`)
	name, args, err := p.EventArgs()
	if err != nil || name != "message:send" || len(args) != 2 || string(args[0]) != `{"text":"hi"}` {
		t.Fatalf("got %q %s %v", name, args, err)
	}
	for _, bad := range []string{`2[]`, `2[1,2]`, `2[{"a":1}]`} {
		p, err := Decode(bad)
		if err != nil {
			continue
		}
		if _, _, err := p.EventArgs(); err == nil {
			t.Errorf("EventArgs(%q) should fail", bad)
		}
	}
}

func TestEncodeEvent(t *testing.T) {
	got, err := EncodeEvent("message", map[string]string{"id": "1"}, "off")
	if err != nil || got != `2["message",{"id":"1"},"off"]` {
		t.Fatalf("got %q %v", got, err)
	}
}

func TestBinaryArgs(t *testing.T) {
	data, attachments, err := encodeArgs([]any{[]byte{1, 2}, "two", []byte{3}})
	if err != nil || string(data) != `[{"_placeholder":true,"num":0},"two",{"_placeholder":true,"num":1}]` || len(attachments) != 2 || attachments[1][0] != 3 {
		t.Fatalf("encodeArgs: %s %v %v", data, attachments, err)
	}
	for _, tc := range []struct {
		arg  string
		num  int
		isPH bool
	}{
		{`{"_placeholder":true,"num":1}`, 1, true},
		{` {"num":0,"_placeholder":true}`, 0, true},
		{`{"_placeholder":false,"num":1}`, 0, false},
		{`{"_placeholder":true,"num":-1}`, 0, false},
		{`{"text":"_placeholder"}`, 0, false},
		{`"_placeholder"`, 0, false},
	} {
		if num, ok := AttachmentIndex(json.RawMessage(tc.arg)); ok != tc.isPH || num != tc.num {
			t.Errorf("AttachmentIndex(%s) = %d, %v; want %d, %v", tc.arg, num, ok, tc.num, tc.isPH)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"0", `0{"token":"x"}`, `212["message:send",{"channelId":"c","text":"hi","nonce":"n"}]`,
		`2/admin,1["x"]`, `31[{}]`, "1", `51-["a",{"_placeholder":true,"num":0}]`, `2[`, "0/", "2/,[]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Decode(s)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to something that decodes to the same packet.
		again, err := Decode(p.Encode())
		if err != nil {
			t.Fatalf("re-decoding %q (from %q): %v", p.Encode(), s, err)
		}
		if again.Type != p.Type || again.Attachments != p.Attachments || again.Namespace != p.Namespace || again.AckID != p.AckID || string(again.Data) != string(p.Data) {
			t.Fatalf("%q: %+v became %+v", s, p, again)
		}
		if p.Type == Event {
			_, _, _ = p.EventArgs()
		}
	})
}
