package engineio

// The HTTP long-polling transport: the handshake GET, a held GET that takes what is
// queued (poll), and POSTs that carry the client's packets (receivePost).

import (
	"errors"
	"io"
	"net/http"
	"time"
	"unicode/utf8"
)

// openPolling answers a handshake GET with the open packet and starts the session.
func (s *Server) openPolling(w http.ResponseWriter, r *http.Request, ip string) {
	c := s.register(TransportPolling, r, ip)
	writePollResponse(w, []string{s.openPacket([]string{TransportWebSocket}, c.ID)})
	c.startHeartbeat()
}

// writePollResponse writes packets as one payload, binary ones in base64.
func writePollResponse(w http.ResponseWriter, packets []string) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	for i, p := range packets {
		if i > 0 {
			_, _ = io.WriteString(w, separator)
		}
		_, _ = io.WriteString(w, pollingForm(p))
	}
}

// upgradeGrace is how long a poll that arrives after the upgrade's probe waits for
// the upgrade packet, which usually follows the probe at once.
const upgradeGrace = 100 * time.Millisecond

// poll answers a long-polling GET with whatever is queued, waiting until something is.
func (s *Server) poll(w http.ResponseWriter, r *http.Request, c *Conn) {
	c.mu.Lock()
	if !c.awaitUpgrade(r) {
		c.mu.Unlock()
		return
	}
	release, ok := claim(w, c, &c.pollActive, "polls")
	if !ok {
		return
	}
	defer release()
	// A poll is held until the next ping, which may be longer than the HTTP server's
	// read and write timeouts (Go's server cancels a request whose connection passes
	// its read deadline): this request gets until then.
	rc := http.NewResponseController(w)
	holdUntil := time.Now().Add(s.cfg.PingInterval + s.cfg.PingTimeout)
	_ = rc.SetReadDeadline(holdUntil)
	_ = rc.SetWriteDeadline(holdUntil.Add(s.cfg.WriteTimeout))
	for {
		c.mu.Lock()
		if len(c.queue) > 0 && !c.isClosed() {
			batch := c.takeQueue(s.cfg.MaxPayload, maxPollPackets)
			c.mu.Unlock()
			writePollResponse(w, batch)
			return
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.pollWake:
			writePollResponse(w, []string{string(Noop)})
			return
		case <-c.closed:
			// The client's own close packet ends its pending poll with a noop, as the
			// reference server does; a close by the server is announced. What was queued
			// before that close (a reason the application sent, such as session:end) goes
			// first, in a response of its own: socket.io-client hands a payload's events to
			// the application a tick later, after a close packet in the same payload has
			// already torn the socket down, and they would be lost.
			out, last := []string{string(Close)}, true
			c.mu.Lock()
			switch {
			case c.reason == ReasonClientClose:
				out = []string{string(Noop)}
			case c.closing && len(c.queue) > 0:
				out, last = c.takeQueue(s.cfg.MaxPayload, maxPollPackets), false
			}
			c.mu.Unlock()
			writePollResponse(w, out)
			if last {
				s.remove(c) // a poll that raced the close packet was the last one
			}
			return
		case <-r.Context().Done():
			return
		}
	}
}

// awaitUpgrade holds a poll that arrives while the session is upgrading until the
// upgrade's outcome decides it: refused (by claim) if the session moved to the
// websocket, served as usual if not. The websocket's frames and this request race
// each other, so the probe and the upgrade packet a client sent before this poll may
// not have been read yet. Before the probe is answered the poll is served at once
// if something is queued; after it, the client has paused polling, so the poll waits
// a short grace for the upgrade packet. It returns false if the request ended.
// Called and returns with c.mu held.
func (c *Conn) awaitUpgrade(r *http.Request) bool {
	var grace <-chan time.Time
	for c.upgrading && !c.isClosed() {
		end, probe := c.upgradeEnd, c.probeDone
		switch {
		case c.probed:
			probe = nil
			if grace == nil {
				grace = time.After(upgradeGrace)
			}
		case len(c.queue) > 0:
			return true
		}
		c.mu.Unlock()
		select {
		case <-end:
		case <-probe:
		case <-c.notify: // the loop reads the queue itself, so the signal is not lost
		case <-c.closed:
		case <-grace:
			c.mu.Lock()
			return true
		case <-r.Context().Done():
			c.mu.Lock()
			return false
		}
		c.mu.Lock()
	}
	return true
}

func (s *Server) receivePost(w http.ResponseWriter, r *http.Request, c *Conn) {
	c.mu.Lock()
	if c.isClosed() {
		c.mu.Unlock()
		httpError(w, http.StatusBadRequest, codeUnknownSID, "Session closed")
		return
	}
	release, ok := claim(w, c, &c.postActive, "writes")
	if !ok {
		return
	}
	defer release()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxPayload)))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			httpError(w, http.StatusRequestEntityTooLarge, codeBadRequest, "Payload too large")
			c.close(ReasonTooLarge, false)
			return
		}
		httpError(w, http.StatusBadRequest, codeBadRequest, "Bad request body")
		return
	}
	if !utf8.Valid(body) {
		httpError(w, http.StatusBadRequest, codeBadRequest, "Payload is not valid UTF-8")
		c.close(ReasonInvalidUTF8, false)
		return
	}
	packets, err := DecodePayload(string(body))
	if err != nil {
		httpError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		c.close(ReasonProtocolError, false)
		return
	}
	for _, p := range packets {
		if p.Type == Upgrade || p.Type == Open {
			c.close(ReasonProtocolError, false)
			break
		}
		c.handlePacket(p)
	}
	w.Header().Set("Content-Type", "text/html")
	_, _ = io.WriteString(w, "ok")
}

// claim takes a polling session's one slot for a kind of request (a held poll, or a
// POST; active is its flag) and returns what frees it. A request on an upgraded
// session is refused (400); a second one of a kind at the same time means a confused
// or hostile client and ends the session. Called with c.mu held; it unlocks it.
func claim(w http.ResponseWriter, c *Conn, active *bool, what string) (release func(), ok bool) {
	if c.transport != TransportPolling {
		c.mu.Unlock()
		httpError(w, http.StatusBadRequest, codeBadRequest, "Transport was upgraded")
		return nil, false
	}
	if *active {
		c.mu.Unlock()
		httpError(w, http.StatusBadRequest, codeBadRequest, "Overlapping "+what)
		c.close(ReasonProtocolError, false)
		return nil, false
	}
	*active = true
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		*active = false
		c.mu.Unlock()
	}, true
}
