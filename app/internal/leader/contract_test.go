package leader

import (
	"context"
	"testing"
	"time"
)

// runElectorContract is the behaviour every Elector must share.
func runElectorContract(t *testing.T, newElector func(t *testing.T) Elector) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, e Elector)
	}{
		{"leads until the context ends", contractLeadsUntilDone},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newElector(t)) })
	}
}

// generous bounds every wait in these tests; nothing asserts speed below it.
const generous = 15 * time.Second

func contractLeadsUntilDone(t *testing.T, e Elector) {
	if e.IsLeader() {
		t.Fatal("leader before campaigning")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started, stopped := make(chan struct{}), make(chan struct{})
	ran := make(chan error, 1)
	go func() {
		ran <- e.Run(ctx, func(lctx context.Context) {
			close(started)
			<-lctx.Done()
			close(stopped)
		})
	}()
	select {
	case <-started:
	case <-time.After(generous):
		t.Fatal("never elected")
	}
	if !e.IsLeader() {
		t.Fatal("IsLeader is false while leading")
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(generous):
		t.Fatal("lead's context was not cancelled when Run's ended")
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(generous):
		t.Fatal("Run did not return")
	}
	if e.IsLeader() {
		t.Fatal("IsLeader is true after Run returned")
	}
}
