package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Targets: which server the tool drives.
const (
	TargetQuibly = "quibly" // registers users (JWT auth) and creates channels over REST
	TargetPeer   = "peer"   // the reference Node server: no auth, any channel id
)

// Config describes one fan-out run.
type Config struct {
	URLs      []string      // base http URLs; connection i uses URLs[i%len]
	Target    string        // TargetQuibly or TargetPeer
	Conns     int           // connections to open
	Channels  int           // channels; connection i joins channel i%Channels
	Senders   int           // connections that send (the first Senders); 0 = one per channel
	Rate      float64       // total messages/s over all senders; 0 = as fast as acks allow
	Window    int           // in-flight sends per sender when Rate is 0
	Duration  time.Duration // measured time
	Warmup    time.Duration // sending before the measurement starts
	Users     int           // Quibly users to register and share among connections
	SourceIPs int           // spread connections over 127.0.0.1..127.0.0.SourceIPs (0 or 1: no binding)
	TextBytes int           // approximate message text size
	Dial      int           // connections opened concurrently
	Idle      bool          // connect and join only, then hold until ctx ends
	ReadyFile string        // idle: written (with the Result so far) once every connection is up
	Label     string        // free text copied into the result
	// Mix is the share of sends (0 to 0.5) that change a message instead of sending one:
	// in turn an edit of the sender's last message, a reaction added to it, the same
	// reaction removed, and a read marker at it (Quibly only).
	Mix float64
	// CPUPrograms are process names (comm) whose CPU time over the measured window
	// is reported, summed per name (Linux /proc).
	CPUPrograms []string
	// MetricsURLs are the nodes' base URLs whose stage histograms (/metrics) are read
	// before and after the measured window (Quibly only).
	MetricsURLs []string
	// ProfileURL, when set, is a node's net/http/pprof base URL: a CPU profile of the
	// measured window is taken there and written to ProfileOut.
	ProfileURL, ProfileOut string
	Progress               io.Writer // one line a second; nil: silent
}

