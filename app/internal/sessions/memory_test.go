package sessions

import (
	"context"
	"errors"
	"testing"
	"time"
)

// runStoreContract is the table every Store implementation must pass.
func runStoreContract(t *testing.T, s Store, advance func(time.Duration)) {
	ctx := context.Background()
	t.Run("session round trip is single use", func(t *testing.T) {
		want := Session{SID: "sid1", UserID: "u1", Channels: []string{"a", "b"}}
		if err := s.Save(ctx, "pid1", want, time.Minute); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.Take(ctx, "pid1")
		if err != nil || !ok || got.SID != want.SID || got.UserID != want.UserID || len(got.Channels) != 2 {
			t.Fatalf("got %+v %v %v", got, ok, err)
		}
		if _, ok, _ := s.Take(ctx, "pid1"); ok {
			t.Fatal("a session must be taken once")
		}
	})
	t.Run("unknown and expired sessions", func(t *testing.T) {
		if _, ok, err := s.Take(ctx, "nope"); ok || err != nil {
			t.Fatalf("unknown pid: %v %v", ok, err)
		}
		_ = s.Save(ctx, "pid2", Session{SID: "x"}, time.Second)
		advance(2 * time.Second)
		if _, ok, _ := s.Take(ctx, "pid2"); ok {
			t.Fatal("expired session was returned")
		}
	})
	t.Run("nonce lifecycle", func(t *testing.T) {
		if _, claimed, err := s.ClaimNonce(ctx, "u", "n1", time.Minute); !claimed || err != nil {
			t.Fatalf("first claim: %v %v", claimed, err)
		}
		if _, _, err := s.ClaimNonce(ctx, "u", "n1", time.Minute); !errors.Is(err, ErrInFlight) {
			t.Fatalf("claim while in flight: %v", err)
		}
		if _, claimed, _ := s.ClaimNonce(ctx, "other", "n1", time.Minute); !claimed {
			t.Fatal("nonces are per user")
		}
		_ = s.CompleteNonce(ctx, "u", "n1", Ack{ID: "m1", TS: 5}, time.Minute)
		prev, claimed, err := s.ClaimNonce(ctx, "u", "n1", time.Minute)
		if claimed || err != nil || prev.ID != "m1" || prev.TS != 5 {
			t.Fatalf("retry after completion: %+v %v %v", prev, claimed, err)
		}
		_, _, _ = s.ClaimNonce(ctx, "u", "n2", time.Minute)
		_ = s.ReleaseNonce(ctx, "u", "n2")
		if _, claimed, _ := s.ClaimNonce(ctx, "u", "n2", time.Minute); !claimed {
			t.Fatal("a released nonce must be claimable again")
		}
	})
}

func TestMemoryStore(t *testing.T) {
	m := NewMemory()
	now := time.Unix(0, 0)
	m.now = func() time.Time { return now }
	runStoreContract(t, m, func(d time.Duration) { now = now.Add(d) })
}
