package broker

// Delivery from the Redis broker: one log reader (XREAD BLOCK) and one pub/sub reader
// per subscription.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/quibly/quibly/app/internal/retry"
	"github.com/redis/go-redis/v9"
)

// Subscribe starts one reader that calls fn for every event until ctx ends or the
// broker is closed. It returns once the reader's start position is fixed: every
// event published after Subscribe returns is delivered. The reader survives dropped
// connections and Redis restarts: it retries with backoff and resumes after the last
// entry it delivered, so logged events published meanwhile are not missed.
func (r *Redis) Subscribe(ctx context.Context, fn func([]Event)) error {
	if fn == nil {
		return errors.New("broker: Subscribe needs a function")
	}
	opCtx, cancel := context.WithTimeout(ctx, r.cfg.OpTimeout)
	defer cancel()
	tail, err := r.client.XRevRangeN(opCtx, r.streamKey, "+", "-", 1).Result()
	if err != nil {
		return fmt.Errorf("broker: subscribing: %w", err)
	}
	s := &subscription{r: r, fn: fn, lastID: "0-0"}
	if len(tail) == 1 {
		if _, pos, err := decodeEntry(tail[0]); err == nil {
			s.lastID, s.last = pos.id, pos
		} else {
			s.lastID = tail[0].ID
		}
	}

	ctx, stop := context.WithCancel(ctx)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		stop()
		return errors.New("broker: closed")
	}
	id := r.nextID
	r.nextID++
	r.subs[id] = stop
	r.mu.Unlock()
	unregister := func() {
		r.mu.Lock()
		delete(r.subs, id)
		r.mu.Unlock()
	}

	// Wait for the SSUBSCRIBE confirmation, so ephemeral events published from now
	// on arrive.
	ps := r.client.SSubscribe(ctx, r.pubsubChannel)
	if _, err := ps.Receive(opCtx); err != nil {
		_ = ps.Close()
		stop()
		unregister()
		return fmt.Errorf("broker: subscribing to live events: %w", err)
	}
	r.wg.Add(3)
	go func() {
		defer r.wg.Done()
		defer unregister()
		defer stop()
		s.readLog(ctx)
	}()
	go func() {
		defer r.wg.Done()
		r.sweepLoop(ctx)
	}()
	go func() {
		defer r.wg.Done()
		s.readLive(ctx, ps)
	}()
	return nil
}

// subscription is one Subscribe call: a log reader and a pub/sub reader that take
// turns calling fn.
type subscription struct {
	r  *Redis
	fn func([]Event)

	deliverMu sync.Mutex
	lastID    string   // stream id to read after
	last      position // last log entry seen; zero before the first
}

func (s *subscription) deliver(ctx context.Context, evs []Event) bool {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	if ctx.Err() != nil {
		return false
	}
	if len(evs) > 0 {
		s.fn(evs)
	}
	return true
}

// readLog is the delivery loop: one XREAD BLOCK at a time, up to ReadBatch entries
// each, and no other round trip per event.
func (s *subscription) readLog(ctx context.Context) {
	r := s.r
	failures := 0
	// From 100 ms to 5 s with jitter, so a restarted Redis is not stormed by every node.
	wait := retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: true}
	for ctx.Err() == nil {
		if failures > 0 {
			if !retry.Sleep(ctx, wait.Next()) {
				return
			}
		}
		res, err := r.client.XRead(ctx, &redis.XReadArgs{
			Streams: []string{r.streamKey, s.lastID},
			Count:   r.cfg.ReadBatch,
			Block:   r.cfg.BlockTime,
		}).Result()
		if errors.Is(err, redis.Nil) {
			failures = 0
			wait.Reset()
			continue // nothing new within BlockTime
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			r.log.Warn("broker: reading the log failed, retrying", "attempt", failures, "err", err)
			continue
		}
		if failures > 0 {
			r.log.Info("broker: reading the log again", "after", s.lastID)
			failures = 0
			wait.Reset()
		}
		for _, stream := range res {
			batch := make([]Event, 0, len(stream.Messages))
			for _, m := range stream.Messages {
				s.lastID = m.ID
				ev, pos, err := decodeEntry(m)
				if err != nil {
					r.log.Error("broker: skipping an undecodable log entry", "err", err)
					continue
				}
				s.checkSequence(ctx, pos)
				batch = append(batch, ev)
			}
			if !s.deliver(ctx, batch) {
				return
			}
		}
	}
}

// checkSequence compares an entry with the one before it. A new epoch means a new
// log (Redis lost its data and a publish started over). Within one epoch the
// sequence must grow by one: if it went back, Redis lost entries this node had
// already delivered (a failover to a replica that missed them), and the epoch is
// rotated so that offsets from before can no longer be replayed with a hole; if it
// jumped ahead, this reader fell behind the trimming and its clients missed events.
func (s *subscription) checkSequence(ctx context.Context, pos position) {
	prev := s.last
	s.last = pos
	if prev.epoch != pos.epoch || pos.seq == prev.seq+1 {
		return
	}
	r := s.r
	if pos.seq > prev.seq {
		r.log.Error("broker: this node fell behind the recovery log and skipped events; raise MaxLogLength",
			"skipped", pos.seq-prev.seq-1)
		return
	}
	r.log.Warn("broker: the recovery log lost entries (Redis failed over or restarted); invalidating older offsets",
		"delivered_seq", prev.seq, "now_seq", pos.seq)
	opCtx, cancel := context.WithTimeout(ctx, r.cfg.OpTimeout)
	defer cancel()
	if err := rotateScript.Run(opCtx, r.client, []string{r.epochKey}, pos.epoch, newEpoch()).Err(); err != nil {
		r.log.Error("broker: could not rotate the log epoch after a loss", "err", err)
	}
}

// readLive delivers ephemeral events. go-redis' PubSub resubscribes by itself after
// a dropped connection; what was published meanwhile is lost, which is acceptable
// for typing and presence.
func (s *subscription) readLive(ctx context.Context, ps *redis.PubSub) {
	defer ps.Close()
	ch := ps.Channel(redis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			var ev Event
			if err := json.Unmarshal([]byte(msg.Payload), &ev); err != nil {
				s.r.log.Error("broker: skipping an undecodable live event", "err", err)
				continue
			}
			ev.Offset = ""
			if !s.deliver(ctx, []Event{ev}) {
				return
			}
		}
	}
}
