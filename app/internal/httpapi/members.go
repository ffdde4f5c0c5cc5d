package httpapi

// Who may see and change a channel: direct-message channels, the members of a
// channel and their roles. A private channel or DM is invisible to a non-member:
// every route answers not_found for it, as for a channel that does not exist.

import (
	"context"
	"errors"
	"net/http"

	"github.com/google/uuid"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/store"
)

var errNoChannel = apperr.New(apperr.NotFound, "channel not found")

// visibleChannel returns the channel id names and the caller's role in it ("" for
// none), or not_found when there is no such channel or the caller may not see it.
func (a *API) visibleChannel(ctx context.Context, id, userID string) (model.Channel, string, error) {
	// Parsing also canonicalises the id, so the store compares like with like; a
	// non-UUID names no channel.
	cid, err := uuid.Parse(id)
	if err != nil {
		return model.Channel{}, "", errNoChannel
	}
	c, err := a.st.Channel(ctx, cid.String())
	if errors.Is(err, store.ErrNotFound) {
		return model.Channel{}, "", errNoChannel
	}
	if err != nil {
		return model.Channel{}, "", err
	}
	role, err := a.st.Member(ctx, c.ID, userID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if c.Kind != model.KindPublic {
			return model.Channel{}, "", errNoChannel
		}
		role = ""
	case err != nil:
		return model.Channel{}, "", err
	}
	return c, role, nil
}

// openDM answers POST /api/dms {username} or {userId}: the one DM channel of the
// caller and that user (201 when it was made now, 200 when it existed).
func (a *API) openDM(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Username string `json:"username"`
		UserID   string `json:"userId"`
	}
	if err := decodeJSON(w, r, a.maxBody, &req); err != nil {
		return err
	}
	me := userFrom(r.Context())
	other := req.UserID
	switch {
	case req.Username != "" && other != "":
		return apperr.New(apperr.Invalid, "give username or userId, not both")
	case req.Username != "":
		u, _, err := a.st.UserByName(r.Context(), req.Username)
		if errors.Is(err, store.ErrNotFound) {
			return apperr.New(apperr.NotFound, "no user %q", clip(req.Username))
		}
		if err != nil {
			return err
		}
		other = u.ID
	case other == "":
		return apperr.New(apperr.Invalid, "username or userId is required")
	}
	if id, err := uuid.Parse(other); err != nil || id.String() != other {
		return apperr.New(apperr.NotFound, "no user with id %q", clip(other))
	}
	if err := allow(w, a.dmsPerUser, me.ID, "direct messages opened by you"); err != nil {
		return err
	}
	c, created, err := a.st.DirectChannel(r.Context(), me.ID, other)
	if errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.NotFound, "no user with id %q", other)
	}
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	WriteJSON(w, status, map[string]any{"channel": c})
	return nil
}

// listMembers answers GET /api/channels/{id}/members.
func (a *API) listMembers(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.visibleChannel(r.Context(), r.PathValue("id"), userFrom(r.Context()).ID)
	if err != nil {
		return err
	}
	ms, err := a.st.Members(r.Context(), c.ID)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, map[string]any{"members": ms})
	return nil
}

// addMemberByName answers POST /api/channels/{id}/members {username, role}: PUT by
// username, for a client that knows a name (an invite) and not an id.
func (a *API) addMemberByName(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Username string `json:"username"`
		Role     string `json:"role"`
	}
	if err := decodeJSON(w, r, a.maxBody, &req); err != nil {
		return err
	}
	if req.Username == "" {
		return apperr.New(apperr.Invalid, "username is required")
	}
	// The channel first: a non-member learns nothing, not even whether the user exists.
	if _, _, err := a.visibleChannel(r.Context(), r.PathValue("id"), userFrom(r.Context()).ID); err != nil {
		return err
	}
	u, _, err := a.st.UserByName(r.Context(), req.Username)
	if errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.NotFound, "no user %q", clip(req.Username))
	}
	if err != nil {
		return err
	}
	r.SetPathValue("userId", u.ID)
	return a.setMember(w, r, req.Role)
}

// putMember answers PUT /api/channels/{id}/members/{userId} {role}: adds the user
// with that role, or gives a member that role (owners and admins; see mayChange).
func (a *API) putMember(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Role string `json:"role"`
	}
	if err := decodeJSON(w, r, a.maxBody, &req); err != nil {
		return err
	}
	return a.setMember(w, r, req.Role)
}

