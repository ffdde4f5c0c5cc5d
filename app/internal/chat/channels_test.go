package chat

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/socketio"
	"github.com/quibly/quibly/app/internal/store"
)

// countingStore counts the channel lookups that reach the store.
type countingStore struct {
	store.Store
	lookups atomic.Int32
}

func (s *countingStore) Channel(ctx context.Context, id string) (model.Channel, error) {
	s.lookups.Add(1)
	return s.Store.Channel(ctx, id)
}

// A channel found once is not looked up again, and its members share one copy of
// its id; an unknown id is looked up (and refused) every time.
func TestJoinLooksUpEachChannelOnce(t *testing.T) {
	f := newSendFixture(t)
	st := &countingStore{Store: f.hub.Store}
	f.hub.Store = st
	join := func(c *client, channelID string) map[string]any {
		t.Helper()
		raw, _ := json.Marshal(map[string]string{"channelId": channelID})
		res, _ := json.Marshal(f.hub.join(c, []json.RawMessage{raw}))
		var out map[string]any
		if err := json.Unmarshal(res, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	newClient := func(id string) *client {
		return &client{sock: &socketio.Socket{}, user: model.User{ID: id, Username: id}}
	}
	a, b := newClient("a"), newClient("b")
	steps := []struct {
		name    string
		c       *client
		channel string
		ok      bool
		lookups int32
	}{
		{"first join looks the channel up", a, f.chID, true, 1},
		{"a second member does not", b, f.chID, true, 1},
		{"an unknown channel is refused", a, "no-such-channel", false, 2},
		{"and looked up again next time", b, "no-such-channel", false, 3},
	}
	for _, step := range steps {
		res := join(step.c, step.channel)
		if got := res["ok"] == true; got != step.ok {
			t.Fatalf("%s: ack %v, want ok=%v", step.name, res, step.ok)
		}
		if !step.ok && errorCode(res) != "not_found" {
			t.Fatalf("%s: error %v, want not_found", step.name, res)
		}
		if got := st.lookups.Load(); got != step.lookups {
			t.Fatalf("%s: %d store lookups, want %d", step.name, got, step.lookups)
		}
	}
	if len(a.channels) != 1 || len(b.channels) != 1 || unsafe.StringData(a.channels[0]) != unsafe.StringData(b.channels[0]) {
		t.Fatalf("members do not share the channel id: %q, %q", a.channels, b.channels)
	}
}
