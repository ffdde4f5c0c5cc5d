// Package httpapi serves the REST part of Quibly: registration, login, channels and
// message history. Every response, errors included, is JSON.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/auth"
	"github.com/quibly/quibly/app/internal/clientip"
	"github.com/quibly/quibly/app/internal/limit"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/store"
)

// DefaultMaxBodyBytes applies when Config.MaxBodyBytes is not positive. The largest
// legitimate body is a 72-byte password plus a username.
const DefaultMaxBodyBytes = 16 << 10

// Config configures the API.
type Config struct {
	// MaxBodyBytes caps request bodies; larger ones get 413 "too_large".
	MaxBodyBytes int64
	// AuthPerIP limits register and login attempts per client address, AuthPerUser
	// login attempts per username; the zero Spec is no limit.
	AuthPerIP, AuthPerUser limit.Spec
	// ClientIP finds the client's address behind the load balancer.
	ClientIP clientip.Resolver
	// HashSlots bounds the bcrypt computations running at once, so a login flood
	// cannot take every core from chat; 0 is half the cores (at least one). HashWait is
	// how long a login or register waits for a slot before it is refused as
	// rate_limited (0: DefaultHashWait).
	HashSlots int
	HashWait  time.Duration
	// ChannelsPerUser limits channel creation per user, ChannelsPerNode on the node
	// over every user; the zero Spec is no limit.
	ChannelsPerUser, ChannelsPerNode limit.Spec
	// Revoked is called after a logout revoked the caller's tokens, to end the
	// user's open sockets (on every node); nil does nothing.
	Revoked func(ctx context.Context, userID string) error
	// DMsPerUser limits the direct-message channels a user opens; the zero Spec is
	// no limit.
	DMsPerUser limit.Spec
	// MaxMembers bounds a channel's members; 0 is no bound.
	MaxMembers int
	// MembershipChanged is called after a membership changed, to tell the channel in
	// its order (and to take a removed member's open sockets out of it, on every
	// node); nil does nothing.
	MembershipChanged func(ctx context.Context, change model.MemberChange) error
	// ChannelChanged is called after a channel was renamed, (un)archived or deleted,
	// to tell it in its order; nil does nothing.
	ChannelChanged func(ctx context.Context, change model.ChannelChange) error
}

// withDefaults fills the fields left zero that have a default; the zero limits are
// "no limit".
func (c Config) withDefaults() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.HashSlots <= 0 {
		c.HashSlots = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if c.HashWait <= 0 {
		c.HashWait = DefaultHashWait
	}
	// Addresses and usernames are the client's to choose: keep their buckets bounded.
	for _, s := range []*limit.Spec{&c.AuthPerIP, &c.AuthPerUser} {
		if s.MaxKeys == 0 {
			s.MaxKeys = limit.DefaultMaxKeys
		}
	}
	return c
}

// DefaultHashWait is how long a login or register waits for a bcrypt slot before it
// is refused as rate_limited.
const DefaultHashWait = 3 * time.Second

// API holds the handlers. Create it with New and mount it with Register.
type API struct {
	maxBody int64
	st      store.Store
	au      *auth.Auth
	log     *slog.Logger
	// dummyHash is checked against when a login names an unknown user, so the
	// response time does not reveal which usernames exist.
	dummyHash func() string
	// checkPassword is auth.CheckPassword; tests count its calls.
	checkPassword func(hash, pw string) bool

	clientIP           clientip.Resolver
	perIP, perUsername *limit.Keyed
	hashSlots          chan struct{}
	hashWait           time.Duration
	// channelsPerUser and channelsPerNode (one key) limit channel creation.
	channelsPerUser, channelsPerNode *limit.Keyed
	revoked                          func(ctx context.Context, userID string) error
	dmsPerUser                       *limit.Keyed
	maxMembers                       int
	membershipChanged                func(ctx context.Context, change model.MemberChange) error
	channelChanged                   func(ctx context.Context, change model.ChannelChange) error
}

// New returns an API over st and au; both are required. A nil log discards.
func New(cfg Config, st store.Store, au *auth.Auth, log *slog.Logger) *API {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{
		clientIP:          cfg.ClientIP,
		perIP:             limit.NewKeyed(cfg.AuthPerIP),
		perUsername:       limit.NewKeyed(cfg.AuthPerUser),
		channelsPerUser:   limit.NewKeyed(cfg.ChannelsPerUser),
		channelsPerNode:   limit.NewKeyed(cfg.ChannelsPerNode),
		revoked:           cfg.Revoked,
		dmsPerUser:        limit.NewKeyed(cfg.DMsPerUser),
		maxMembers:        cfg.MaxMembers,
		membershipChanged: cfg.MembershipChanged,
		channelChanged:    cfg.ChannelChanged,
		hashSlots:         make(chan struct{}, cfg.HashSlots),
		hashWait:          cfg.HashWait,
		maxBody:           cfg.MaxBodyBytes,
		st:                st,
		au:                au,
		log:               log,
		checkPassword:     auth.CheckPassword,
		dummyHash: sync.OnceValue(func() string {
			h, _ := auth.HashPassword("quibly-timing-equaliser") // only ever compared against
			return h
		}),
	}
}

