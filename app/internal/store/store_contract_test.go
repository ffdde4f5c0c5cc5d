package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/quibly/quibly/app/internal/model"
)

// runStoreContract is the behaviour every Store backend must share; each backend's
// test calls it. newBackend prepares an empty database for one subtest and returns
// open, which opens a Store on it. Calling open again (after Close) must see the same
// data: that is how the runner simulates a restart. Stores returned by open are
// closed by the runner.
func runStoreContract(t *testing.T, newBackend func(t *testing.T) (open func() Store)) {
	t.Helper()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, open func() Store)
	}{
		{"users", contractUsers},
		{"channels", contractChannels},
		{"private channels and members", contractMembers},
		{"direct messages", contractDirect},
		{"state changes kept in history", contractStateInHistory},
		{"rename, archive and delete a channel", contractChannelLife},
		{"private names never conflict; the list pages past equal names", contractPrivateNames},
		{"edits, deletions and reactions end as the channel's order says", contractMessageLife},
		{"threads, read markers, unread and mention counts", contractThreadsReadsMentions},
		{"write messages idempotent", contractWriteIdempotent},
		{"write messages concurrent retries", contractWriteConcurrent},
		{"write messages rejects bad batch atomically", contractWriteInvalid},
		{"history order and pagination", contractHistory},
		{"empty channel", contractEmptyChannel},
		{"restart persistence", contractRestart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open := newBackend(t)
			tc.run(t, func() Store {
				st := open()
				t.Cleanup(func() { _ = st.Close() })
				return st
			})
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newV7(t *testing.T) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

func mustUser(t *testing.T, st Store, name string) model.User {
	t.Helper()
	u, err := st.CreateUser(ctxT(t), name, "hash-of-"+name)
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", name, err)
	}
	return u
}

func mustChannel(t *testing.T, st Store, name, by string) model.Channel {
	t.Helper()
	c, err := st.CreateChannel(ctxT(t), name, model.KindPublic, by)
	if err != nil {
		t.Fatalf("CreateChannel(%q): %v", name, err)
	}
	return c
}

// msg builds a message with a fresh time-ordered id.
func msg(t *testing.T, ch model.Channel, author model.User, text, nonce string) model.Message {
	t.Helper()
	return model.Message{ID: newV7(t), ChannelID: ch.ID, AuthorID: author.ID, Author: author.Username,
		Text: text, Nonce: nonce, CreatedAt: time.Now()}
}

func assertUUIDv7(t *testing.T, what, id string) {
	t.Helper()
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 || u.String() != id {
		t.Errorf("%s id %q is not a canonical UUIDv7", what, id)
	}
}

func assertRecentUTC(t *testing.T, what string, ts time.Time) {
	t.Helper()
	if ts.Location() != time.UTC {
		t.Errorf("%s time %v is not UTC", what, ts)
	}
	if d := time.Since(ts); d < -time.Second || d > time.Minute {
		t.Errorf("%s time %v is not recent", what, ts)
	}
}

func contractUsers(t *testing.T, open func() Store) {
	st := open()
	ctx := ctxT(t)
	alice := mustUser(t, st, "Alice")
	assertUUIDv7(t, "user", alice.ID)
	assertRecentUTC(t, "user", alice.CreatedAt)
	if alice.Username != "Alice" {
		t.Errorf("username = %q, want Alice", alice.Username)
	}
	for id, want := range map[string]bool{alice.ID: true, uuid.NewString(): false, "not-a-uuid": false} {
		if v, got, err := st.TokenVersion(ctx, id); err != nil || got != want || v != 0 {
			t.Errorf("TokenVersion(%q) = %d, %v, %v; want 0, %v", id, v, got, err, want)
		}
	}
	// Revoking raises the version, which UserByName reports too; an unknown user is
	// ErrNotFound.
	for range 2 {
		if err := st.RevokeTokens(ctx, alice.ID); err != nil {
			t.Fatalf("RevokeTokens: %v", err)
		}
	}
	if v, ok, err := st.TokenVersion(ctx, alice.ID); err != nil || !ok || v != 2 {
		t.Errorf("after two revocations: %d, %v, %v; want 2", v, ok, err)
	}
	if u, _, err := st.UserByName(ctx, "alice"); err != nil || u.TokenVersion != 2 {
		t.Errorf("UserByName after revocations: version %d, %v; want 2", u.TokenVersion, err)
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if err := st.RevokeTokens(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("RevokeTokens(%q) = %v, want ErrNotFound", id, err)
		}
	}

	for _, tc := range []struct {
		name    string
		wantErr error
	}{
		{"Alice", ErrConflict},
		{"alice", ErrConflict},
		{"ALICE", ErrConflict},
		{"bob", nil},
	} {
		_, err := st.CreateUser(ctx, tc.name, "h")
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("CreateUser(%q) err = %v, want %v", tc.name, err, tc.wantErr)
		}
	}

	for _, tc := range []struct {
		lookup  string
		wantErr error
	}{
		{"Alice", nil},
		{"alice", nil},
		{"aLiCe", nil},
		{"carol", ErrNotFound},
		{"", ErrNotFound},
		{"Alice ", ErrNotFound},
	} {
		u, hash, err := st.UserByName(ctx, tc.lookup)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("UserByName(%q) err = %v, want %v", tc.lookup, err, tc.wantErr)
			continue
		}
		if tc.wantErr != nil {
			continue
		}
		if u.ID != alice.ID || u.Username != "Alice" || !u.CreatedAt.Equal(alice.CreatedAt) {
			t.Errorf("UserByName(%q) = %+v, want %+v", tc.lookup, u, alice)
		}
		if hash != "hash-of-Alice" {
			t.Errorf("UserByName(%q) hash = %q", tc.lookup, hash)
		}
	}
}