func (c *Config) defaults() error {
	if len(c.URLs) == 0 {
		return errors.New("load: no URL")
	}
	if c.Target == "" {
		c.Target = TargetQuibly
	}
	if c.Target != TargetQuibly && c.Target != TargetPeer {
		return fmt.Errorf("load: target must be %q or %q", TargetQuibly, TargetPeer)
	}
	if c.Conns <= 0 {
		return errors.New("load: need at least one connection")
	}
	if c.Channels <= 0 {
		c.Channels = 1
	}
	if c.Channels > c.Conns {
		c.Channels = c.Conns
	}
	if c.Senders <= 0 {
		c.Senders = c.Channels
	}
	if c.Senders > c.Conns {
		c.Senders = c.Conns
	}
	if c.Window <= 0 {
		c.Window = 1
	}
	if c.Users <= 0 {
		c.Users = 50
	}
	if c.Users > c.Conns {
		c.Users = c.Conns
	}
	if c.Dial <= 0 {
		c.Dial = 64
	}
	if c.TextBytes < 40 {
		c.TextBytes = 40
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Mix < 0 || c.Mix > 0.5 || (c.Mix > 0 && c.Target != TargetQuibly) {
		return errors.New("load: -mix is a share from 0 to 0.5, for Quibly only")
	}
	return nil
}

// Result is what a run measured. Latencies count only messages sent inside the
// measured window; deliveries/s is those messages' deliveries over the window.
type Result struct {
	Label      string    `json:"label,omitempty"`
	Target     string    `json:"target"`
	URLs       []string  `json:"urls"`
	Started    time.Time `json:"started"`
	Conns      int       `json:"conns"`
	Connected  int       `json:"connected"`
	Joined     int       `json:"joined"`
	Channels   int       `json:"channels"`
	Senders    int       `json:"senders"`
	Rate       float64   `json:"rate"` // asked; 0 = max
	Window     int       `json:"window"`
	DurationS  float64   `json:"duration_s"`
	ConnectS   float64   `json:"connect_s"`
	Sent       int64     `json:"sent"`
	Acked      int64     `json:"acked"`
	AckErrors  int64     `json:"ack_errors"`
	Lost       int64     `json:"lost"` // acks that never came
	Deliveries int64     `json:"deliveries"`
	// Changes are the sends of the window that changed a message (Config.Mix), and
	// ChangeDeliveries the change events (message:update, reaction, read) received
	// in the window.
	Changes          int64            `json:"changes"`
	ChangeDeliveries int64            `json:"change_deliveries"`
	Expected         int64            `json:"expected_deliveries"`
	Missing          int64            `json:"missing_deliveries"`
	SendsPerS        float64          `json:"sends_per_s"`
	AcksPerS         float64          `json:"acks_per_s"`
	DelivPerS        float64          `json:"deliveries_per_s"`
	Ack              Latency          `json:"ack_latency"`
	Delivery         Latency          `json:"delivery_latency"`
	Errors           map[string]int64 `json:"errors,omitempty"`
	Disconnects      int64            `json:"disconnects"`
	// CPUSeconds is the CPU time each of Config.CPUPrograms used in the window.
	CPUSeconds map[string]float64 `json:"cpu_s,omitempty"`
	// Stages is the servers' own view of the window, per stage (Config.MetricsURLs).
	Stages map[string]Stage `json:"stages,omitempty"`
}

type runner struct {
	cfg     Config
	conns   []*Conn
	channel []string // channel id per channel index
	members []atomic.Int64

	measureFrom, measureTo atomic.Int64 // unix ns; sends in [from, to) count

	sent, acked, ackErr, lost, deliv, expected atomic.Int64
	changes, changeDeliv                       atomic.Int64
	totalDeliv, totalAcks, totalSent           atomic.Int64
	disconnects                                atomic.Int64
	ackH, delH                                 *Hist

	emu    sync.Mutex
	errors map[string]int64
}

func (r *runner) errorf(kind string) {
	r.emu.Lock()
	r.errors[kind]++
	r.emu.Unlock()
}

// Run performs one run and returns what it measured.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, ackH: NewHist(), delH: NewHist(), errors: map[string]int64{},
		members: make([]atomic.Int64, cfg.Channels)}
	r.measureFrom.Store(1<<62 - 1)
	r.measureTo.Store(1<<62 - 1)
	res := &Result{Label: cfg.Label, Target: cfg.Target, URLs: cfg.URLs, Started: time.Now().UTC(), Conns: cfg.Conns,
		Channels: cfg.Channels, Senders: cfg.Senders, Rate: cfg.Rate, Window: cfg.Window}

	tokens, err := r.setup(ctx)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	stopProgress := r.progress(ctx, "connect")
	r.connect(ctx, tokens)
	stopProgress()
	res.ConnectS = time.Since(t0).Seconds()
	defer func() {
		for _, c := range r.conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	for _, c := range r.conns {
		if c != nil {
			res.Connected++
		}
	}
	for i := range r.members {
		res.Joined += int(r.members[i].Load())
	}
	if res.Connected == 0 {
		return res, fmt.Errorf("load: no connection could be opened (%v)", r.errors)
	}
	if cfg.Idle {
		if cfg.ReadyFile != "" {
			b, _ := json.Marshal(res)
			if err := os.WriteFile(cfg.ReadyFile, b, 0o644); err != nil {
				return res, err
			}
		}
		r.logf("idle: %d connected, %d joined; holding until stopped", res.Connected, res.Joined)
		<-ctx.Done()
		res.Disconnects = r.disconnects.Load()
		res.Errors = r.errors
		return res, nil
	}

	sctx, stopSending := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := 0; i < cfg.Senders; i++ {
		if r.conns[i] == nil {
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r.sender(sctx, i)
		}(i)
	}
	stopProgress = r.progress(ctx, "run")
	abort := func(err error) (*Result, error) {
		stopSending()
		stopProgress()
		return nil, err
	}
	sleep(ctx, cfg.Warmup)
	stagesFrom, err := r.stages(ctx)
	if err != nil {
		return abort(err)
	}
	cpuFrom, err := programCPU(cfg.CPUPrograms)
	if err != nil {
		return abort(err)
	}
	from := time.Now()
	r.measureFrom.Store(from.UnixNano())
	profiled := r.profileWindow(ctx)
	sleep(ctx, cfg.Duration)
	to := time.Now()
	r.measureTo.Store(to.UnixNano())
	cpuTo, err := programCPU(cfg.CPUPrograms)
	if err != nil {
		return abort(err)
	}
	stagesTo, err := r.stages(ctx)
	if err == nil {
		err = <-profiled
	}
	if err != nil {
		return abort(err)
	}
	if stagesTo != nil {
		res.Stages = stagesBetween(stagesFrom, stagesTo)
	}
	for name, s := range cpuTo {
		if res.CPUSeconds == nil {
			res.CPUSeconds = map[string]float64{}
		}
		res.CPUSeconds[name] = s - cpuFrom[name]
	}
	stopSending()
	wg.Wait()
	// Let the last acks and deliveries of the window arrive.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if r.acked.Load()+r.ackErr.Load()+r.lost.Load() >= r.sent.Load() && r.deliv.Load() >= r.expected.Load() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopProgress()
	win := to.Sub(from).Seconds()
	res.DurationS = win
	res.Sent, res.Acked, res.AckErrors = r.sent.Load(), r.acked.Load(), r.ackErr.Load()
	res.Lost = res.Sent - res.Acked - res.AckErrors
	res.Deliveries, res.Expected = r.deliv.Load(), r.expected.Load()
	res.Changes, res.ChangeDeliveries = r.changes.Load(), r.changeDeliv.Load()
	if res.Expected > res.Deliveries {
		res.Missing = res.Expected - res.Deliveries
	}
	res.SendsPerS = float64(res.Sent) / win
	res.AcksPerS = float64(res.Acked) / win
	res.DelivPerS = float64(res.Deliveries) / win
	res.Ack, res.Delivery = r.ackH.Summary(), r.delH.Summary()
	res.Disconnects = r.disconnects.Load()
	r.emu.Lock()
	res.Errors = r.errors
	r.emu.Unlock()
	return res, ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, format+"\n", args...)
	}
}

