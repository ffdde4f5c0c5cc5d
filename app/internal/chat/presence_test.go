package chat

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/presence"
)

// countingPresence counts the online-list reads that reach the tracker.
type countingPresence struct {
	presence.Tracker
	reads atomic.Int32
}

func (p *countingPresence) Online(ctx context.Context) ([]model.User, error) {
	p.reads.Add(1)
	return p.Tracker.Online(ctx)
}

// New connections share one read and encoding of the online list until a presence
// event on the bus says it changed.
func TestOnlineSnapshotIsSharedUntilPresenceChanges(t *testing.T) {
	f := newSendFixture(t)
	tracker := &countingPresence{Tracker: presence.NewMemory()}
	f.hub.Presence = tracker
	ctx := context.Background()
	online := func(u model.User) {
		if _, err := tracker.Tracker.Connect(ctx, u, "conn-"+u.ID); err != nil {
			t.Fatal(err)
		}
	}
	names := func() []string {
		t.Helper()
		packets, err := f.hub.onlinePackets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range packets {
			// A prepared packet: Engine.IO "4", Socket.IO "2", then the event array.
			var ev []json.RawMessage
			if !strings.HasPrefix(p, "42") || json.Unmarshal([]byte(p[2:]), &ev) != nil || len(ev) != 2 || string(ev[0]) != `"presence"` {
				t.Fatalf("not a presence event packet: %q", p)
			}
			var data map[string]string
			if err := json.Unmarshal(ev[1], &data); err != nil || data["status"] != "online" {
				t.Fatalf("presence payload %s: %v", ev[1], err)
			}
			out = append(out, data["username"])
		}
		return out
	}

	online(model.User{ID: "u1", Username: "ann"})
	steps := []struct {
		name  string
		do    func()
		want  string
		reads int32
	}{
		{"first connection reads the tracker", func() {}, "ann", 1},
		{"the next one shares that read", func() {}, "ann", 1},
		{"a change without its bus event is not seen yet", func() { online(model.User{ID: "u2", Username: "bob"}) }, "ann", 1},
		{"the presence event drops the snapshot", func() {
			f.hub.deliver([]broker.Event{{Kind: broker.KindPresence, Data: json.RawMessage(`{"userId":"u2","username":"bob","status":"online"}`)}})
		}, "ann,bob", 2},
		{"other events keep it", func() {
			f.hub.deliver([]broker.Event{{Kind: broker.KindMessage, ChannelID: "x", Data: json.RawMessage(`{}`), Offset: "1-1"}})
		}, "ann,bob", 2},
	}
	for _, st := range steps {
		st.do()
		if got := strings.Join(names(), ","); got != st.want {
			t.Fatalf("%s: online %q, want %q", st.name, got, st.want)
		}
		if got := tracker.reads.Load(); got != st.reads {
			t.Fatalf("%s: %d tracker reads, want %d", st.name, got, st.reads)
		}
	}
}
