package presence

import (
	"context"
	"testing"

	"github.com/quibly/quibly/app/internal/model"
)

func TestMemoryCountsConnections(t *testing.T) {
	m := NewMemory()
	ctx := context.Background()
	alice := model.User{ID: "1", Username: "alice"}
	steps := []struct {
		connect bool
		conn    string
		want    bool // online for connect, offline for disconnect
		online  int
	}{
		{true, "c1", true, 1},
		{true, "c2", false, 1},
		{false, "c1", false, 1},
		{false, "c1", false, 1}, // repeated disconnect changes nothing
		{false, "c2", true, 0},
	}
	for i, s := range steps {
		var got bool
		var err error
		if s.connect {
			got, err = m.Connect(ctx, alice, s.conn)
		} else {
			got, err = m.Disconnect(ctx, alice, s.conn)
		}
		users, _ := m.Online(ctx)
		if err != nil || got != s.want || len(users) != s.online {
			t.Fatalf("step %d: got %v, %d online, %v", i, got, len(users), err)
		}
	}
}