// progress prints counters once a second until the returned func is called.
func (r *runner) progress(ctx context.Context, phase string) func() {
	if r.cfg.Progress == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		start := time.Now()
		var lastS, lastA, lastD int64
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			s, a, d := r.totalSent.Load(), r.totalAcks.Load(), r.totalDeliv.Load()
			conns := 0
			for i := range r.members {
				conns += int(r.members[i].Load())
			}
			r.emu.Lock()
			nerr := int64(0)
			for _, n := range r.errors {
				nerr += n
			}
			r.emu.Unlock()
			fmt.Fprintf(r.cfg.Progress, "[%s %4.0fs] joined %d/%d  sent/s %d  acks/s %d  deliveries/s %d  errors %d\n",
				phase, time.Since(start).Seconds(), conns, r.cfg.Conns, s-lastS, a-lastA, d-lastD, nerr)
			lastS, lastA, lastD = s, a, d
		}
	}()
	return func() { cancel(); <-done }
}

// setup registers Quibly users and creates the channels; it returns one token per user.
func (r *runner) setup(ctx context.Context) ([]string, error) {
	r.channel = make([]string, r.cfg.Channels)
	run := strconv.FormatInt(time.Now().UnixNano()%1e10, 36)
	if r.cfg.Target == TargetPeer {
		for i := range r.channel {
			r.channel[i] = "bench-" + run + "-" + strconv.Itoa(i)
		}
		return []string{""}, nil
	}
	base := strings.TrimRight(r.cfg.URLs[0], "/")
	hc := &http.Client{Timeout: 60 * time.Second}
	tokens := make([]string, r.cfg.Users)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	sem := make(chan struct{}, 8)
	t0 := time.Now()
	for i := range tokens {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var out struct {
				Token string `json:"token"`
			}
			body := fmt.Sprintf(`{"username":"ql%su%d","password":"bench-password-%s"}`, run, i, run)
			err := postJSON(ctx, hc, base+"/api/auth/register", "", body, &out)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("registering a user: %w", err)
			}
			tokens[i] = out.Token
		}(i)
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	r.logf("registered %d users in %.1fs", len(tokens), time.Since(t0).Seconds())
	for i := range r.channel {
		var out struct {
			Channel struct {
				ID string `json:"id"`
			} `json:"channel"`
		}
		body := fmt.Sprintf(`{"name":"bench-%s-%d"}`, run, i)
		// Spread over the users: a server limits the channels one user creates
		// (CHANNELS_PER_USER_HOUR).
		if err := postJSON(ctx, hc, base+"/api/channels", tokens[i%len(tokens)], body, &out); err != nil {
			return nil, fmt.Errorf("creating a channel: %w", err)
		}
		r.channel[i] = out.Channel.ID
	}
	return tokens, nil
}

