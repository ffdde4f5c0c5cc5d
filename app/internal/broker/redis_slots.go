package broker

// Message slots on the Redis broker: Reserve hands out a channel's next id, Commit
// appends an event once every earlier slot of its channel is done, and a sweep gives
// up the slots of nodes that died.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/quibly/quibly/app/internal/redisx"
)

// channelKeys are a channel's order keys: its clock, its slots (ids in order) and
// their state ("d<deadline ms>" while reserved, "e<event>" once committed).
func (r *Redis) channelKeys(channelID string) (clock, slots, state string) {
	return redisx.Key(r.cfg.KeyPrefix, "bus", "clock:"+channelID),
		redisx.Key(r.cfg.KeyPrefix, "bus", "slots:"+channelID),
		redisx.Key(r.cfg.KeyPrefix, "bus", "slot-state:"+channelID)
}

// Reserve implements Broker: one script call.
func (r *Redis) Reserve(ctx context.Context, channelID string) (Slot, error) {
	if r.isClosed() {
		return Slot{}, errors.New("broker: closed")
	}
	clockKey, slots, state := r.channelKeys(channelID)
	tail := slotID(clock{})[19:] // the variant and random part of a fresh UUIDv7
	res, err := reserveScript.Run(ctx, r.client, []string{r.streamKey, r.epochKey, r.seqKey, clockKey, slots, state, r.pendingKey},
		channelID, tail, r.cfg.Hold.Milliseconds()).StringSlice()
	if err != nil {
		return Slot{}, fmt.Errorf("broker: reserving a message slot: %w", err)
	}
	if len(res) != 2 {
		return Slot{}, fmt.Errorf("broker: reserve script returned %d values", len(res))
	}
	ms, err := strconv.ParseInt(res[1], 10, 64)
	if err != nil {
		return Slot{}, fmt.Errorf("broker: reserve script returned time %q", res[1])
	}
	return Slot{ChannelID: channelID, ID: res[0], TS: ms}, nil
}

// Commit implements Broker: one script call.
func (r *Redis) Commit(ctx context.Context, s Slot, ev Event) (bool, error) {
	if r.isClosed() {
		return false, errors.New("broker: closed")
	}
	ev.ChannelID, ev.Offset = s.ChannelID, ""
	payload, err := json.Marshal(ev)
	if err != nil {
		return false, fmt.Errorf("broker: encoding event: %w", err)
	}
	late, err := r.release(ctx, s.ChannelID, s.ID, string(payload))
	if err != nil {
		return false, fmt.Errorf("broker: committing message %s: %w", s.ID, err)
	}
	return late, nil
}

// Cancel implements Broker: one script call.
func (r *Redis) Cancel(ctx context.Context, s Slot) error {
	if _, err := r.release(ctx, s.ChannelID, s.ID, ""); err != nil {
		return fmt.Errorf("broker: cancelling message slot %s: %w", s.ID, err)
	}
	return nil
}

func (r *Redis) release(ctx context.Context, channelID, slotID, payload string) (bool, error) {
	_, slots, state := r.channelKeys(channelID)
	late, err := releaseScript.Run(ctx, r.client, []string{r.streamKey, r.epochKey, r.seqKey, slots, state, r.pendingKey},
		channelID, slotID, payload, newEpoch(), r.cfg.MaxLogLength, r.cfg.Window.Milliseconds()).Int()
	return late == 1, err
}

// sweep gives up the expired slots of every channel that has slots, so that the
// messages behind a slot whose node died are delivered.
func (r *Redis) sweep(ctx context.Context) error {
	channels, err := r.client.SMembers(ctx, r.pendingKey).Result()
	if err != nil {
		return err
	}
	for _, ch := range channels {
		if _, err := r.release(ctx, ch, "", ""); err != nil {
			return err
		}
	}
	return nil
}

func (r *Redis) sweepLoop(ctx context.Context) {
	t := time.NewTicker(max(r.cfg.Hold/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			opCtx, cancel := context.WithTimeout(ctx, r.cfg.OpTimeout)
			if err := r.sweep(opCtx); err != nil && ctx.Err() == nil {
				r.log.Warn("broker: giving up expired message slots failed; retrying", "err", err)
			}
			cancel()
		}
	}
}
