package broker

// The Redis broker's log: offsets, stream entries, and Since, which replays what a
// reconnecting client missed.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// position is where an entry sits in the log; its offset form is "epoch:seq:id".
type position struct {
	epoch string
	seq   uint64
	id    string
}

func (p position) offset() string {
	return p.epoch + ":" + strconv.FormatUint(p.seq, 10) + ":" + p.id
}

func parseOffset(offset string) (position, bool) {
	parts := strings.Split(offset, ":")
	if len(parts) != 3 || parts[0] == "" {
		return position{}, false
	}
	seq, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil || !validStreamID(parts[2]) {
		return position{}, false
	}
	return position{epoch: parts[0], seq: seq, id: parts[2]}, true
}

func validStreamID(s string) bool {
	a, b, found := strings.Cut(s, "-")
	if !found {
		return false
	}
	_, err1 := strconv.ParseUint(a, 10, 64)
	_, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil
}

// streamIDMillis is the Redis time (ms) at which an entry was added.
func streamIDMillis(id string) int64 {
	a, _, _ := strings.Cut(id, "-")
	ms, _ := strconv.ParseInt(a, 10, 64)
	return ms
}

// decodeEntry turns a stream entry into an event carrying its offset.
func decodeEntry(m redis.XMessage) (Event, position, error) {
	raw, _ := m.Values[fieldEvent].(string)
	epoch, _ := m.Values[fieldEpoch].(string)
	seqStr, _ := m.Values[fieldSeq].(string)
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if err != nil || epoch == "" {
		return Event{}, position{}, fmt.Errorf("broker: log entry %s lacks epoch or sequence", m.ID)
	}
	var ev Event
	if err := json.Unmarshal([]byte(raw), &ev); err != nil {
		return Event{}, position{}, fmt.Errorf("broker: log entry %s: %w", m.ID, err)
	}
	pos := position{epoch: epoch, seq: seq, id: m.ID}
	ev.Offset, ev.PublishedAt = pos.offset(), time.UnixMilli(streamIDMillis(m.ID))
	return ev, pos, nil
}

// Since pages through the log after offset. The offset is covered when its epoch is
// the current one and the entries after it carry the next sequence numbers without
// a hole (none trimmed or lost), the first of them still within the window;
// otherwise ErrOffsetExpired.
func (r *Redis) Since(ctx context.Context, offset string, channels []string) ([]Event, error) {
	after, ok := parseOffset(offset)
	if !ok {
		return nil, ErrOffsetExpired
	}
	want := make(map[string]bool, len(channels))
	for _, c := range channels {
		want[c] = true
	}
	var out []Event
	cursor, wantSeq := after.id, after.seq+1
	for first := true; ; first = false {
		var (
			epochCmd, seqCmd *redis.StringCmd
			rangeCmd         *redis.XMessageSliceCmd
			timeCmd          *redis.TimeCmd
		)
		// One MULTI, so epoch, sequence and entries describe the same moment.
		_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			epochCmd = p.Get(ctx, r.epochKey)
			seqCmd = p.Get(ctx, r.seqKey)
			rangeCmd = p.XRangeN(ctx, r.streamKey, "("+cursor, "+", r.cfg.ReadBatch)
			timeCmd = p.Time(ctx)
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("broker: reading the recovery log: %w", err)
		}
		epoch, err := epochCmd.Result()
		if errors.Is(err, redis.Nil) || epoch != after.epoch {
			return nil, ErrOffsetExpired
		}
		lastSeq, err := seqCmd.Uint64()
		if err != nil {
			return nil, ErrOffsetExpired // epoch without sequence: a damaged log
		}
		if lastSeq < after.seq {
			return nil, ErrOffsetExpired // an offset this log never handed out
		}
		entries := rangeCmd.Val()
		if first && len(entries) == 0 && lastSeq != after.seq {
			return nil, ErrOffsetExpired // later entries exist but not after this id
		}
		if first && len(entries) > 0 {
			// The memory broker drops entries older than the window; so must we, even
			// before the lazy trimming of the next publish has removed them.
			now, _ := timeCmd.Result()
			if streamIDMillis(entries[0].ID) < now.UnixMilli()-r.cfg.Window.Milliseconds() {
				return nil, ErrOffsetExpired
			}
		}
		for _, m := range entries {
			ev, pos, err := decodeEntry(m)
			if err != nil {
				return nil, err
			}
			if pos.epoch != after.epoch || pos.seq != wantSeq {
				return nil, ErrOffsetExpired // a hole: trimmed or lost entries
			}
			wantSeq++
			if want[ev.ChannelID] {
				out = append(out, ev)
			}
		}
		if int64(len(entries)) < r.cfg.ReadBatch {
			return out, nil
		}
		cursor = entries[len(entries)-1].ID
	}
}

// headScript returns the log's end {epoch, seq, last entry id}, creating the epoch
// when the log is new, as the first append would: an offset made of them is covered
// by Since until the entries after it leave the window. The stream holds at least its
// newest entry (appends trim only older ones), whose sequence is seq; with none,
// "0-0" is before any entry to come.
// KEYS: stream, epoch, seq. ARGV: candidate epoch.
var headScript = redis.NewScript(`
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
  redis.call('SET', KEYS[3], 0)
end
local seq = redis.call('GET', KEYS[3]) or '0'
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local id = '0-0'
if #last > 0 then id = last[1][1] end
return {epoch, seq, id}
`)

// Head implements Broker.
func (r *Redis) Head(ctx context.Context) (string, error) {
	res, err := headScript.Run(ctx, r.client, []string{r.streamKey, r.epochKey, r.seqKey}, newEpoch()).StringSlice()
	if err != nil {
		return "", fmt.Errorf("broker: reading the log's head: %w", err)
	}
	if len(res) != 3 {
		return "", fmt.Errorf("broker: the log's head: unexpected reply %q", res)
	}
	seq, err := strconv.ParseUint(res[1], 10, 64)
	if err != nil || !validStreamID(res[2]) {
		return "", fmt.Errorf("broker: the log's head: unexpected reply %q", res)
	}
	return position{epoch: res[0], seq: seq, id: res[2]}.offset(), nil
}
