package httpapi

import (
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/auth"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/store"
)

// Input limits (docs/REFERENCE.md, HTTP API).
const (
	minPasswordBytes = 8
	maxPasswordBytes = auth.MaxPasswordBytes
	defaultPageSize  = 50
	maxPageSize      = 100
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
	if err := allow(w, a.perIP, a.clientIP.IP(r), "login and register attempts from your address"); err != nil {
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
	if err := allow(w, a.perIP, a.clientIP.IP(r), "login and register attempts from your address"); err != nil {
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
	if err := a.st.RevokeTokens(r.Context(), userFrom(r.Context()).ID); err != nil {
		return err
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

func (a *API) listChannels(w http.ResponseWriter, r *http.Request) error {
	cs, err := a.st.Channels(r.Context())
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []model.Channel{} // [] not null
	}
	WriteJSON(w, http.StatusOK, map[string]any{"channels": cs})
	return nil
}

func (a *API) createChannel(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(w, r, a.maxBody, &req); err != nil {
		return err
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		return apperr.New(apperr.Invalid, "channel name is required")
	}
	if !channelNameRE.MatchString(name) {
		return apperr.New(apperr.Invalid, "channel name must be 1 to 64 characters: lowercase letters, digits, '-' or '_'")
	}
	c, err := a.st.CreateChannel(r.Context(), name, userFrom(r.Context()).ID)
	if errors.Is(err, store.ErrConflict) {
		return apperr.New(apperr.Conflict, "channel %q already exists", name)
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
	// Ids are UUIDs; parsing also canonicalises them, so the store compares like
	// with like, and a non-UUID simply names no channel.
	cid, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return apperr.New(apperr.NotFound, "channel not found")
	}
	q := r.URL.Query()
	limit := defaultPageSize
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			return apperr.New(apperr.Invalid, "limit must be an integer from 1 to %d", maxPageSize)
		}
		limit = n
	}
	before := ""
	if s := q.Get("before"); s != "" {
		b, err := uuid.Parse(s)
		if err != nil {
			return apperr.New(apperr.Invalid, "before must be a message id")
		}
		before = b.String()
	}
	if _, err := a.st.Channel(r.Context(), cid.String()); errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.NotFound, "channel not found")
	} else if err != nil {
		return err
	}
	msgs, err := a.st.Messages(r.Context(), cid.String(), before, limit)
	if err != nil {
		return err
	}
	resp := messagesResponse{Messages: make([]model.WireMessage, 0, len(msgs))}
	for _, m := range msgs {
		resp.Messages = append(resp.Messages, m.Wire())
	}
	if len(msgs) == limit { // a full page: there may be older messages
		next := msgs[len(msgs)-1].ID
		resp.NextBefore = &next
	}
	WriteJSON(w, http.StatusOK, resp)
	return nil
}
