package broker

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestMemoryOrderAndReplay(t *testing.T) {
	m, err := NewMemory(MemoryConfig{Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var got []Event
	if err := m.Subscribe(ctx, func(ev Event) { got = append(got, ev) }); err != nil {
		t.Fatal(err)
	}
	first, _ := m.Publish(ctx, Event{Kind: KindMessage, ChannelID: "a", Data: json.RawMessage(`1`)}, true)
	_, _ = m.Publish(ctx, Event{Kind: KindTyping, ChannelID: "a"}, false)
	_, _ = m.Publish(ctx, Event{Kind: KindMessage, ChannelID: "b", Data: json.RawMessage(`2`)}, true)
	_, _ = m.Publish(ctx, Event{Kind: KindMessage, ChannelID: "a", Data: json.RawMessage(`3`)}, true)
	if len(got) != 4 || got[1].Offset != "" || got[0].Offset != first {
		t.Fatalf("subscriber saw %+v", got)
	}
	tests := []struct {
		name     string
		offset   string
		channels []string
		want     []string
		wantErr  error
	}{
		{"after first, channel a", first, []string{"a"}, []string{"3"}, nil},
		{"after first, both", first, []string{"a", "b"}, []string{"2", "3"}, nil},
		{"latest", got[3].Offset, []string{"a", "b"}, nil, nil},
		{"foreign offset", "zzz-1", []string{"a"}, nil, ErrOffsetExpired},
		{"garbage", "nope", []string{"a"}, nil, ErrOffsetExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := m.Since(ctx, tt.offset, tt.channels)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v want %v", err, tt.wantErr)
			}
			var data []string
			for _, e := range evs {
				data = append(data, string(e.Data))
			}
			if len(data) != len(tt.want) {
				t.Fatalf("got %v want %v", data, tt.want)
			}
			for i := range data {
				if data[i] != tt.want[i] {
					t.Fatalf("got %v want %v", data, tt.want)
				}
			}
		})
	}
}

func TestMemoryWindowExpires(t *testing.T) {
	m, _ := NewMemory(MemoryConfig{Window: time.Minute})
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	ctx := context.Background()
	first, _ := m.Publish(ctx, Event{Kind: KindMessage, ChannelID: "a"}, true)
	_, _ = m.Publish(ctx, Event{Kind: KindMessage, ChannelID: "a"}, true)
	now = now.Add(2 * time.Minute)
	_, _ = m.Publish(ctx, Event{Kind: KindMessage, ChannelID: "a"}, true)
	if _, err := m.Since(ctx, first, []string{"a"}); !errors.Is(err, ErrOffsetExpired) {
		t.Fatalf("offset older than the window must be expired, got %v", err)
	}
}
