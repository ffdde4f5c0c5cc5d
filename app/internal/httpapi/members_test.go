package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/quibly/quibly/app/internal/model"
)

// people registers users on f and returns name → {id, bearer}.
func people(t *testing.T, f *fixture, names ...string) map[string]struct{ id, bearer string } {
	t.Helper()
	out := map[string]struct{ id, bearer string }{"alice": {f.alice.ID, f.bearer()}}
	for _, n := range names {
		var reg authResponse
		f.mustJSON(t, "POST", "/api/auth/register", "", fmt.Sprintf(`{"username":%q,"password":"password-of-%s"}`, n, n), 201, &reg)
		out[n] = struct{ id, bearer string }{reg.User.ID, "Bearer " + reg.Token}
	}
	return out
}

// A private channel does not exist for a non-member: not in the list, its history,
// its members and every change of it answer not_found, as for an id nobody made.
func TestPrivateChannelIsInvisibleToNonMembers(t *testing.T) {
	f := newFixture(t)
	p := people(t, f, "bob")
	var made struct{ Channel model.Channel }
	f.mustJSON(t, "POST", "/api/channels", f.bearer(), `{"name":"secret","private":true}`, 201, &made)
	if made.Channel.Kind != model.KindPrivate || made.Channel.Role != model.RoleOwner {
		t.Fatalf("created %+v", made.Channel)
	}
	var list struct{ Channels []model.Channel }
	f.mustJSON(t, "GET", "/api/channels", p["bob"].bearer, "", 200, &list)
	for _, c := range list.Channels {
		if c.ID == made.Channel.ID {
			t.Fatal("a non-member sees the private channel in the list")
		}
	}
	unknown := "/api/channels/01900000-0000-7000-8000-000000000000"
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "", ""},
		{"PATCH", "", `{"name":"mine"}`},
		{"DELETE", "", ""},
		{"GET", "/messages", ""},
		{"GET", "/members", ""},
		{"PUT", "/members/" + p["bob"].id, `{"role":"member"}`},
		{"DELETE", "/members/" + f.alice.ID, ""},
	} {
		secret := f.do(t, tc.method, "/api/channels/"+made.Channel.ID+tc.path, p["bob"].bearer, tc.body, false)
		none := f.do(t, tc.method, unknown+tc.path, p["bob"].bearer, tc.body, false)
		if secret.status != 404 || string(secret.body) != string(none.body) {
			t.Errorf("%s %s by a non-member: %d %s; for no channel at all: %d %s", tc.method, tc.path, secret.status, secret.body, none.status, none.body)
		}
	}
	// Nor does a name give it away: a public channel renamed to the private channel's
	// name, or another private one made under it, is not refused (a second public one is).
	var other struct{ Channel model.Channel }
	f.mustJSON(t, "POST", "/api/channels", p["bob"].bearer, `{"name":"other"}`, 201, &other)
	f.mustJSON(t, "PATCH", "/api/channels/"+other.Channel.ID, p["bob"].bearer, `{"name":"secret"}`, 200, nil)
	f.mustJSON(t, "POST", "/api/channels", p["bob"].bearer, `{"name":"secret","private":true}`, 201, nil)
	f.mustJSON(t, "POST", "/api/channels", p["bob"].bearer, `{"name":"secret"}`, 409, nil) // bob's renamed one
	// A member sees it all.
	f.mustJSON(t, "PUT", "/api/channels/"+made.Channel.ID+"/members/"+p["bob"].id, f.bearer(), `{"role":"member"}`, 201, nil)
	f.mustJSON(t, "GET", "/api/channels/"+made.Channel.ID+"/messages", p["bob"].bearer, "", 200, nil)
	f.mustJSON(t, "GET", "/api/channels", p["bob"].bearer, "", 200, &list)
	found := false
	for _, c := range list.Channels {
		found = found || (c.ID == made.Channel.ID && c.Role == model.RoleMember && c.Kind == model.KindPrivate)
	}
	if !found {
		t.Fatalf("the new member does not see the channel with its role: %+v", list.Channels)
	}
}