// Register mounts the routes on mux. Besides the API routes it claims /api/ so that
// unknown paths and wrong methods under it also answer in JSON.
func (a *API) Register(mux *http.ServeMux) {
	routes := []struct {
		method, path string
		h            handlerFunc
		authed       bool
	}{
		{http.MethodPost, "/api/auth/register", a.register, false},
		{http.MethodPost, "/api/auth/login", a.login, false},
		{http.MethodPost, "/api/auth/logout", a.logout, true},
		{http.MethodGet, "/api/channels", a.listChannels, true},
		{http.MethodPost, "/api/channels", a.createChannel, true},
		{http.MethodGet, "/api/channels/{id}/messages", a.messages, true},
		{http.MethodGet, "/api/channels/{id}/messages/{messageId}/replies", a.replies, true},
		{http.MethodGet, "/api/channels/{id}/reads", a.reads, true},
		{http.MethodGet, "/api/channels/{id}", a.getChannel, true},
		{http.MethodPatch, "/api/channels/{id}", a.updateChannel, true},
		{http.MethodDelete, "/api/channels/{id}", a.deleteChannel, true},
		{http.MethodGet, "/api/channels/{id}/members", a.listMembers, true},
		{http.MethodPost, "/api/channels/{id}/members", a.addMemberByName, true},
		{http.MethodPut, "/api/channels/{id}/members/{userId}", a.putMember, true},
		{http.MethodDelete, "/api/channels/{id}/members/{userId}", a.deleteMember, true},
		{http.MethodPost, "/api/dms", a.openDM, true},
	}
	allowed := map[string][]string{}
	var paths []string
	for _, rt := range routes {
		h := rt.h
		if rt.authed {
			h = a.requireUser(h)
		}
		mux.Handle(rt.method+" "+rt.path, a.serve(h))
		if _, seen := allowed[rt.path]; !seen {
			paths = append(paths, rt.path)
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	// A method-less pattern is less specific than "POST /x", so it only catches the
	// methods not registered above.
	for _, p := range paths {
		mux.Handle(p, a.serve(methodNotAllowed(allowed[p])))
	}
	mux.Handle("/api/", a.serve(func(w http.ResponseWriter, r *http.Request) error {
		return apperr.New(apperr.NotFound, "no API route %s %s", r.Method, r.URL.Path)
	}))
}

// handlerFunc writes its success response itself and returns any failure.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// serve adapts h: API responses carry tokens and private data, so they are never
// cached, and a returned error becomes a JSON error response.
func (a *API) serve(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if err := h(w, r); err != nil {
			a.fail(w, r, err)
		}
	})
}

// fail logs errors that are not the client's doing and writes the error response.
// Only method, path and the error are logged: bodies hold passwords, headers tokens.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apperr.Error
	if !errors.As(err, &ae) {
		if r.Context().Err() != nil {
			// The client went away; not an outage worth an error line.
			a.log.Debug("request abandoned", "method", r.Method, "path", r.URL.Path, "err", err)
		} else {
			a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
	}
	WriteError(w, err)
}

func methodNotAllowed(methods []string) handlerFunc {
	allow := strings.Join(methods, ", ")
	return func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Allow", allow)
		// No apperr code maps to 405, so the status is set here; the body keeps the
		// usual envelope with code "invalid".
		WriteJSON(w, http.StatusMethodNotAllowed, apperr.Body{Error: apperr.New(apperr.Invalid,
			"method %s is not allowed on %s; use %s", r.Method, r.URL.Path, allow)})
		return nil
	}
}

type userKey struct{}

// requireUser admits requests with a valid "Authorization: Bearer <jwt>" header and
// passes the token's user on in the context.
func (a *API) requireUser(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		scheme, token, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="quibly"`)
			return apperr.New(apperr.Unauthorized, "missing bearer token: send Authorization: Bearer <token>")
		}
		u, err := a.au.ParseToken(token)
		if err == nil {
			err = auth.Current(r.Context(), a.st, u)
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="quibly", error="invalid_token"`)
			return err
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	}
}

// userFrom returns the user requireUser admitted.
func userFrom(ctx context.Context) model.User {
	u, _ := ctx.Value(userKey{}).(model.User)
	return u
}

// allow takes a token from lim's bucket for key, or refuses with rate_limited and a
// Retry-After header.
func allow(w http.ResponseWriter, lim *limit.Keyed, key, what string) error {
	ok, wait := lim.Allow(key)
	if ok {
		return nil
	}
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return apperr.New(apperr.RateLimited, "too many %s; retry in %d s", what, secs)
}

// withHashSlot runs fn (bcrypt work) once one of the slots is free, or refuses when
// none frees up in time.
func (a *API) withHashSlot(w http.ResponseWriter, r *http.Request, fn func()) error {
	t := time.NewTimer(a.hashWait)
	defer t.Stop()
	select {
	case a.hashSlots <- struct{}{}:
	case <-t.C:
		w.Header().Set("Retry-After", "1")
		return apperr.New(apperr.RateLimited, "the server is busy with logins; retry in a second")
	case <-r.Context().Done():
		return r.Context().Err()
	}
	defer func() { <-a.hashSlots }()
	fn()
	return nil
}