func (a *API) setMember(w http.ResponseWriter, r *http.Request, role string) error {
	req := struct{ Role string }{role}
	if req.Role == "" {
		req.Role = model.RoleMember
	}
	if req.Role != model.RoleOwner && req.Role != model.RoleAdmin && req.Role != model.RoleMember {
		return apperr.New(apperr.Invalid, "role must be owner, admin or member")
	}
	me := userFrom(r.Context())
	c, myRole, target, targetRole, ms, err := a.memberRequest(r)
	if err != nil {
		return err
	}
	if err := mayChange(c, myRole, targetRole, req.Role, lastOwner(ms, targetRole)); err != nil {
		return err
	}
	if targetRole == "" && a.maxMembers > 0 && len(ms) >= a.maxMembers {
		return apperr.New(apperr.Forbidden, "a channel may have at most %d members", a.maxMembers)
	}
	changed, err := a.st.SetMember(r.Context(), c.ID, target, req.Role)
	if errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.NotFound, "no user with id %q", target)
	}
	if err != nil {
		return err
	}
	status := http.StatusOK
	if targetRole == "" {
		status = http.StatusCreated
	}
	if changed {
		event, name := model.EventMemberUpdate, memberName(ms, target)
		if targetRole == "" { // a new member: its name is in the list from now on
			event = model.EventMemberJoin
			if now, err := a.st.Members(r.Context(), c.ID); err == nil {
				name = memberName(now, target)
			}
		}
		tell(a, r.Context(), a.membershipChanged, model.MemberChange{ChannelID: c.ID, UserID: target, Username: name,
			Role: req.Role, By: me.ID, ByName: me.Username, Event: event}, event)
	}
	WriteJSON(w, status, map[string]any{"member": map[string]string{"userId": target, "role": req.Role}, "changed": changed})
	return nil
}

