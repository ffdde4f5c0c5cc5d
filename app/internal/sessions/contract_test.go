package sessions

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
		got, ok, err := s.Take(ctx, "pid1", "u1")
		if err != nil || !ok || got.SID != want.SID || got.UserID != want.UserID || len(got.Channels) != 2 {
			t.Fatalf("got %+v %v %v", got, ok, err)
		}
		if _, ok, _ := s.Take(ctx, "pid1", "u1"); ok {
			t.Fatal("a session must be taken once")
		}
	})
	t.Run("another user's pid neither recovers nor wipes the session", func(t *testing.T) {
		_ = s.Save(ctx, "pid5", Session{SID: "s5", UserID: "owner"}, time.Minute)
		if _, ok, err := s.Take(ctx, "pid5", "intruder"); ok || err != nil {
			t.Fatalf("another user took the session: %v %v", ok, err)
		}
		if got, ok, err := s.Take(ctx, "pid5", "owner"); !ok || err != nil || got.SID != "s5" {
			t.Fatalf("after another user's attempt, the owner got %+v %v %v; want the session intact", got, ok, err)
		}
	})
	t.Run("unknown and expired sessions", func(t *testing.T) {
		if _, ok, err := s.Take(ctx, "nope", "u"); ok || err != nil {
			t.Fatalf("unknown pid: %v %v", ok, err)
		}
		_ = s.Save(ctx, "pid2", Session{SID: "x"}, 200*time.Millisecond)
		advance(500 * time.Millisecond)
		if _, ok, _ := s.Take(ctx, "pid2", ""); ok {
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
		_ = s.ReleaseNonce(ctx, "u", "n2", Ack{ID: "m2", TS: 6}, time.Minute)
		prev, claimed, err = s.ClaimNonce(ctx, "u", "n2", time.Minute)
		if !claimed || err != nil || prev.ID != "m2" || prev.TS != 6 {
			t.Fatalf("a released nonce must be claimable again, with the failed attempt: %+v %v %v", prev, claimed, err)
		}
		if _, _, err := s.ClaimNonce(ctx, "u", "n2", time.Minute); !errors.Is(err, ErrInFlight) {
			t.Fatalf("the retry's claim is in flight again: %v", err)
		}
		_ = s.ReleaseNonce(ctx, "u", "n2", Ack{ID: "m2", TS: 6}, 200*time.Millisecond)
		advance(500 * time.Millisecond)
		if prev, claimed, _ := s.ClaimNonce(ctx, "u", "n2", time.Minute); !claimed || prev.ID != "" {
			t.Fatalf("an expired attempt is forgotten: %+v %v", prev, claimed)
		}
	})
	t.Run("release never erases a completed ack", func(t *testing.T) {
		_, _, _ = s.ClaimNonce(ctx, "u", "n3", time.Minute)
		_ = s.CompleteNonce(ctx, "u", "n3", Ack{ID: "m3", TS: 7}, time.Minute)
		if err := s.ReleaseNonce(ctx, "u", "n3", Ack{ID: "other"}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if prev, claimed, err := s.ClaimNonce(ctx, "u", "n3", time.Minute); claimed || err != nil || prev.ID != "m3" {
			t.Fatalf("ack after a late release: %+v %v %v", prev, claimed, err)
		}
	})
	t.Run("nonces expire", func(t *testing.T) {
		_, _, _ = s.ClaimNonce(ctx, "u", "n4", 200*time.Millisecond)
		advance(500 * time.Millisecond)
		if _, claimed, err := s.ClaimNonce(ctx, "u", "n4", time.Minute); !claimed || err != nil {
			t.Fatalf("an expired claim must be claimable: %v %v", claimed, err)
		}
		_ = s.CompleteNonce(ctx, "u", "n4", Ack{ID: "m4"}, 200*time.Millisecond)
		advance(500 * time.Millisecond)
		if _, claimed, err := s.ClaimNonce(ctx, "u", "n4", time.Minute); !claimed || err != nil {
			t.Fatalf("an expired ack must be forgotten: %v %v", claimed, err)
		}
	})
	t.Run("user ids and nonces do not collide", func(t *testing.T) {
		_, _, _ = s.ClaimNonce(ctx, "a:b", "c", time.Minute)
		if _, claimed, err := s.ClaimNonce(ctx, "a", "b:c", time.Minute); !claimed || err != nil {
			t.Fatalf("(a, b:c) is not (a:b, c): %v %v", claimed, err)
		}
	})
	t.Run("concurrent takes: one wins", func(t *testing.T) {
		_ = s.Save(ctx, "pid3", Session{SID: "s3", UserID: "u3"}, time.Minute)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, ok, err := s.Take(ctx, "pid3", "u3"); ok && err == nil {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d takes got the session, want exactly 1", wins.Load())
		}
	})
	t.Run("concurrent claims: one wins, the rest see it in flight", func(t *testing.T) {
		var claims, inFlight atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, claimed, err := s.ClaimNonce(ctx, "u5", "n5", time.Minute)
				switch {
				case claimed && err == nil:
					claims.Add(1)
				case errors.Is(err, ErrInFlight):
					inFlight.Add(1)
				default:
					t.Errorf("claim %d: %v %v", i, claimed, err)
				}
			}()
		}
		wg.Wait()
		if claims.Load() != 1 || inFlight.Load() != 7 {
			t.Fatalf("%d claimed, %d in flight; want 1 and 7", claims.Load(), inFlight.Load())
		}
	})
	t.Run("sessions keep every field", func(t *testing.T) {
		channels := make([]string, 50)
		for i := range channels {
			channels[i] = fmt.Sprintf("ch-%d", i)
		}
		want := Session{SID: "sid-\u00e9", UserID: "user:with:colons", Channels: channels}
		_ = s.Save(ctx, "pid4", want, time.Minute)
		got, ok, err := s.Take(ctx, "pid4", "user:with:colons")
		if err != nil || !ok || got.SID != want.SID || got.UserID != want.UserID || fmt.Sprint(got.Channels) != fmt.Sprint(channels) {
			t.Fatalf("got %+v %v %v", got, ok, err)
		}
	})
	t.Run("a reaction changes once, from the database's state when there is no record", func(t *testing.T) {
		steps := []struct {
			name        string
			on, stored  bool
			wantChanged bool
		}{
			{"add, the database has none", true, false, true},
			{"add again", true, false, false},
			{"remove, the database still lags", false, false, true},
			{"remove again", false, true, false},
		}
		for _, st := range steps {
			changed, err := s.SetReaction(ctx, "u1", "m1", "👍", st.on, st.stored, time.Minute)
			if err != nil || changed != st.wantChanged {
				t.Errorf("%s: changed %v, %v; want %v", st.name, changed, err, st.wantChanged)
			}
		}
		// Another user, another emoji, another message: records of their own.
		if changed, _ := s.SetReaction(ctx, "u2", "m1", "👍", true, true, time.Minute); changed {
			t.Error("an add the database already has changed something")
		}
		if changed, _ := s.SetReaction(ctx, "u1", "m1", "🎉", true, false, time.Minute); !changed {
			t.Error("another emoji shares a record")
		}
		// Past its ttl a record gives way to the database.
		if _, err := s.SetReaction(ctx, "u3", "m2", "👍", true, false, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		advance(500 * time.Millisecond)
		if changed, _ := s.SetReaction(ctx, "u3", "m2", "👍", true, false, time.Minute); !changed {
			t.Error("an expired record still counted")
		}
	})
	t.Run("of two nodes adding one reaction at once, one changes it", func(t *testing.T) {
		var changed atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if c, err := s.SetReaction(ctx, "race", "m9", "👍", true, false, time.Minute); err == nil && c {
					changed.Add(1)
				}
			}()
		}
		wg.Wait()
		if changed.Load() != 1 {
			t.Errorf("%d of 8 concurrent adds changed the reaction, want 1", changed.Load())
		}
	})
}