func postJSON(ctx context.Context, hc *http.Client, url, token, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, trunc(b))
	}
	return json.Unmarshal(b, out)
}

// connect opens every connection and joins its channel, Dial at a time.
func (r *runner) connect(ctx context.Context, tokens []string) {
	r.conns = make([]*Conn, r.cfg.Conns)
	wsURLs := make([]string, len(r.cfg.URLs))
	for i, u := range r.cfg.URLs {
		w, err := SocketURL(u)
		if err != nil {
			r.errorf("bad url")
			return
		}
		wsURLs[i] = w
	}
	ips := max(r.cfg.SourceIPs, 1)
	dialers := make([]*websocket.Dialer, ips)
	for i := range dialers {
		var ip net.IP
		if r.cfg.SourceIPs > 1 {
			ip = net.IPv4(127, 0, 0, byte(1+i))
		}
		dialers[i] = Dialer(ip)
	}
	sem := make(chan struct{}, r.cfg.Dial)
	var wg sync.WaitGroup
	for i := 0; i < r.cfg.Conns && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			ch := i % r.cfg.Channels
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			c, err := Dial(dctx, dialers[i%ips], wsURLs[i%len(wsURLs)], tokens[i%len(tokens)], r.onEvent(i))
			if err != nil {
				r.errorf("connect: " + shortErr(err))
				return
			}
			ack, err := c.Call(dctx, "channel:join", []byte(`{"channelId":"`+r.channel[ch]+`"}`))
			if err != nil || !bytes.Contains(ack, []byte(`"ok":true`)) {
				r.errorf("join: " + shortErr(err) + trunc(ack))
				_ = c.Close()
				return
			}
			r.members[ch].Add(1)
			r.conns[i] = c
			go func() {
				<-c.Done()
				if ctx.Err() == nil {
					r.disconnects.Add(1)
				}
			}()
		}(i)
	}
	wg.Wait()
}