// Roles decide who may change whom; each allowed change is told to the channel once,
// a repeated one answers without a change.
func TestMembershipChangesByRole(t *testing.T) {
	var mu sync.Mutex
	var told []string
	f := newFixture(t, func(c *Config) {
		c.MembershipChanged = func(_ context.Context, ch model.MemberChange) error {
			mu.Lock()
			defer mu.Unlock()
			told = append(told, ch.Event+" "+ch.Username+" "+ch.Role)
			return nil
		}
	})
	p := people(t, f, "bob", "carol", "dave")
	var made struct{ Channel model.Channel }
	f.mustJSON(t, "POST", "/api/channels", f.bearer(), `{"name":"team","private":true}`, 201, &made)
	members := "/api/channels/" + made.Channel.ID + "/members/"
	steps := []struct {
		name, who, method, target, body string
		want                            int
	}{
		{"the owner adds bob", "alice", "PUT", "bob", `{"role":"member"}`, 201},
		{"again: no change", "alice", "PUT", "bob", `{"role":"member"}`, 200},
		{"a member may not add", "bob", "PUT", "carol", `{}`, 403},
		{"the owner makes bob admin", "alice", "PUT", "bob", `{"role":"admin"}`, 200},
		{"an admin adds carol", "bob", "PUT", "carol", `{}`, 201},
		{"an admin may not make an owner", "bob", "PUT", "carol", `{"role":"owner"}`, 403},
		{"an admin may not remove the owner", "bob", "DELETE", "alice", ``, 403},
		{"the last owner may not leave", "alice", "DELETE", "alice", ``, 403},
		{"nor step down", "alice", "PUT", "alice", `{"role":"member"}`, 403},
		{"an unknown role", "alice", "PUT", "carol", `{"role":"king"}`, 400},
		{"an unknown user", "alice", "PUT", "nobody", `{}`, 404},
		{"an unknown username", "alice", "POST", "nobody", `{"username":"nobody"}`, 404},
		{"ownership handed over", "alice", "PUT", "carol", `{"role":"owner"}`, 200},
		{"then the old owner may leave", "alice", "DELETE", "alice", ``, 204},
		{"an admin removes a member", "bob", "POST", "dave", `{"username":"dave"}`, 201},
		{"", "bob", "DELETE", "dave", ``, 204},
		{"removing a non-member again", "bob", "DELETE", "dave", ``, 204},
		{"a member leaves", "bob", "DELETE", "bob", ``, 204},
	}
	for _, st := range steps {
		target := "01900000-0000-7000-8000-000000000001"
		if u, ok := p[st.target]; ok {
			target = u.id
		}
		path := members + target
		if st.method == "POST" { // by username
			path = strings.TrimSuffix(members, "/")
		}
		res := f.do(t, st.method, path, p[st.who].bearer, st.body, false)
		if res.status != st.want {
			t.Fatalf("%s (%s %s %s): %d %s, want %d", st.name, st.who, st.method, st.target, res.status, res.body, st.want)
		}
	}
	want := []string{
		"member:join bob member", "member:update bob admin", "member:join carol member",
		"member:update carol owner", "member:leave alice ", "member:join dave member", "member:leave dave ", "member:leave bob ",
	}
	if strings.Join(told, "|") != strings.Join(want, "|") {
		t.Errorf("told the channel:\n%s\nwant\n%s", strings.Join(told, "\n"), strings.Join(want, "\n"))
	}
}

