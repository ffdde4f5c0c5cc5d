package presence

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quibly/quibly/app/internal/model"
)

// runTrackerContract is the behaviour every Tracker must share. newNodes returns two
// trackers on the same deployment (the same instance for memory).
func runTrackerContract(t *testing.T, newNodes func(t *testing.T) (a, b Tracker)) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, a, b Tracker)
	}{
		{"counts connections", contractCountsConnections},
		{"first and last across nodes", contractAcrossNodes},
		{"online list and lookups", contractOnlineList},
		{"concurrent connects and disconnects", contractConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newNodes(t)
			tc.run(t, a, b)
		})
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func contractCountsConnections(t *testing.T, m, _ Tracker) {
	ctx := testCtx(t)
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

func contractAcrossNodes(t *testing.T, a, b Tracker) {
	ctx := testCtx(t)
	bob := model.User{ID: "2", Username: "bob"}
	steps := []struct {
		node    Tracker
		connect bool
		conn    string
		want    bool
	}{
		{a, true, "a1", true},
		{b, true, "b1", false},
		{a, false, "a1", false},
		{b, true, "b2", false},
		{b, false, "b1", false},
		{b, false, "b2", true},
		{b, true, "b3", true},
	}
	for i, s := range steps {
		var got bool
		var err error
		if s.connect {
			got, err = s.node.Connect(ctx, bob, s.conn)
		} else {
			got, err = s.node.Disconnect(ctx, bob, s.conn)
		}
		if err != nil || got != s.want {
			t.Fatalf("step %d: got %v want %v (%v)", i, got, s.want, err)
		}
	}
	for _, node := range []Tracker{a, b} {
		if on, err := node.IsOnline(ctx, bob.ID); err != nil || !on {
			t.Fatalf("bob is online on b: %v %v", on, err)
		}
	}
}

func contractOnlineList(t *testing.T, a, b Tracker) {
	ctx := testCtx(t)
	users := []model.User{{ID: "3", Username: "carol"}, {ID: "1", Username: "alice"}, {ID: "2", Username: "bob"}}
	for i, u := range users {
		node := a
		if i%2 == 1 {
			node = b
		}
		if _, err := node.Connect(ctx, u, fmt.Sprintf("conn-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.Online(ctx)
	if err != nil || len(got) != 3 {
		t.Fatalf("online: %+v %v", got, err)
	}
	for i, want := range []string{"alice", "bob", "carol"} {
		if got[i].Username != want || got[i].ID == "" {
			t.Fatalf("online list not ordered by username: %+v", got)
		}
	}
	if on, err := a.IsOnline(ctx, "2"); err != nil || !on {
		t.Fatalf("bob: %v %v", on, err)
	}
	if on, err := a.IsOnline(ctx, "nobody"); err != nil || on {
		t.Fatalf("unknown user: %v %v", on, err)
	}
}

// contractConcurrent connects one user from many goroutines on both nodes at once:
// exactly one connect reports online and, later, exactly one disconnect offline.
func contractConcurrent(t *testing.T, a, b Tracker) {
	ctx := testCtx(t)
	dave := model.User{ID: "4", Username: "dave"}
	const conns = 20
	var reported atomic.Int32
	run := func(f func(node Tracker, conn string) (bool, error)) {
		var wg sync.WaitGroup
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				node := a
				if i%2 == 1 {
					node = b
				}
				if ok, err := f(node, fmt.Sprintf("c%d", i)); err != nil {
					t.Error(err)
				} else if ok {
					reported.Add(1)
				}
			}()
		}
		wg.Wait()
	}
	run(func(node Tracker, conn string) (bool, error) { return node.Connect(ctx, dave, conn) })
	if n := reported.Swap(0); n != 1 {
		t.Fatalf("%d connects reported online, want 1", n)
	}
	run(func(node Tracker, conn string) (bool, error) { return node.Disconnect(ctx, dave, conn) })
	if n := reported.Load(); n != 1 {
		t.Fatalf("%d disconnects reported offline, want 1", n)
	}
	if on, err := a.IsOnline(ctx, dave.ID); err != nil || on {
		t.Fatalf("dave after all disconnects: %v %v", on, err)
	}
}