// deleteMember answers DELETE /api/channels/{id}/members/{userId}: owners and admins
// remove members, owners anyone, and every member may remove itself (leave). The
// user's open sockets leave the channel on every node.
func (a *API) deleteMember(w http.ResponseWriter, r *http.Request) error {
	me := userFrom(r.Context())
	c, myRole, target, targetRole, ms, err := a.memberRequest(r)
	if err != nil {
		return err
	}
	if err := mayRemove(c, me.ID, myRole, target, targetRole, lastOwner(ms, targetRole)); err != nil {
		return err
	}
	if targetRole != "" {
		name := memberName(ms, target)
		removed, err := a.st.RemoveMember(r.Context(), c.ID, target)
		if err != nil {
			return err
		}
		if removed {
			tell(a, r.Context(), a.membershipChanged, model.MemberChange{ChannelID: c.ID, UserID: target, Username: name,
				By: me.ID, ByName: me.Username, Event: model.EventMemberLeave}, model.EventMemberLeave)
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// tell hands a change of a channel (its membership, or itself) to the hub through
// hand (nil: nobody listens). The store has the change already, so a failure is
// logged, not answered: if the bus cannot take it, a removed member's sockets lose
// the channel at their next reconnect (recovery checks membership) and members learn
// of the change from the list.
func tell[C any](a *API, ctx context.Context, hand func(context.Context, C) error, change C, event string) {
	if hand == nil {
		return
	}
	if err := hand(ctx, change); err != nil {
		a.log.Warn("telling a channel of its change failed", "event", event, "err", err)
	}
}

// memberName is the username of userID among members ms ("" if not there): the
// members a change is told to see a name, not only an id.
func memberName(ms []model.Member, userID string) string {
	for _, m := range ms {
		if m.UserID == userID {
			return m.Username
		}
	}
	return ""
}

// memberRequest reads a members route: the channel (visible to the caller), the
// caller's role, the target user and its current role ("" for none), and the
// channel's members, which the rules and the told change need.
func (a *API) memberRequest(r *http.Request) (c model.Channel, myRole, target, targetRole string, ms []model.Member, err error) {
	me := userFrom(r.Context())
	c, myRole, err = a.visibleChannel(r.Context(), r.PathValue("id"), me.ID)
	if err != nil {
		return
	}
	u, perr := uuid.Parse(r.PathValue("userId"))
	if perr != nil {
		err = apperr.New(apperr.NotFound, "no user with id %q", clip(r.PathValue("userId")))
		return
	}
	target = u.String()
	if ms, err = a.st.Members(r.Context(), c.ID); err != nil {
		return
	}
	for _, m := range ms {
		if m.UserID == target {
			targetRole = m.Role
		}
	}
	return
}

// lastOwner reports whether a member of role targetRole is the only owner among ms.
func lastOwner(ms []model.Member, targetRole string) bool {
	if targetRole != model.RoleOwner {
		return false
	}
	owners := 0
	for _, m := range ms {
		if m.Role == model.RoleOwner {
			owners++
		}
	}
	return owners <= 1
}

var errLastOwner = apperr.New(apperr.Forbidden, "the last owner hands ownership to another member first")

// mayChange says whether a caller with myRole may give target (now targetRole, ""
// for none) the role role in c; last is true when target is c's only owner.
func mayChange(c model.Channel, myRole, targetRole, role string, last bool) error {
	switch {
	case c.Kind == model.KindDM:
		return apperr.New(apperr.Forbidden, "a direct-message channel cannot gain members or roles")
	case myRole != model.RoleOwner && myRole != model.RoleAdmin:
		return apperr.New(apperr.Forbidden, "only the channel's owners and admins may change its members")
	case (role == model.RoleOwner || targetRole == model.RoleOwner) && myRole != model.RoleOwner:
		return apperr.New(apperr.Forbidden, "only an owner may make or change an owner")
	case last && role != model.RoleOwner:
		return errLastOwner
	}
	return nil
}

// mayRemove says whether a caller with myRole may remove target (now targetRole)
// from c; last is true when target is c's only owner. Every member may leave.
func mayRemove(c model.Channel, me, myRole, target, targetRole string, last bool) error {
	switch {
	case c.Kind == model.KindDM:
		return apperr.New(apperr.Forbidden, "a direct-message channel cannot lose members")
	case last:
		return errLastOwner
	case target == me:
		return nil
	case myRole == model.RoleOwner:
		return nil
	case myRole == model.RoleAdmin && (targetRole == model.RoleMember || targetRole == ""):
		return nil
	case myRole == model.RoleAdmin:
		return apperr.New(apperr.Forbidden, "an admin may remove members, not admins or owners")
	default:
		return apperr.New(apperr.Forbidden, "only the channel's owners and admins may remove others")
	}
}

// clip shortens what a client sent before it is quoted in an error.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}

// getChannel answers GET /api/channels/{id}: the channel, with the caller's role.
func (a *API) getChannel(w http.ResponseWriter, r *http.Request) error {
	c, role, err := a.visibleChannel(r.Context(), r.PathValue("id"), userFrom(r.Context()).ID)
	if err != nil {
		return err
	}
	c.Role = role
	WriteJSON(w, http.StatusOK, map[string]any{"channel": c})
	return nil
}

// updateChannel answers PATCH /api/channels/{id} {name, archived}: an owner renames
// (name) or archives (archived: true; false unarchives) a channel; 200 {channel,
// changed}. A DM has no name of its own and is never archived.
func (a *API) updateChannel(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name     string `json:"name"`
		Archived *bool  `json:"archived"`
	}
	if err := decodeJSON(w, r, a.maxBody, &req); err != nil {
		return err
	}
	me := userFrom(r.Context())
	c, myRole, err := a.visibleChannel(r.Context(), r.PathValue("id"), me.ID)
	if err != nil {
		return err
	}
	switch {
	case c.Kind == model.KindDM:
		return apperr.New(apperr.Invalid, "a direct-message channel cannot be renamed or archived")
	case req.Name == "" && req.Archived == nil:
		return apperr.New(apperr.Invalid, "give a new name, archived, or both")
	case req.Name != "" && !channelNameRE.MatchString(req.Name):
		return apperr.New(apperr.Invalid, "channel name must be 1 to 64 characters: lowercase letters, digits, '-' or '_'")
	case myRole != model.RoleOwner:
		return apperr.New(apperr.Forbidden, "only the channel's owners may rename or archive it")
	}
	updated, changed, err := a.st.UpdateChannel(r.Context(), c.ID, req.Name, req.Archived)
	switch {
	case errors.Is(err, store.ErrConflict):
		return apperr.New(apperr.Conflict, "the channel name %q is taken", req.Name)
	case errors.Is(err, store.ErrNotFound):
		return errNoChannel
	case err != nil:
		return err
	}
	if changed {
		tell(a, r.Context(), a.channelChanged, model.ChannelChange{ChannelID: c.ID, Name: updated.Name, Archived: updated.Archived,
			By: me.ID, ByName: me.Username, Event: model.EventChannelUpdate}, model.EventChannelUpdate)
	}
	updated.Role = myRole
	WriteJSON(w, http.StatusOK, map[string]any{"channel": updated, "changed": changed})
	return nil
}

// deleteChannel answers DELETE /api/channels/{id}: an owner deletes a channel for
// everyone (204); its members are told, then it is gone.
func (a *API) deleteChannel(w http.ResponseWriter, r *http.Request) error {
	me := userFrom(r.Context())
	c, myRole, err := a.visibleChannel(r.Context(), r.PathValue("id"), me.ID)
	if err != nil {
		return err
	}
	switch {
	case c.Kind == model.KindDM:
		return apperr.New(apperr.Invalid, "a direct-message channel cannot be deleted")
	case myRole != model.RoleOwner:
		return apperr.New(apperr.Forbidden, "only the channel's owners may delete it")
	}
	deleted, err := a.st.DeleteChannel(r.Context(), c.ID)
	if err != nil {
		return err
	}
	if deleted {
		tell(a, r.Context(), a.channelChanged, model.ChannelChange{ChannelID: c.ID, Name: c.Name,
			By: me.ID, ByName: me.Username, Event: model.EventChannelDelete}, model.EventChannelDelete)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
