package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/auth"
	"github.com/quibly/quibly/app/internal/clientip"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/store"
)

// Input limits (docs/REFERENCE.md, HTTP API).
const (
	minPasswordBytes = 8
	maxPasswordBytes = auth.MaxPasswordBytes
	defaultPageSize  = 50
	maxPageSize      = 100
	// A page of the channel list: the web client shows one and asks for more.
	defaultChannelPage = 100
	maxChannelPage     = 200
	maxChannelName     = 64
)

var (
	usernameRE    = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,32}$`)
	channelNameRE = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)
)

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type authResponse struct {
	Token string     `json:"token"`
	User  model.User `json:"user"`
}

// badLogin is the one answer for unknown users and wrong passwords alike, so the
// endpoint cannot be used to discover usernames.
var badLogin = apperr.New(apperr.Unauthorized, "invalid username or password")

func (a *API) register(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, a.perIP, clientip.LimitKey(a.clientIP.IP(r)), "login and register attempts from your address"); err != nil {
		return err
	}
	var req credentials
	if err := decodeJSON(w, r, a.maxBody, &req); err != nil {
		return err
	}
	if !usernameRE.MatchString(req.Username) {
		return apperr.New(apperr.Invalid, "username must be 3 to 32 characters: letters, digits, '_', '.' or '-'")
	}
	if n := len(req.Password); n < minPasswordBytes || n > maxPasswordBytes {
		return apperr.New(apperr.Invalid, "password must be %d to %d bytes long", minPasswordBytes, maxPasswordBytes)
	}
	var hash string
	var err error
	if slotErr := a.withHashSlot(w, r, func() { hash, err = auth.HashPassword(req.Password) }); slotErr != nil {
		return slotErr
	}
	if err != nil {
		return err
	}
	u, err := a.st.CreateUser(r.Context(), req.Username, hash)
	if errors.Is(err, store.ErrConflict) {
		return apperr.New(apperr.Conflict, "username %q is taken", req.Username)
	}
	if err != nil {
		return err
	}
	return a.writeToken(w, http.StatusCreated, u)
}

func (a *API) login(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, a.perIP, clientip.LimitKey(a.clientIP.IP(r)), "login and register attempts from your address"); err != nil {
		return err
	}
	var req credentials
	if err := decodeJSON(w, r, a.maxBody, &req); err != nil {
		return err
	}
	if req.Username == "" || req.Password == "" {
		return apperr.New(apperr.Invalid, "username and password are required")
	}
	// Per username whether it exists or not, so the limit reveals nothing either.
	if err := allow(w, a.perUsername, strings.ToLower(req.Username), "login attempts for this username"); err != nil {
		return err
	}
	u, hash, err := a.st.UserByName(r.Context(), req.Username)
	if errors.Is(err, store.ErrNotFound) {
		hash, err = a.dummyHash(), nil // same cost as a real check
	}
	if err != nil {
		return err
	}
	// Every path costs one bcrypt check, whatever the password's length.
	var ok bool
	if err := a.withHashSlot(w, r, func() { ok = a.checkPassword(hash, req.Password) }); err != nil {
		return err
	}
	if !ok || u.ID == "" {
		return badLogin
	}
	return a.writeToken(w, http.StatusOK, u)
}

// logout revokes every token of the caller (all its devices): they are refused from
// now on, on REST and on connect.
func (a *API) logout(w http.ResponseWriter, r *http.Request) error {
	id := userFrom(r.Context()).ID
	if err := a.st.RevokeTokens(r.Context(), id); err != nil {
		return err
	}
	// The tokens are revoked whatever happens next; a socket the bus could not reach
	// ends at its token's expiry or its next reconnect.
	if a.revoked != nil {
		if err := a.revoked(r.Context(), id); err != nil {
			a.log.Warn("ending the sockets of a user who logged out failed", "err", err)
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) writeToken(w http.ResponseWriter, status int, u model.User) error {
	tok, err := a.au.IssueToken(u)
	if err != nil {
		return err
	}
	WriteJSON(w, status, authResponse{Token: tok, User: u})
	return nil
}

// pageLimit reads a page's ?limit=: def when absent, else an integer from 1 to max.
func pageLimit(q url.Values, def, max int) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, apperr.New(apperr.Invalid, "limit must be an integer from 1 to %d", max)
	}
	return n, nil
}

// listedChannel is a channel of the list with the caller's read state in it.
type listedChannel struct {
	model.Channel
	model.Unread
}

type channelsResponse struct {
	Channels []listedChannel `json:"channels"`
	// NextAfter and NextAfterID are the cursor of the next page (the last name and id
	// of this one); null when this page is the last. Names are unique among public
	// channels only, so a name alone is not a place in the list.
	NextAfter   *string `json:"nextAfter"`
	NextAfterID *string `json:"nextAfterId"`
}

// listChannels pages the channels by name, then id: ?limit= (1 to maxChannelPage),
// ?after= and ?afterId= (the nextAfter and nextAfterId of the page before; after
// alone starts past every channel of that name).
func (a *API) listChannels(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := pageLimit(q, defaultChannelPage, maxChannelPage)
	if err != nil {
		return err
	}
	after := store.Cursor{Name: q.Get("after")}
	if len(after.Name) > maxChannelName {
		return apperr.New(apperr.Invalid, "after must be a channel name (the nextAfter of the previous page)")
	}
	if s := q.Get("afterId"); s != "" {
		id, err := uuid.Parse(s)
		if err != nil {
			return apperr.New(apperr.Invalid, "afterId must be a channel id (the nextAfterId of the previous page)")
		}
		after.ID = id.String()
	}
	cs, err := a.st.ChannelsFor(r.Context(), userFrom(r.Context()).ID, after, limit)
	if err != nil {
		return err
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	unread, err := a.st.Unread(r.Context(), userFrom(r.Context()).ID, ids)
	if err != nil {
		return err
	}
	resp := channelsResponse{Channels: make([]listedChannel, len(cs))} // [] not null
	for i, c := range cs {
		resp.Channels[i] = listedChannel{Channel: c, Unread: unread[c.ID]}
	}
	if len(cs) == limit { // a full page: there may be more
		next := store.CursorAfter(cs[len(cs)-1])
		resp.NextAfter, resp.NextAfterID = &next.Name, &next.ID
	}
	WriteJSON(w, http.StatusOK, resp)
	return nil
}

func (a *API) createChannel(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name    string `json:"name"`
		Private bool   `json:"private"`
	}
	if err := decodeJSON(w, r, a.maxBody, &req); err != nil {
		return err
	}
	kind := model.KindPublic
	if req.Private {
		kind = model.KindPrivate
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		return apperr.New(apperr.Invalid, "channel name is required")
	}
	if !channelNameRE.MatchString(name) {
		return apperr.New(apperr.Invalid, "channel name must be 1 to 64 characters: lowercase letters, digits, '-' or '_'")
	}
	uid := userFrom(r.Context()).ID
	if err := allow(w, a.channelsPerUser, uid, "channels created by you"); err != nil {
		return err
	}
	if err := allow(w, a.channelsPerNode, "", "channels created on this server"); err != nil {
		return err
	}
	c, err := a.st.CreateChannel(r.Context(), name, kind, uid)
	if errors.Is(err, store.ErrConflict) {
		// Names are unique over every channel, private ones included: the answer
		// does not say which kind has it.
		return apperr.New(apperr.Conflict, "the channel name %q is taken", name)
	}
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusCreated, map[string]any{"channel": c})
	return nil
}

type messagesResponse struct {
	Messages   []model.WireMessage `json:"messages"`
	NextBefore *string             `json:"nextBefore"` // null: no older page
}

func (a *API) messages(w http.ResponseWriter, r *http.Request) error {
	return a.messagePage(w, r, "")
}

// replies pages the thread of one message: the messages that reply to it.
func (a *API) replies(w http.ResponseWriter, r *http.Request) error {
	parent, err := uuid.Parse(r.PathValue("messageId"))
	if err != nil {
		return apperr.New(apperr.NotFound, "no such message")
	}
	return a.messagePage(w, r, parent.String())
}

// messagePage answers a page of a channel's history (parent "") or of a thread,
// newest first (?limit=, ?before= a message id), each message as it now is, with its
// reactions as the caller sees them.
func (a *API) messagePage(w http.ResponseWriter, r *http.Request, parent string) error {
	// A private channel the caller is not a member of is not found, as is a
	// channel that does not exist.
	c, _, err := a.visibleChannel(r.Context(), r.PathValue("id"), userFrom(r.Context()).ID)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit, err := pageLimit(q, defaultPageSize, maxPageSize)
	if err != nil {
		return err
	}
	before := ""
	if s := q.Get("before"); s != "" {
		b, err := uuid.Parse(s)
		if err != nil {
			return apperr.New(apperr.Invalid, "before must be a message id")
		}
		before = b.String()
	}
	var msgs []model.Message
	if parent == "" {
		msgs, err = a.st.Messages(r.Context(), c.ID, before, limit)
	} else {
		msgs, err = a.st.Replies(r.Context(), c.ID, parent, before, limit)
	}
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if m.Kind == "" && !m.Deleted {
			ids = append(ids, m.ID)
		}
	}
	reactions, err := a.st.Reactions(r.Context(), userFrom(r.Context()).ID, ids)
	if err != nil {
		return err
	}
	resp := messagesResponse{Messages: make([]model.WireMessage, 0, len(msgs))}
	for _, m := range msgs {
		m.Reactions = reactions[m.ID]
		resp.Messages = append(resp.Messages, m.Wire())
	}
	if len(msgs) == limit { // a full page: there may be older messages
		next := msgs[len(msgs)-1].ID
		resp.NextBefore = &next
	}
	WriteJSON(w, http.StatusOK, resp)
	return nil
}

// reads lists how far the channel's members have read it ("seen by"), furthest
// first, for a private channel or DM small enough for read receipts
// (model.ReceiptMembers); receipts is false, with no list, elsewhere.
func (a *API) reads(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.visibleChannel(r.Context(), r.PathValue("id"), userFrom(r.Context()).ID)
	if err != nil {
		return err
	}
	resp := struct {
		Receipts bool               `json:"receipts"`
		Reads    []model.ReadMarker `json:"reads"`
	}{Reads: []model.ReadMarker{}}
	if resp.Receipts, err = store.Receipts(r.Context(), a.st, c.ID, c.Kind); err != nil {
		return err
	}
	if resp.Receipts {
		if resp.Reads, err = a.st.ReadMarkers(r.Context(), c.ID, model.ReceiptMembers); err != nil {
			return err
		}
	}
	WriteJSON(w, http.StatusOK, resp)
	return nil
}