func contractChannels(t *testing.T, open func() Store) {
	st := open()
	ctx := ctxT(t)
	if cs, err := st.ChannelsFor(ctx, "", Cursor{}, 10); err != nil || len(cs) != 0 {
		t.Fatalf("Channels() on empty store = %v, %v; want none", cs, err)
	}
	alice := mustUser(t, st, "alice")
	random := mustChannel(t, st, "random", alice.ID)
	assertUUIDv7(t, "channel", random.ID)
	assertRecentUTC(t, "channel", random.CreatedAt)
	if random.CreatedBy != alice.ID || random.Name != "random" {
		t.Errorf("CreateChannel = %+v", random)
	}
	if _, err := st.CreateChannel(ctx, "random", model.KindPublic, alice.ID); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate CreateChannel err = %v, want ErrConflict", err)
	}

	general, err := st.EnsureChannel(ctx, "general")
	if err != nil {
		t.Fatalf("EnsureChannel(general): %v", err)
	}
	assertUUIDv7(t, "channel", general.ID)
	if general.CreatedBy != "" || general.Name != "general" {
		t.Errorf("EnsureChannel(general) = %+v, want system channel", general)
	}
	for _, tc := range []struct {
		name string
		want model.Channel
	}{
		{"general", general}, // second call returns the first one
		{"random", random},   // an existing user-made channel is returned unchanged
	} {
		got, err := st.EnsureChannel(ctx, tc.name)
		if err != nil || got.ID != tc.want.ID || got.CreatedBy != tc.want.CreatedBy || !got.CreatedAt.Equal(tc.want.CreatedAt) {
			t.Errorf("EnsureChannel(%q) = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	alpha := mustChannel(t, st, "alpha", alice.ID)

	mustChannel(t, st, "gen-x", alice.ID) // '-' sorts before letters by bytes
	for _, tc := range []struct {
		after string
		limit int
		want  string
	}{
		{"", 10, "[alpha gen-x general random]"},
		{"", 2, "[alpha gen-x]"},
		{"gen-x", 2, "[general random]"},
		{"general", 10, "[random]"},
		{"random", 10, "[]"},
		{"b", 1, "[gen-x]"}, // a cursor need not be a channel's name
	} {
		cs, err := st.ChannelsFor(ctx, alice.ID, Cursor{Name: tc.after}, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range cs {
			names = append(names, c.Name)
		}
		if got := fmt.Sprint(names); got != tc.want && !(tc.want == "[]" && len(names) == 0) {
			t.Errorf("Channels(after %q, limit %d) names = %v, want %s (by name, by bytes)", tc.after, tc.limit, got, tc.want)
		}
	}

	for _, tc := range []struct {
		id      string
		want    model.Channel
		wantErr error
	}{
		{random.ID, random, nil},
		{general.ID, general, nil},
		{alpha.ID, alpha, nil},
		{newV7(t), model.Channel{}, ErrNotFound},
	} {
		got, err := st.Channel(ctx, tc.id)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("Channel(%s) err = %v, want %v", tc.id, err, tc.wantErr)
			continue
		}
		if got.ID != tc.want.ID || got.Name != tc.want.Name || got.CreatedBy != tc.want.CreatedBy || !got.CreatedAt.Equal(tc.want.CreatedAt) {
			t.Errorf("Channel(%s) = %+v, want %+v", tc.id, got, tc.want)
		}
	}
}

func contractWriteIdempotent(t *testing.T, open func() Store) {
	st := open()
	ctx := ctxT(t)
	alice, bob := mustUser(t, st, "alice"), mustUser(t, st, "bob")
	ch := mustChannel(t, st, "general", alice.ID)

	a1 := msg(t, ch, alice, "one", "n1")
	a2 := msg(t, ch, alice, "two", "n2")
	a3 := msg(t, ch, alice, "three", "")
	retryByNonce := msg(t, ch, alice, "one (retry)", "n1") // new id, stored nonce
	dupIDInBatch := msg(t, ch, bob, "dup id", "")
	sameNonceX := msg(t, ch, bob, "x first", "nx")
	sameNonceY := msg(t, ch, bob, "x retry", "nx") // same batch, same (author, nonce)
	otherAuthor := msg(t, ch, bob, "bob n1", "n1") // nonce only dedups per author
	empty1 := msg(t, ch, bob, "no nonce 1", "")
	empty2 := msg(t, ch, bob, "no nonce 2", "")

	steps := []struct {
		name  string
		batch []model.Message
		want  int
	}{
		{"fresh batch", []model.Message{a1, a2, a3}, 3},
		{"same batch replayed", []model.Message{a1, a2, a3}, 0},
		{"replay subset", []model.Message{a2}, 0},
		{"new id with stored (author, nonce)", []model.Message{retryByNonce}, 0},
		{"duplicate id inside one batch", []model.Message{dupIDInBatch, dupIDInBatch}, 1},
		{"duplicate (author, nonce) inside one batch", []model.Message{sameNonceX, sameNonceY}, 1},
		{"same nonce, other author", []model.Message{otherAuthor}, 1},
		{"empty nonces never collide", []model.Message{empty1, empty2}, 2},
		{"empty batch", nil, 0},
		{"mixed old and new", []model.Message{a1, msg(t, ch, alice, "four", "n4"), sameNonceY}, 1},
	}
	total := 0
	for _, s := range steps {
		got, err := st.WriteMessages(ctx, s.batch)
		if err != nil {
			t.Fatalf("%s: WriteMessages: %v", s.name, err)
		}
		if got != s.want {
			t.Errorf("%s: inserted %d, want %d", s.name, got, s.want)
		}
		total += s.want
	}

	stored, err := st.Messages(ctx, ch.ID, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != total {
		t.Fatalf("stored %d messages, want %d", len(stored), total)
	}
	texts := map[string]string{}
	for _, m := range stored {
		texts[m.ID] = m.Text
	}
	// The first write wins; retries never replace it.
	for _, tc := range []struct {
		m       model.Message
		present bool
	}{
		{a1, true}, {retryByNonce, false}, {sameNonceX, true}, {sameNonceY, false}, {otherAuthor, true},
	} {
		text, ok := texts[tc.m.ID]
		if ok != tc.present || (ok && text != tc.m.Text) {
			t.Errorf("message %q: present=%v text=%q, want present=%v", tc.m.Text, ok, text, tc.present)
		}
	}
}

func contractWriteConcurrent(t *testing.T, open func() Store) {
	st := open()
	ctx := ctxT(t)
	alice := mustUser(t, st, "alice")
	ch := mustChannel(t, st, "general", alice.ID)
	var batch []model.Message
	for i := range 20 {
		batch = append(batch, msg(t, ch, alice, fmt.Sprint("m", i), fmt.Sprint("n", i)))
	}
	// Several writers racing with the same batch (a leader hand-over replaying Kafka)
	// must store each message exactly once.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
	)
	for range 4 {
		wg.Go(func() {
			n, err := st.WriteMessages(ctx, batch)
			if err != nil {
				t.Errorf("WriteMessages: %v", err)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if total != len(batch) {
		t.Errorf("racing writers inserted %d rows in total, want %d", total, len(batch))
	}
	if got, _ := st.Messages(ctx, ch.ID, "", 100); len(got) != len(batch) {
		t.Errorf("stored %d, want %d", len(got), len(batch))
	}
}

func contractWriteInvalid(t *testing.T, open func() Store) {
	st := open()
	ctx := ctxT(t)
	alice := mustUser(t, st, "alice")
	ch := mustChannel(t, st, "general", alice.ID)
	good := msg(t, ch, alice, "good", "g")
	for _, tc := range []struct {
		name string
		bad  func(m model.Message) model.Message
	}{
		{"no id", func(m model.Message) model.Message { m.ID = ""; return m }},
		{"no channel", func(m model.Message) model.Message { m.ChannelID = ""; return m }},
		{"no author", func(m model.Message) model.Message { m.AuthorID = ""; return m }},
		{"no timestamp", func(m model.Message) model.Message { m.CreatedAt = time.Time{}; return m }},
	} {
		bad := tc.bad(msg(t, ch, alice, "bad", ""))
		if _, err := st.WriteMessages(ctx, []model.Message{good, bad}); !errors.Is(err, ErrRejected) {
			t.Errorf("%s: WriteMessages = %v, want a refusal wrapping ErrRejected", tc.name, err)
		}
	}
	if got, err := st.Messages(ctx, ch.ID, "", 10); err != nil || len(got) != 0 {
		t.Errorf("after rejected batches: %d messages, %v; want none written", len(got), err)
	}
	for _, limit := range []int{0, -1} {
		if _, err := st.Messages(ctx, ch.ID, "", limit); err == nil {
			t.Errorf("Messages(limit=%d) succeeded, want error", limit)
		}
	}
}

func contractHistory(t *testing.T, open func() Store) {
	st := open()
	ctx := ctxT(t)
	alice, bob := mustUser(t, st, "alice"), mustUser(t, st, "bob")
	ch := mustChannel(t, st, "general", alice.ID)
	other := mustChannel(t, st, "other", alice.ID)

	const n = 7
	var written []model.Message // in id (time) order
	for i := range n {
		au := alice
		if i%2 == 1 {
			au = bob
		}
		m := msg(t, ch, au, fmt.Sprintf("hello %d", i), fmt.Sprintf("nonce-%d", i))
		m.CreatedAt = time.Date(2024, 5, 1, 12, 0, i, 123_456_789, time.FixedZone("X", 3600))
		written = append(written, m)
	}
	noise := msg(t, other, alice, "elsewhere", "")
	batch := append([]model.Message{noise}, written...)
	rand.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] }) // order comes from ids, not insertion
	if got, err := st.WriteMessages(ctx, batch); err != nil || got != n+1 {
		t.Fatalf("WriteMessages = %d, %v", got, err)
	}
	newestFirst := make([]model.Message, n)
	for i, m := range written {
		newestFirst[n-1-i] = m
	}

	// Fields survive the round trip; times are kept to the millisecond, in UTC.
	all, err := st.Messages(ctx, ch.ID, "", 100)
	if err != nil || len(all) != n {
		t.Fatalf("Messages(all) = %d, %v", len(all), err)
	}
	for i, got := range all {
		want := newestFirst[i]
		if got.ID != want.ID || got.ChannelID != want.ChannelID || got.AuthorID != want.AuthorID ||
			got.Author != want.Author || got.Text != want.Text || got.Nonce != want.Nonce {
			t.Errorf("message %d = %+v, want %+v", i, got, want)
		}
		if got.CreatedAt.UnixMilli() != want.CreatedAt.UnixMilli() || got.CreatedAt.Location() != time.UTC {
			t.Errorf("message %d time = %v, want %v in UTC", i, got.CreatedAt, want.CreatedAt)
		}
	}

	for _, tc := range []struct {
		name   string
		before string
		limit  int
		want   []model.Message
	}{
		{"first page", "", 3, newestFirst[:3]},
		{"limit larger than history", "", 50, newestFirst},
		{"limit exactly history", "", n, newestFirst},
		{"limit one", "", 1, newestFirst[:1]},
		{"cursor mid", newestFirst[2].ID, 3, newestFirst[3:6]},
		{"cursor near end", newestFirst[5].ID, 3, newestFirst[6:]},
		{"cursor at oldest", newestFirst[n-1].ID, 3, nil},
		{"cursor newer than everything", newV7(t), 2, newestFirst[:2]},
		{"cursor older than everything", "00000000-0000-7000-8000-000000000000", 5, nil},
	} {
		got, err := st.Messages(ctx, ch.ID, tc.before, tc.limit)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if ids(got) != ids(tc.want) {
			t.Errorf("%s: got %s, want %s", tc.name, ids(got), ids(tc.want))
		}
	}

	// Walking the cursor visits every message once, newest first.
	var walked []model.Message
	before := ""
	for range n + 1 {
		page, err := st.Messages(ctx, ch.ID, before, 2)
		if err != nil {
			t.Fatal(err)
		}
		walked = append(walked, page...)
		if len(page) < 2 {
			break
		}
		before = page[len(page)-1].ID
	}
	if ids(walked) != ids(newestFirst) {
		t.Errorf("cursor walk = %s, want %s", ids(walked), ids(newestFirst))
	}
}

func ids(ms []model.Message) string {
	out := ""
	for _, m := range ms {
		out += m.ID[len(m.ID)-6:] + " "
	}
	return "[" + out + "]"
}

func contractEmptyChannel(t *testing.T, open func() Store) {
	st := open()
	ctx := ctxT(t)
	alice := mustUser(t, st, "alice")
	ch := mustChannel(t, st, "quiet", alice.ID)
	for _, id := range []string{ch.ID, newV7(t)} { // existing but empty, and unknown
		got, err := st.Messages(ctx, id, "", 50)
		if err != nil || len(got) != 0 {
			t.Errorf("Messages(%s) = %v, %v; want empty", id, got, err)
		}
	}
}

func contractRestart(t *testing.T, open func() Store) {
	ctx := ctxT(t)
	st := open()
	alice := mustUser(t, st, "Alice")
	ch := mustChannel(t, st, "general", alice.ID)
	m := msg(t, ch, alice, "survives", "keep")
	if n, err := st.WriteMessages(ctx, []model.Message{m}); err != nil || n != 1 {
		t.Fatalf("WriteMessages = %d, %v", n, err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	st = open()
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("Ping after reopen: %v", err)
	}
	if u, _, err := st.UserByName(ctx, "alice"); err != nil || u.ID != alice.ID {
		t.Errorf("user after reopen = %+v, %v", u, err)
	}
	if c, err := st.Channel(ctx, ch.ID); err != nil || c.Name != "general" {
		t.Errorf("channel after reopen = %+v, %v", c, err)
	}
	got, err := st.Messages(ctx, ch.ID, "", 10)
	if err != nil || len(got) != 1 || got[0].ID != m.ID || got[0].Text != "survives" {
		t.Fatalf("messages after reopen = %+v, %v", got, err)
	}
	// Idempotency state survives too: a retry after the restart is still a no-op.
	retry := msg(t, ch, alice, "survives (retry)", "keep")
	if n, err := st.WriteMessages(ctx, []model.Message{m, retry}); err != nil || n != 0 {
		t.Errorf("replay after reopen inserted %d, %v; want 0", n, err)
	}
	if _, err := st.CreateUser(ctx, "ALICE", "h"); !errors.Is(err, ErrConflict) {
		t.Errorf("CreateUser after reopen err = %v, want ErrConflict", err)
	}
}

// names lists the channels' names and, after a colon, the caller's role where it has one.
func names(cs []model.Channel) string {
	var out []string
	for _, c := range cs {
		n := c.Name
		if c.Role != "" {
			n += ":" + c.Role
		}
		out = append(out, n)
	}
	return fmt.Sprint(out)
}

// A private channel is seen only by its members, each with a role; membership
// changes are idempotent and report whether they changed anything.
func contractMembers(t *testing.T, open func() Store) {
	st := open()
	ctx := ctxT(t)
	alice, bob, carol := mustUser(t, st, "alice"), mustUser(t, st, "bob"), mustUser(t, st, "carol")
	pub := mustChannel(t, st, "lobby", alice.ID)
	priv, err := st.CreateChannel(ctx, "secret", model.KindPrivate, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if priv.Kind != model.KindPrivate || priv.Role != model.RoleOwner || pub.Kind != model.KindPublic {
		t.Fatalf("created %+v and %+v", priv, pub)
	}
	if got, err := st.Channel(ctx, priv.ID); err != nil || got.Kind != model.KindPrivate {
		t.Fatalf("Channel(private) = %+v, %v", got, err)
	}
	if _, err := st.CreateChannel(ctx, "odd", "secret-ish", alice.ID); err == nil {
		t.Fatal("a channel of an unknown kind was created")
	}
	steps := []struct {
		name string
		do   func() (bool, error)
		want bool
	}{
		{"bob added as member", func() (bool, error) { return st.SetMember(ctx, priv.ID, bob.ID, model.RoleMember) }, true},
		{"bob added again", func() (bool, error) { return st.SetMember(ctx, priv.ID, bob.ID, model.RoleMember) }, false},
		{"bob made admin", func() (bool, error) { return st.SetMember(ctx, priv.ID, bob.ID, model.RoleAdmin) }, true},
		{"carol removed though never a member", func() (bool, error) { return st.RemoveMember(ctx, priv.ID, carol.ID) }, false},
	}
	for _, step := range steps {
		if got, err := step.do(); err != nil || got != step.want {
			t.Fatalf("%s: %v, %v; want %v", step.name, got, err, step.want)
		}
	}
	for _, tc := range []struct {
		user, want string
	}{
		{alice.ID, "[lobby:owner secret:owner]"},
		{bob.ID, "[lobby secret:admin]"},
		{carol.ID, "[lobby]"},
		{"", "[lobby]"},
	} {
		cs, err := st.ChannelsFor(ctx, tc.user, Cursor{}, 10)
		if err != nil || names(cs) != tc.want {
			t.Errorf("ChannelsFor(%s) = %s, %v; want %s", tc.user, names(cs), err, tc.want)
		}
	}
	if role, err := st.Member(ctx, priv.ID, bob.ID); err != nil || role != model.RoleAdmin {
		t.Errorf("Member(bob) = %q, %v", role, err)
	}
	if _, err := st.Member(ctx, priv.ID, carol.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Member(carol) err = %v, want ErrNotFound", err)
	}
	ms, err := st.Members(ctx, priv.ID)
	if err != nil || len(ms) != 2 || ms[0].UserID != alice.ID || ms[0].Username != "alice" || ms[0].Role != model.RoleOwner ||
		ms[1].UserID != bob.ID || ms[1].Role != model.RoleAdmin {
		t.Fatalf("Members = %+v, %v; want alice (owner), then bob (admin)", ms, err)
	}
	for _, tc := range []struct {
		name            string
		channel, user   string
		role            string
		wantErrNotFound bool
	}{
		{"an unknown user", priv.ID, newV7(t), model.RoleMember, true},
		{"an unknown channel", newV7(t), bob.ID, model.RoleMember, true},
	} {
		if _, err := st.SetMember(ctx, tc.channel, tc.user, tc.role); errors.Is(err, ErrNotFound) != tc.wantErrNotFound {
			t.Errorf("SetMember(%s) err = %v", tc.name, err)
		}
	}
	if _, err := st.SetMember(ctx, priv.ID, bob.ID, "king"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("SetMember with an unknown role: %v, want a plain error", err)
	}
	if removed, err := st.RemoveMember(ctx, priv.ID, bob.ID); err != nil || !removed {
		t.Fatalf("RemoveMember(bob) = %v, %v", removed, err)
	}
	if cs, _ := st.ChannelsFor(ctx, bob.ID, Cursor{}, 10); names(cs) != "[lobby]" {
		t.Errorf("after removal bob sees %s", names(cs))
	}
}

// The DM of two users is one channel whichever of them asks; a DM with oneself is a
// notes channel; only its members see it.
func contractDirect(t *testing.T, open func() Store) {
	st := open()
	ctx := ctxT(t)
	alice, bob, carol := mustUser(t, st, "alice"), mustUser(t, st, "bob"), mustUser(t, st, "carol")
	ab, created, err := st.DirectChannel(ctx, alice.ID, bob.ID)
	if err != nil || !created || ab.Kind != model.KindDM {
		t.Fatalf("DirectChannel(alice, bob) = %+v, %v, %v", ab, created, err)
	}
	ba, created, err := st.DirectChannel(ctx, bob.ID, alice.ID)
	if err != nil || created || ba.ID != ab.ID {
		t.Fatalf("DirectChannel(bob, alice) = %+v, created %v, %v; want the same channel", ba, created, err)
	}
	self, created, err := st.DirectChannel(ctx, carol.ID, carol.ID)
	if err != nil || !created {
		t.Fatalf("DirectChannel(carol, carol) = %+v, %v, %v", self, created, err)
	}
	if ms, err := st.Members(ctx, self.ID); err != nil || len(ms) != 1 || ms[0].UserID != carol.ID {
		t.Fatalf("notes-to-self members = %+v, %v", ms, err)
	}
	if ms, err := st.Members(ctx, ab.ID); err != nil || len(ms) != 2 {
		t.Fatalf("DM members = %+v, %v", ms, err)
	}
	for _, tc := range []struct {
		user string
		want []string // the DM channels it sees
	}{
		{alice.ID, []string{ab.ID}},
		{bob.ID, []string{ab.ID}},
		{carol.ID, []string{self.ID}},
	} {
		cs, err := st.ChannelsFor(ctx, tc.user, Cursor{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		var dms []string
		for _, c := range cs {
			if c.Kind == model.KindDM {
				dms = append(dms, c.ID)
				if c.Role != model.RoleMember {
					t.Errorf("a DM listed with role %q", c.Role)
				}
			}
		}
		if fmt.Sprint(dms) != fmt.Sprint(tc.want) {
			t.Errorf("%s sees DMs %v, want %v", tc.user, dms, tc.want)
		}
	}
	if _, _, err := st.DirectChannel(ctx, alice.ID, newV7(t)); !errors.Is(err, ErrNotFound) {
		t.Errorf("a DM with an unknown user: %v, want ErrNotFound", err)
	}
}

// A change of a channel's state is kept in its history in its place, with its kind
// and payload; a message has neither.
func contractStateInHistory(t *testing.T, open func() Store) {
	st := open()
	ctx := ctxT(t)
	alice := mustUser(t, st, "alice")
	ch := mustChannel(t, st, "team", alice.ID)
	now := time.Now().UTC().Truncate(time.Millisecond)
	join := model.Message{ID: newV7(t), ChannelID: ch.ID, AuthorID: alice.ID, Author: "alice", CreatedAt: now,
		Kind: model.EventMemberJoin, Data: json.RawMessage(`{"userId":"bob","role":"member"}`)}
	msg := model.Message{ID: newV7(t), ChannelID: ch.ID, AuthorID: alice.ID, Author: "alice", Text: "hi", CreatedAt: now}
	if n, err := st.WriteMessages(ctx, []model.Message{join, msg}); err != nil || n != 2 {
		t.Fatalf("WriteMessages = %d, %v", n, err)
	}
	got, err := st.Messages(ctx, ch.ID, "", 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("Messages = %v, %v", got, err)
	}
	if got[1].ID != join.ID || got[1].Kind != model.EventMemberJoin || string(got[1].Data) != string(join.Data) || got[1].Text != "" {
		t.Errorf("the state change came back as %+v", got[1])
	}
	if got[0].Kind != "" || got[0].Data != nil || got[0].Text != "hi" {
		t.Errorf("the message came back as %+v", got[0])
	}
}

// A channel is renamed and archived in place; a name taken elsewhere is refused; a
// deleted channel is gone (not found, not listed) and its name is free again.
func contractChannelLife(t *testing.T, open func() Store) {
	st := open()
	ctx := ctxT(t)
	alice := mustUser(t, st, "alice")
	ch := mustChannel(t, st, "draft", alice.ID)
	mustChannel(t, st, "taken", alice.ID)
	yes, no := true, false
	for _, step := range []struct {
		name     string
		newName  string
		archived *bool
		want     string // name/archived after, or the error
		changed  bool
	}{
		{"rename", "final", nil, "final/false", true},
		{"archive", "", &yes, "final/true", true},
		{"archive again", "", &yes, "final/true", false},
		{"unarchive and rename", "again", &no, "again/false", true},
		{"a taken name", "taken", nil, "conflict", false},
	} {
		c, changed, err := st.UpdateChannel(ctx, ch.ID, step.newName, step.archived)
		got := fmt.Sprintf("%s/%v", c.Name, c.Archived)
		if errors.Is(err, ErrConflict) {
			got = "conflict"
		} else if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got != step.want || changed != step.changed {
			t.Errorf("%s: %s (changed %v), want %s (changed %v)", step.name, got, changed, step.want, step.changed)
		}
	}
	if c, err := st.Channel(ctx, ch.ID); err != nil || c.Name != "again" {
		t.Fatalf("Channel after the updates = %+v, %v", c, err)
	}
	if deleted, err := st.DeleteChannel(ctx, ch.ID); err != nil || !deleted {
		t.Fatalf("DeleteChannel = %v, %v", deleted, err)
	}
	if deleted, err := st.DeleteChannel(ctx, ch.ID); err != nil || deleted {
		t.Errorf("DeleteChannel again = %v, %v; want false", deleted, err)
	}
	if _, err := st.Channel(ctx, ch.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Channel of a deleted channel: %v, want ErrNotFound", err)
	}
	if _, _, err := st.UpdateChannel(ctx, ch.ID, "zombie", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateChannel of a deleted channel: %v, want ErrNotFound", err)
	}
	if cs, _ := st.ChannelsFor(ctx, alice.ID, Cursor{}, 10); names(cs) != "[taken:owner]" {
		t.Errorf("listed after the delete: %s", names(cs))
	}
	if _, err := st.CreateChannel(ctx, "again", model.KindPublic, alice.ID); err != nil {
		t.Errorf("the deleted channel's name is not free: %v", err)
	}
}

// A channel's name is unique among public channels only: nobody learns from a
// conflict that a private channel has a name, and the list pages by (name, id) through
// channels of one name without losing or repeating any.
func contractPrivateNames(t *testing.T, open func() Store) {
	st := open()
	ctx := ctxT(t)
	alice, bob := mustUser(t, st, "alice"), mustUser(t, st, "bob")
	secret, err := st.CreateChannel(ctx, "secret", model.KindPrivate, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what, kind, by string
		want           error
	}{
		{"a public channel under a private one's name", model.KindPublic, alice.ID, nil},
		{"a second public channel of that name", model.KindPublic, bob.ID, ErrConflict},
		{"a second private channel of that name", model.KindPrivate, bob.ID, nil},
	} {
		if _, err := st.CreateChannel(ctx, "secret", tc.kind, tc.by); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.what, err, tc.want)
		}
	}
	pub := mustChannel(t, st, "lobby", alice.ID)
	if _, _, err := st.UpdateChannel(ctx, pub.ID, "secret", nil); !errors.Is(err, ErrConflict) {
		t.Errorf("renaming a public channel to a public one's name: %v, want ErrConflict", err)
	}
	if _, _, err := st.UpdateChannel(ctx, secret.ID, "lobby", nil); err != nil {
		t.Errorf("renaming a private channel to a public one's name: %v", err)
	}
	if c, err := st.EnsureChannel(ctx, "lobby"); err != nil || c.ID != pub.ID {
		t.Errorf("EnsureChannel(lobby) = %+v, %v; want the public channel %s", c, err, pub.ID)
	}

	all, err := st.ChannelsFor(ctx, bob.ID, Cursor{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if names(all) != "[lobby:owner lobby secret secret:owner]" {
		t.Fatalf("bob's list = %s", names(all))
	}
	if cs, _ := st.ChannelsFor(ctx, alice.ID, Cursor{}, 100); names(cs) != "[lobby:owner secret:owner]" {
		t.Errorf("alice sees %s, want only the public ones", names(cs))
	}
	var paged []model.Channel
	for after := (Cursor{}); len(paged) <= len(all); {
		page, err := st.ChannelsFor(ctx, bob.ID, after, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = CursorAfter(page[0])
	}
	if fmt.Sprint(channelIDs(paged)) != fmt.Sprint(channelIDs(all)) {
		t.Errorf("pages of one = %v, want %v", channelIDs(paged), channelIDs(all))
	}
	if cs, _ := st.ChannelsFor(ctx, bob.ID, Cursor{Name: "lobby"}, 100); names(cs) != "[secret secret:owner]" {
		t.Errorf("after the name lobby alone = %s, want past every lobby", names(cs))
	}
}

func channelIDs(cs []model.Channel) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}