func shortErr(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	// Group errors by kind, not by address or port.
	for _, k := range []string{"connection refused", "connection reset", "timeout", "i/o timeout", "too many open files",
		"cannot assign requested address", "bad handshake", "EOF", "connect refused", "deadline exceeded"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

var textKey = []byte(`"text":"`)

// onEvent returns connection i's event handler: it matches deliveries by the send
// time stamped in their text.
func (r *runner) onEvent(i int) func(string, []byte) {
	return func(event string, payload []byte) {
		if event != "message" {
			if event == "message:update" || event == "reaction" || event == "read" {
				if now := time.Now().UnixNano(); now >= r.measureFrom.Load() && now < r.measureTo.Load() {
					r.changeDeliv.Add(1)
				}
			}
			return
		}
		now := time.Now().UnixNano()
		k := bytes.Index(payload, textKey)
		if k < 0 {
			return
		}
		text := payload[k+len(textKey):]
		// text: "<sender>.<seq>.<unixnano> pad..."
		sp := bytes.IndexByte(text, ' ')
		if sp < 0 {
			return
		}
		parts := bytes.Split(text[:sp], []byte("."))
		if len(parts) != 3 {
			return
		}
		sentAt, err := strconv.ParseInt(string(parts[2]), 10, 64)
		if err != nil {
			return
		}
		r.totalDeliv.Add(1)
		if sentAt >= r.measureFrom.Load() && sentAt < r.measureTo.Load() {
			r.deliv.Add(1)
			r.delH.Record(i, time.Duration(now-sentAt))
		}
	}
}

// sender sends from connection i until ctx ends: at its share of Rate, or with
// Window sends in flight.
func (r *runner) sender(ctx context.Context, i int) {
	c := r.conns[i]
	ch := i % r.cfg.Channels
	pad := strings.Repeat("x", max(r.cfg.TextBytes-36, 1))
	chanID := r.channel[ch]
	window := make(chan struct{}, r.cfg.Window)
	var interval time.Duration
	if r.cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(r.cfg.Senders) / r.cfg.Rate)
		// Spread the senders' first sends over one interval.
		sleep(ctx, time.Duration(int64(interval)*int64(i)/int64(r.cfg.Senders)))
	}
	next := time.Now()
	var buf []byte
	// every is how often a send is a change (Config.Mix); last the sender's last
	// acked message, the one its changes act on.
	every := 0
	if r.cfg.Mix > 0 {
		every = int(math.Round(1 / r.cfg.Mix))
	}
	var last atomic.Pointer[string]
	reactedOn := ""
	for seq := 0; ctx.Err() == nil; seq++ {
		if interval > 0 {
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				sleep(ctx, d)
				if ctx.Err() != nil {
					return
				}
			}
		} else {
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				return
			case <-c.Done():
				return
			}
		}
		at := time.Now()
		ns := at.UnixNano()
		if every > 0 && seq%every == every-1 {
			if id := last.Load(); id != nil {
				// A removal takes back the reaction just added, on the message it went to.
				target := *id
				switch n := seq / every; n % 4 {
				case 1:
					reactedOn = target
				case 2:
					if reactedOn != "" {
						target = reactedOn
					}
				}
				if !r.change(c, i, seq/every, target, chanID, ns, window, interval == 0) {
					return
				}
				continue
			}
		}
		buf = appendSend(buf[:0], chanID, i, seq, ns, pad)
		inWindow := ns >= r.measureFrom.Load() && ns < r.measureTo.Load()
		members := r.members[ch].Load()
		r.totalSent.Add(1)
		if inWindow {
			r.sent.Add(1)
		}
		err := c.Emit("message:send", buf, func(arg json.RawMessage, ok bool) {
			if interval == 0 {
				<-window
			}
			r.totalAcks.Add(1)
			if !inWindow {
				return
			}
			switch {
			case !ok:
				r.errorf("ack: connection closed")
			case bytes.Contains(arg, []byte(`"error"`)):
				r.ackErr.Add(1)
				r.errorf("ack: " + errCode(arg))
			default:
				r.acked.Add(1)
				r.expected.Add(members)
				r.ackH.Record(i, time.Since(at))
			}
			if every > 0 && ok {
				if id := ackID(arg); id != "" {
					last.Store(&id)
				}
			}
		})
		if err != nil {
			if inWindow {
				r.errorf("send: " + shortErr(err))
			}
			return
		}
	}
}