// A DM is one channel for its two users whichever asks, private to them, and never
// gains members; one with oneself is a notes channel; an unknown user is not found.
func TestDirectMessages(t *testing.T) {
	f := newFixture(t)
	p := people(t, f, "bob", "carol")
	var ab, ba struct{ Channel model.Channel }
	f.mustJSON(t, "POST", "/api/dms", f.bearer(), `{"username":"bob"}`, 201, &ab)
	f.mustJSON(t, "POST", "/api/dms", p["bob"].bearer, fmt.Sprintf(`{"userId":%q}`, f.alice.ID), 200, &ba)
	if ab.Channel.ID != ba.Channel.ID || ab.Channel.Kind != model.KindDM {
		t.Fatalf("alice's DM %+v, bob's %+v: want one DM channel", ab.Channel, ba.Channel)
	}
	f.mustJSON(t, "POST", "/api/dms", f.bearer(), fmt.Sprintf(`{"userId":%q}`, f.alice.ID), 201, nil)
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"username":"nobody"}`, 404},
		{`{"userId":"01900000-0000-7000-8000-000000000002"}`, 404},
		{`{"userId":"not-an-id"}`, 404},
		{`{}`, 400},
		{`{"username":"bob","userId":"x"}`, 400},
	} {
		if res := f.do(t, "POST", "/api/dms", f.bearer(), tc.body, false); res.status != tc.want {
			t.Errorf("POST /api/dms %s: %d %s, want %d", tc.body, res.status, res.body, tc.want)
		}
	}
	if res := f.do(t, "GET", "/api/channels/"+ab.Channel.ID+"/messages", p["carol"].bearer, "", false); res.status != http.StatusNotFound {
		t.Errorf("a third user reads the DM: %d", res.status)
	}
	if res := f.do(t, "PUT", "/api/channels/"+ab.Channel.ID+"/members/"+p["carol"].id, f.bearer(), `{}`, false); res.status != http.StatusForbidden {
		t.Errorf("a DM gains a member: %d %s", res.status, res.body)
	}
}

// Owners rename, archive and delete; each change is told once; a DM is neither
// renamed, archived nor deleted; a deleted channel is gone from every route.
func TestChannelLife(t *testing.T) {
	var told []string
	f := newFixture(t, func(c *Config) {
		c.ChannelChanged = func(_ context.Context, ch model.ChannelChange) error {
			told = append(told, fmt.Sprintf("%s %s %v", ch.Event, ch.Name, ch.Archived))
			return nil
		}
	})
	p := people(t, f, "bob")
	var made struct{ Channel model.Channel }
	f.mustJSON(t, "POST", "/api/channels", f.bearer(), `{"name":"plans"}`, 201, &made)
	var dm struct{ Channel model.Channel }
	f.mustJSON(t, "POST", "/api/dms", f.bearer(), `{"username":"bob"}`, 201, &dm)
	path := "/api/channels/" + made.Channel.ID
	for _, st := range []struct {
		name, who, method, path, body string
		want                          int
	}{
		{"a non-owner may not rename", "bob", "PATCH", path, `{"name":"mine"}`, 403},
		{"nothing to change", "alice", "PATCH", path, `{}`, 400},
		{"a bad name", "alice", "PATCH", path, `{"name":"Bad Name"}`, 400},
		{"a taken name", "alice", "PATCH", path, `{"name":"random"}`, 409},
		{"rename", "alice", "PATCH", path, `{"name":"plans-2"}`, 200},
		{"archive", "alice", "PATCH", path, `{"archived":true}`, 200},
		{"archive again: no change", "alice", "PATCH", path, `{"archived":true}`, 200},
		{"history stays readable", "bob", "GET", path + "/messages", ``, 200},
		{"a DM is not archived", "alice", "PATCH", "/api/channels/" + dm.Channel.ID, `{"archived":true}`, 400},
		{"nor deleted", "alice", "DELETE", "/api/channels/" + dm.Channel.ID, ``, 400},
		{"a non-owner may not delete", "bob", "DELETE", path, ``, 403},
		{"the system channel has no owner", "alice", "DELETE", "/api/channels/" + f.general.ID, ``, 403},
		{"delete", "alice", "DELETE", path, ``, 204},
		{"gone: history", "alice", "GET", path + "/messages", ``, 404},
		{"gone: a change", "alice", "PATCH", path, `{"name":"plans-3"}`, 404},
		{"gone: a second delete", "alice", "DELETE", path, ``, 404},
	} {
		if res := f.do(t, st.method, st.path, p[st.who].bearer, st.body, false); res.status != st.want {
			t.Fatalf("%s: %d %s, want %d", st.name, res.status, res.body, st.want)
		}
	}
	want := []string{"channel:update plans-2 false", "channel:update plans-2 true", "channel:delete plans-2 false"}
	if fmt.Sprint(told) != fmt.Sprint(want) {
		t.Errorf("told %v, want %v", told, want)
	}
	// The name is free again.
	f.mustJSON(t, "POST", "/api/channels", f.bearer(), `{"name":"plans-2"}`, 201, nil)
}

// History shows each message as it now is: an edit's text and time, a deleted one as
// a tombstone, reactions counted with the caller's own marked; the entries of those
// changes are not listed.
func TestHistoryShowsEditsDeletionsAndReactions(t *testing.T) {
	f := newFixture(t)
	p := people(t, f, "bob")
	ctx := context.Background()
	edited, gone := f.history[3], f.history[4]
	entry := func(kind, by string, data any) model.Message {
		raw, _ := json.Marshal(data)
		id, _ := uuid.NewV7()
		return model.Message{ID: id.String(), ChannelID: f.general.ID, AuthorID: by, Kind: kind, Data: raw, CreatedAt: time.Now()}
	}
	if _, err := f.st.WriteMessages(ctx, []model.Message{
		entry(model.EventMessageUpdate, f.alice.ID, model.MessageEdit{ID: edited.ID, ChannelID: f.general.ID, Text: "better", EditedAt: 1234}),
		entry(model.EventReaction, p["bob"].id, model.Reaction{MessageID: edited.ID, ChannelID: f.general.ID, Emoji: "👍", UserID: p["bob"].id, Op: model.ReactionAdd}),
		entry(model.EventReaction, f.alice.ID, model.Reaction{MessageID: edited.ID, ChannelID: f.general.ID, Emoji: "👍", UserID: f.alice.ID, Op: model.ReactionAdd}),
		entry(model.EventMessageDelete, f.alice.ID, model.MessageDeletion{ID: gone.ID, ChannelID: f.general.ID}),
	}); err != nil {
		t.Fatal(err)
	}
	var page struct{ Messages []map[string]any }
	for _, who := range []struct{ name, bearer, me string }{{"alice", f.bearer(), "true"}, {"bob", p["bob"].bearer, "true"}} {
		f.mustJSON(t, "GET", "/api/channels/"+f.general.ID+"/messages", who.bearer, "", 200, &page)
		if len(page.Messages) != len(f.history) {
			t.Fatalf("%s: %d entries, want the %d messages only", who.name, len(page.Messages), len(f.history))
		}
		newest, next := page.Messages[0], page.Messages[1]
		if newest["id"] != gone.ID || newest["deleted"] != true || newest["text"] != "" || newest["author"] != "" {
			t.Errorf("%s: the deleted message reads %v", who.name, newest)
		}
		if next["id"] != edited.ID || next["text"] != "better" || next["editedAt"] != float64(1234) {
			t.Errorf("%s: the edited message reads %v", who.name, next)
		}
		if got := fmt.Sprint(next["reactions"]); got != "[map[count:2 emoji:👍 me:"+who.me+"]]" {
			t.Errorf("%s: reactions %s", who.name, got)
		}
	}
}

// The channel list carries each channel's unread and mention counts and the caller's
// marker; a thread pages its replies; reads lists markers in a small private channel
// and none in a public one.
func TestUnreadThreadsAndReads(t *testing.T) {
	f := newFixture(t)
	p := people(t, f, "bob")
	ctx := context.Background()
	var priv struct{ Channel model.Channel }
	f.mustJSON(t, "POST", "/api/channels", f.bearer(), `{"name":"plans","private":true}`, 201, &priv)
	f.mustJSON(t, "PUT", "/api/channels/"+priv.Channel.ID+"/members/"+p["bob"].id, f.bearer(), `{"role":"member"}`, 201, nil)
	newID := func() string { id, _ := uuid.NewV7(); return id.String() }
	parent := model.Message{ID: newID(), ChannelID: priv.Channel.ID, AuthorID: f.alice.ID, Author: "alice", Text: "q", CreatedAt: time.Now()}
	reply := model.Message{ID: newID(), ChannelID: priv.Channel.ID, AuthorID: f.alice.ID, Author: "alice", Text: "@bob a", CreatedAt: time.Now(),
		ReplyTo: parent.ID, Mentions: []string{p["bob"].id}}
	mark, _ := json.Marshal(model.ReadMarker{ChannelID: priv.Channel.ID, UserID: f.alice.ID, MessageID: reply.ID})
	read := model.Message{ID: newID(), ChannelID: priv.Channel.ID, AuthorID: f.alice.ID, Kind: model.EventRead, Data: mark, CreatedAt: time.Now()}
	if _, err := f.st.WriteMessages(ctx, []model.Message{parent, reply, read}); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Channels []struct {
			ID       string `json:"id"`
			Unread   int    `json:"unread"`
			Mentions int    `json:"mentions"`
			Marker   string `json:"marker"`
		}
	}
	f.mustJSON(t, "GET", "/api/channels", p["bob"].bearer, "", 200, &list)
	found := false
	for _, c := range list.Channels {
		if c.ID == priv.Channel.ID {
			found = true
			if c.Unread != 2 || c.Mentions != 1 || c.Marker != "" {
				t.Errorf("bob's plans: %+v, want 2 unread, 1 mention, no marker", c)
			}
		}
	}
	if !found {
		t.Fatal("plans is not in bob's list")
	}
	var thread struct{ Messages []model.WireMessage }
	f.mustJSON(t, "GET", "/api/channels/"+priv.Channel.ID+"/messages/"+parent.ID+"/replies", p["bob"].bearer, "", 200, &thread)
	if len(thread.Messages) != 1 || thread.Messages[0].ID != reply.ID || thread.Messages[0].ReplyTo != parent.ID {
		t.Errorf("the thread: %+v", thread.Messages)
	}
	f.mustJSON(t, "GET", "/api/channels/"+priv.Channel.ID+"/messages/nope/replies", p["bob"].bearer, "", 404, nil)
	var reads struct {
		Receipts bool
		Reads    []model.ReadMarker
	}
	f.mustJSON(t, "GET", "/api/channels/"+priv.Channel.ID+"/reads", p["bob"].bearer, "", 200, &reads)
	if !reads.Receipts || len(reads.Reads) != 1 || reads.Reads[0].UserID != f.alice.ID || reads.Reads[0].MessageID != reply.ID {
		t.Errorf("reads of plans: %+v", reads)
	}
	f.mustJSON(t, "GET", "/api/channels/"+f.general.ID+"/reads", p["bob"].bearer, "", 200, &reads)
	if reads.Receipts || len(reads.Reads) != 0 {
		t.Errorf("reads of a public channel: %+v, want no receipts", reads)
	}
	outsider := people(t, f, "carol")["carol"]
	f.mustJSON(t, "GET", "/api/channels/"+priv.Channel.ID+"/reads", outsider.bearer, "", 404, nil)
	f.mustJSON(t, "GET", "/api/channels/"+priv.Channel.ID+"/messages/"+parent.ID+"/replies", outsider.bearer, "", 404, nil)
}