func errCode(arg json.RawMessage) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(arg, &e) == nil && e.Error.Code != "" {
		return e.Error.Code
	}
	return trunc(arg)
}

// stages scrapes the nodes' stage histograms, or nothing when none are asked for.
func (r *runner) stages(ctx context.Context) (map[string]histogram, error) {
	if len(r.cfg.MetricsURLs) == 0 {
		return nil, nil
	}
	return scrapeStages(ctx, r.cfg.MetricsURLs)
}

// profileWindow starts a CPU profile of the measured window on Config.ProfileURL; the
// channel yields its outcome once the profile is written (at once when none is asked).
func (r *runner) profileWindow(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	if r.cfg.ProfileURL == "" {
		done <- nil
		return done
	}
	go func() { done <- fetchProfile(ctx, r.cfg.ProfileURL, r.cfg.Duration, r.cfg.ProfileOut) }()
	return done
}

var idKey = []byte(`"id":"`)

// ackID is the message id in a send's ack ("" when there is none).
func ackID(arg []byte) string {
	k := bytes.Index(arg, idKey)
	if k < 0 {
		return ""
	}
	rest := arg[k+len(idKey):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return ""
	}
	return string(rest[:end])
}

// change sends the n-th change of sender i (Config.Mix) on message id of channel
// chanID: an edit, a reaction, its removal, a read marker, in turn. False when the
// connection is gone.
func (r *runner) change(c *Conn, i, n int, id, chanID string, ns int64, window chan struct{}, windowed bool) bool {
	nonce := "c" + strconv.Itoa(i) + "-" + strconv.FormatInt(ns, 36)
	var event string
	var payload []byte
	switch n % 4 {
	case 0:
		event = "message:edit"
		payload = fmt.Appendf(nil, `{"id":%q,"text":"%d.%d.%d edited","nonce":%q}`, id, i, n, ns, nonce)
	case 1, 2:
		event = "reaction:add"
		if n%4 == 2 {
			event = "reaction:remove"
		}
		payload = fmt.Appendf(nil, `{"messageId":%q,"emoji":"👍","nonce":%q}`, id, nonce)
	default:
		event = "channel:read"
		payload = fmt.Appendf(nil, `{"channelId":%q,"messageId":%q,"nonce":%q}`, chanID, id, nonce)
	}
	inWindow := ns >= r.measureFrom.Load() && ns < r.measureTo.Load()
	r.totalSent.Add(1)
	if inWindow {
		r.changes.Add(1)
	}
	err := c.Emit(event, payload, func(arg json.RawMessage, ok bool) {
		if windowed {
			<-window
		}
		r.totalAcks.Add(1)
		if !inWindow {
			return
		}
		switch {
		case !ok:
			r.errorf("ack: connection closed")
		case bytes.Contains(arg, []byte(`"error"`)):
			r.ackErr.Add(1)
			r.errorf(event + " ack: " + errCode(arg))
		}
	})
	if err != nil {
		if inWindow {
			r.errorf("send: " + shortErr(err))
		}
		return false
	}
	return true
}

// appendSend appends sender i's seq-th message:send payload, sent at ns: its text
// "<sender>.<seq>.<unixnano> pad" is what onEvent matches a delivery by.
func appendSend(buf []byte, chanID string, i, seq int, ns int64, pad string) []byte {
	buf = append(buf, `{"channelId":"`...)
	buf = append(buf, chanID...)
	buf = append(buf, `","text":"`...)
	buf = strconv.AppendInt(buf, int64(i), 10)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, int64(seq), 10)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, ns, 10)
	buf = append(buf, ' ')
	buf = append(buf, pad...)
	buf = append(buf, `","nonce":"n`...)
	buf = strconv.AppendInt(buf, int64(i), 10)
	buf = append(buf, '-')
	buf = strconv.AppendInt(buf, ns, 36)
	return append(buf, `"}`...)
}
