// Quibly web client: sign-in, channels, history over REST, live chat over
// Socket.IO (client.js). All user-provided text is put into the page with
// textContent / DOM nodes only, never parsed as HTML.
'use strict';

(function () {
  const { SocketClient } = window.QuiblyIO;

  const HISTORY_PAGE = 50;
  const SEND_TIMEOUT_MS = 15000;
  const JOIN_TIMEOUT_MS = 10000;
  const TYPING_SEND_EVERY_MS = 2000;
  const TYPING_SHOW_MS = 3000;
  const RECOVERED_BADGE_MS = 4000;
  const NOTICE_MS = 7000;
  const LS_TOKEN = 'quibly.token';
  const LS_USER = 'quibly.user';
  const LS_CHANNEL = 'quibly.channel';

  // ---------------------------------------------------------------- helpers

  const $ = (id) => document.getElementById(id);

  /** Creates an element. props: className, text, dataset, attrs, on (events). */
  function h(tag, props, ...children) {
    const e = document.createElement(tag);
    if (props) {
      if (props.className) e.className = props.className;
      if (props.text !== undefined) e.textContent = props.text;
      if (props.dataset) for (const [k, v] of Object.entries(props.dataset)) e.dataset[k] = v;
      if (props.attrs) for (const [k, v] of Object.entries(props.attrs)) e.setAttribute(k, v);
      if (props.on) for (const [k, v] of Object.entries(props.on)) e.addEventListener(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function uuid() {
    if (window.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    // crypto.randomUUID needs a secure context; getRandomValues does not.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
  }

  function hueOf(name) {
    let n = 0;
    for (const ch of String(name)) n = (n * 31 + ch.codePointAt(0)) >>> 0;
    return n % 360;
  }

  function avatar(name, extraClass) {
    const initial = [...String(name || '?').trim()][0] || '?';
    const a = h('span', { className: 'avatar' + (extraClass ? ' ' + extraClass : ''), text: initial.toUpperCase(), attrs: { 'aria-hidden': 'true' } });
    a.style.setProperty('--hue', String(hueOf(name)));
    return a;
  }

  function toDate(ts) {
    if (ts === undefined || ts === null || ts === '') return new Date();
    if (typeof ts === 'number') return new Date(ts < 1e12 ? ts * 1000 : ts);
    const n = Number(ts);
    if (Number.isFinite(n)) return new Date(n < 1e12 ? n * 1000 : n);
    const d = new Date(ts);
    return Number.isNaN(d.getTime()) ? new Date() : d;
  }

  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const dateTimeFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

  function shortTime(d) {
    const now = new Date();
    return d.toDateString() === now.toDateString() ? timeFmt.format(d) : dateTimeFmt.format(d);
  }

  const ERROR_TEXT = {
    rate_limited: 'You are sending messages too fast. Wait a moment and try again.',
    too_large: 'That message is too long.',
    forbidden: 'You are not allowed to do that here.',
    not_found: 'That channel does not exist any more.',
    invalid: 'That was not accepted.',
    unavailable: 'The server cannot take messages right now. Try again shortly.',
    unauthorized: 'Your session has expired. Please log in again.',
    timeout: 'The server did not answer in time.',
    disconnected: 'Connection lost.',
    network: 'Cannot reach the server.',
  };

  const SHORT_ERROR = {
    rate_limited: 'sending too fast',
    too_large: 'message too long',
    forbidden: 'not allowed in this channel',
    not_found: 'channel not found',
    unavailable: 'server busy',
    timeout: 'no answer from the server',
    unauthorized: 'session expired',
  };

  /** A readable sentence for an error object {code, message}. */
  function describeError(err) {
    if (!err) return 'Something went wrong.';
    const code = err.code || '';
    const base = ERROR_TEXT[code];
    const msg = err.message && err.message !== code ? err.message : '';
    if (base && msg && code !== 'rate_limited' && code !== 'unavailable') return `${base} (${msg})`;
    return base || msg || code || 'Something went wrong.';
  }

  const URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]}]/gi;

  /** Fills el with text, turning http(s) URLs into links; no HTML parsing. */
  function fillText(el, text) {
    el.textContent = '';
    let last = 0;
    for (const m of text.matchAll(URL_RE)) {
      let href;
      try {
        const u = new URL(m[0]);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') continue;
        href = u.href;
      } catch { continue; }
      if (m.index > last) el.append(text.slice(last, m.index));
      el.append(h('a', { text: m[0], attrs: { href, target: '_blank', rel: 'noopener noreferrer nofollow' } }));
      last = m.index + m[0].length;
    }
    if (last < text.length) el.append(text.slice(last));
  }

  // ------------------------------------------------------------------ state

  const S = {
    token: null,
    user: null, // {id, username}
    channels: [], // [{id, name}] sorted by name
    current: null, // channel id
    chans: new Map(), // channel id -> ChannelState
    outbox: new Map(), // nonce -> pending/failed local message
    online: new Map(), // userId -> username
    typing: new Map(), // channelId -> Map(userId -> {username, until})
    socket: null,
    lastTypingSent: 0,
    recoveredTimer: null,
    typingTimer: null,
    noticeTimer: null,
  };

  function chanState(id) {
    let c = S.chans.get(id);
    if (!c) {
      c = { msgs: new Map(), ids: [], nextBefore: null, loaded: false, loading: null, stale: false, unread: 0, joined: false };
      S.chans.set(id, c);
    }
    return c;
  }

  /** A message as the server sends it, in history pages and `message` events:
   * {id, channelId, authorId, author, text, ts (ms), nonce?}; null for anything else,
   * which is not shown. */
  function normalizeMessage(m) {
    if (!m || typeof m !== 'object' || typeof m.id !== 'string' || typeof m.channelId !== 'string' ||
      typeof m.authorId !== 'string' || typeof m.author !== 'string' || typeof m.text !== 'string' ||
      typeof m.ts !== 'number') return null;
    return {
      id: m.id, channelId: m.channelId, authorId: m.authorId, author: m.author, text: m.text, ts: m.ts,
      nonce: typeof m.nonce === 'string' ? m.nonce : null,
      el: null,
    };
  }

  /** The messages of a history page ({messages, nextBefore}) that are messages. */
  function pageMessages(res) {
    const list = res && Array.isArray(res.messages) ? res.messages : [];
    return list.map(normalizeMessage).filter(Boolean);
  }

  // ------------------------------------------------------------------- REST

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message || code);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (S.token) headers.authorization = `Bearer ${S.token}`;
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiError(0, 'network', 'Cannot reach the server');
    }
    let data = null;
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!res.ok) {
      const e = (data && data.error) || {};
      const code = e.code || (res.status === 401 ? 'unauthorized' : res.status === 429 ? 'rate_limited' : res.status >= 500 ? 'unavailable' : 'invalid');
      const err = new ApiError(res.status, code, e.message || `${res.status} ${res.statusText}`);
      if (res.status === 401 && S.token && !path.startsWith('/api/auth/')) {
        logout('Your session has expired. Please log in again.');
      }
      throw err;
    }
    return data;
  }

  // ------------------------------------------------------------ auth screen

  function showAuth(message) {
    $('chat-view').hidden = true;
    $('auth-view').hidden = false;
    const err = $('auth-error');
    err.textContent = message || '';
    err.hidden = !message;
    document.title = 'Quibly';
    setTimeout(() => (($('username').value ? $('password') : $('username')).focus()), 0);
  }

  async function authenticate(kind) {
    const username = $('username').value.trim();
    const password = $('password').value;
    const err = $('auth-error');
    if (!username || !password) {
      err.textContent = 'Enter a username and a password.';
      err.hidden = false;
      return;
    }
    const buttons = [$('login-btn'), $('register-btn')];
    buttons.forEach((b) => (b.disabled = true));
    err.hidden = true;
    try {
      const res = await api('POST', `/api/auth/${kind}`, { username, password });
      if (!res || !res.token) throw new ApiError(0, 'invalid', 'Unexpected answer from the server');
      const user = res.user || { id: '', username };
      S.token = res.token;
      S.user = { id: String(user.id ?? ''), username: String(user.username ?? username) };
      localStorage.setItem(LS_TOKEN, S.token);
      localStorage.setItem(LS_USER, JSON.stringify(S.user));
      $('password').value = '';
      await startChat();
    } catch (e) {
      err.textContent = e.code === 'unauthorized' && kind === 'login'
        ? 'Wrong username or password.'
        : describeError(e);
      err.hidden = false;
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  /** The log-out button: the server revokes the user's tokens (every device's), then
   * this page forgets its own. Offline, the token is only forgotten here. */
  function signOut() {
    const token = S.token;
    logout();
    if (token) {
      fetch('/api/auth/logout', { method: 'POST', headers: { authorization: `Bearer ${token}` } }).catch(() => {});
    }
  }

  function logout(message) {
    if (S.socket) S.socket.close();
    S.socket = null;
    S.token = null;
    S.user = null;
    S.channels = [];
    S.current = null;
    S.chans.clear();
    S.outbox.clear();
    S.online.clear();
    S.typing.clear();
    clearTimeout(S.recoveredTimer);
    localStorage.removeItem(LS_TOKEN);
    localStorage.removeItem(LS_USER);
    $('messages').replaceChildren();
    $('channel-list').replaceChildren();
    $('online-users').replaceChildren();
    $('typing').textContent = '';
    hideNotice();
    showAuth(message);
  }

  // ------------------------------------------------------------ chat screen

  async function startChat() {
    $('auth-view').hidden = true;
    $('chat-view').hidden = false;
    $('me-name').textContent = S.user.username;
    $('me-avatar').replaceWith(Object.assign(avatar(S.user.username, 'avatar-sm'), { id: 'me-avatar' }));
    setConnState('connecting');
    try {
      await loadChannels();
    } catch (e) {
      if (!S.token) return; // logged out (401)
      showNotice(describeError(e));
    }
    const fromHash = channelNameFromHash();
    const stored = localStorage.getItem(LS_CHANNEL);
    const pick = S.channels.find((c) => c.name === fromHash) ||
      S.channels.find((c) => c.id === stored) ||
      S.channels.find((c) => c.name === 'general') ||
      S.channels[0];
    if (pick) selectChannel(pick.id);
    connectSocket();
  }

  /** The channel name in the URL's hash; '' when there is none or it is not valid
   * percent-encoding (a crafted link must not stop the client from starting). */
  function channelNameFromHash() {
    try {
      return decodeURIComponent(location.hash.replace(/^#\/?/, ''));
    } catch {
      return '';
    }
  }

  async function loadChannels() {
    const res = await api('GET', '/api/channels');
    const list = res && Array.isArray(res.channels) ? res.channels : [];
    const before = new Set(S.channels.map((c) => c.id));
    S.channels = list.map((c) => ({ id: String(c.id), name: String(c.name) }))
      .sort((a, b) => a.name.localeCompare(b.name));
    renderChannels();
    // Join channels we had not seen (someone else created them) when live.
    if (S.socket && S.socket.connected) {
      for (const c of S.channels) if (!before.has(c.id)) joinChannel(c.id);
    }
  }

  function channelName(id) {
    const c = S.channels.find((x) => x.id === id);
    return c ? c.name : '';
  }

  function renderChannels() {
    const ul = $('channel-list');
    const items = S.channels.map((c) => {
      const st = chanState(c.id);
      const li = h('li', {
        className: 'channel' + (c.id === S.current ? ' active' : '') + (st.unread ? ' has-unread' : ''),
        dataset: { channelName: c.name, channelId: c.id, testid: 'channel' },
      });
      const btn = h('button', {
        className: 'channel-btn',
        attrs: { type: 'button', 'aria-current': c.id === S.current ? 'page' : 'false' },
        on: { click: () => selectChannel(c.id) },
      }, h('span', { className: 'hash', text: '#', attrs: { 'aria-hidden': 'true' } }), h('span', { className: 'name', text: c.name }));
      if (st.unread) btn.append(h('span', { className: 'unread', text: st.unread > 99 ? '99+' : String(st.unread), attrs: { 'aria-label': `${st.unread} unread` } }));
      li.append(btn);
      return li;
    });
    ul.replaceChildren(...items);
    updateTitle();
  }

  function updateTitle() {
    let unread = 0;
    for (const c of S.channels) unread += chanState(c.id).unread;
    const name = channelName(S.current);
    document.title = `${unread ? `(${unread}) ` : ''}${name ? '#' + name + ' · ' : ''}Quibly`;
    $('menu-unread').hidden = unread === 0;
  }

  function selectChannel(id) {
    if (!S.channels.some((c) => c.id === id)) return;
    const changed = S.current !== id;
    S.current = id;
    const st = chanState(id);
    st.unread = 0;
    const name = channelName(id);
    localStorage.setItem(LS_CHANNEL, id);
    if (location.hash !== '#' + encodeURIComponent(name)) history.replaceState(null, '', '#' + encodeURIComponent(name));
    $('channel-name').textContent = name;
    $('message-input').placeholder = `Message #${name}`;
    renderChannels();
    closeSidebar();
    if (changed) {
      renderMessages();
      renderTyping();
      scrollToBottom();
    }
    if (!st.loaded || st.stale) loadLatest(id);
    if (S.socket && S.socket.connected && !st.joined) joinChannel(id);
    if (window.matchMedia('(min-width: 769px)').matches) $('message-input').focus();
  }

  async function joinChannel(id) {
    const st = chanState(id);
    try {
      const ack = await S.socket.request('channel:join', { channelId: id }, JOIN_TIMEOUT_MS);
      if (ack && ack.error) {
        st.joined = false;
        if (id === S.current) showNotice(`Cannot join #${channelName(id)}: ${describeError(ack.error)}`);
        return false;
      }
      st.joined = true;
      return true;
    } catch (e) {
      st.joined = false;
      if (e.code !== 'disconnected' && id === S.current) showNotice(`Cannot join #${channelName(id)}: ${describeError(e)}`);
      return false;
    }
  }

  async function createChannel(ev) {
    ev.preventDefault();
    const input = $('new-channel-name');
    const name = input.value.trim().replace(/^#+/, '');
    if (!name) { input.focus(); return; }
    const btn = $('create-channel-btn');
    btn.disabled = true;
    try {
      const res = await api('POST', '/api/channels', { name });
      const ch = (res && (res.channel || res)) || {};
      const c = { id: String(ch.id), name: String(ch.name || name) };
      if (!S.channels.some((x) => x.id === c.id)) {
        S.channels.push(c);
        S.channels.sort((a, b) => a.name.localeCompare(b.name));
      }
      input.value = '';
      chanState(c.id).loaded = false;
      if (S.socket && S.socket.connected) await joinChannel(c.id);
      selectChannel(c.id);
    } catch (e) {
      if (S.token) showNotice(`Cannot create #${name}: ${describeError(e)}`);
    } finally {
      btn.disabled = false;
    }
  }

  // --------------------------------------------------------------- history

  /** Loads the newest page; merges it, or replaces the cache when there is a gap. */
  function loadLatest(id) {
    const st = chanState(id);
    if (st.loading) return st.loading;
    st.loading = (async () => {
      try {
        const res = await api('GET', `/api/channels/${encodeURIComponent(id)}/messages?limit=${HISTORY_PAGE}`);
        const page = pageMessages(res);
        const nextBefore = (res && res.nextBefore) ?? null;
        const newestKnown = st.ids.length ? st.ids[st.ids.length - 1] : null;
        const oldestInPage = page.length ? page.reduce((a, m) => (m.id < a ? m.id : a), page[0].id) : null;
        const gap = st.loaded && newestKnown && nextBefore && oldestInPage && oldestInPage > newestKnown;
        if (!st.loaded || gap) {
          // Keep live messages newer than the page; anything older comes from "load older".
          for (const [mid, m] of st.msgs) {
            if (oldestInPage && mid < oldestInPage) { st.msgs.delete(mid); if (m.el) m.el.remove(); }
          }
          st.ids = [...st.msgs.keys()].sort();
          st.nextBefore = nextBefore;
        }
        st.loaded = true;
        st.stale = false;
        const atBottom = isNearBottom();
        for (const m of page) addMessage(m, { fromHistory: true });
        if (id === S.current) {
          renderOlderButton();
          renderEmptyState();
          if (atBottom || !st.ids.length) scrollToBottom();
        }
      } catch (e) {
        if (S.token && id === S.current && e.code !== 'unauthorized') showNotice(`Cannot load messages: ${describeError(e)}`);
      } finally {
        st.loading = null;
      }
    })();
    return st.loading;
  }

  async function loadOlder() {
    const id = S.current;
    const st = chanState(id);
    if (!st.nextBefore || st.loadingOlder) return;
    st.loadingOlder = true;
    const btn = $('load-older');
    btn.disabled = true;
    btn.textContent = 'Loading…';
    try {
      const res = await api('GET', `/api/channels/${encodeURIComponent(id)}/messages?before=${encodeURIComponent(st.nextBefore)}&limit=${HISTORY_PAGE}`);
      const page = pageMessages(res);
      st.nextBefore = (res && res.nextBefore) ?? null;
      if (!page.length) st.nextBefore = null;
      const scroller = $('scroller');
      const fromBottom = scroller.scrollHeight - scroller.scrollTop;
      for (const m of page) addMessage(m, { fromHistory: true });
      if (id === S.current) scroller.scrollTop = scroller.scrollHeight - fromBottom;
    } catch (e) {
      if (S.token) showNotice(`Cannot load older messages: ${describeError(e)}`);
    } finally {
      st.loadingOlder = false;
      btn.disabled = false;
      btn.textContent = 'Load older messages';
      if (id === S.current) renderOlderButton();
    }
  }

  // -------------------------------------------------------------- messages

  function bsearch(ids, id) {
    let lo = 0;
    let hi = ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ids[mid] < id) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  /** Adds a confirmed message to its channel (deduplicated by id, ordered by id). */
  function addMessage(m, opts = {}) {
    if (!m.id || m.id === 'undefined') return false;
    const st = chanState(m.channelId);
    if (st.msgs.has(m.id)) return false;
    // A message of ours we still show as pending: swap it for the stored one.
    if (m.nonce && S.outbox.has(m.nonce)) {
      const o = S.outbox.get(m.nonce);
      S.outbox.delete(m.nonce);
      if (o.el) o.el.remove();
    }
    st.msgs.set(m.id, m);
    const i = bsearch(st.ids, m.id);
    st.ids.splice(i, 0, m.id);
    if (m.channelId === S.current) {
      const list = $('messages');
      const nextId = st.ids[i + 1];
      const next = nextId ? st.msgs.get(nextId).el : list.querySelector('.message.local');
      const stick = !opts.fromHistory && (isNearBottom() || m.authorId === S.user.id);
      list.insertBefore(messageEl(m), next || null);
      renderEmptyState();
      if (stick) scrollToBottom();
    } else if (!opts.fromHistory && m.authorId !== S.user.id && st.loaded !== undefined) {
      st.unread++;
      renderChannels();
    }
    return true;
  }

  function messageEl(m) {
    if (m.el) return m.el;
    const d = toDate(m.ts);
    const mine = S.user && m.authorId === S.user.id;
    const text = h('div', { className: 'text' });
    fillText(text, m.text);
    m.el = h('article', {
      className: 'message' + (mine ? ' mine' : ''),
      dataset: { id: m.id, authorId: m.authorId, testid: 'message' },
    },
    avatar(m.author),
    h('div', { className: 'body' },
      h('div', { className: 'meta' },
        h('span', { className: 'author', text: m.author }),
        h('time', { className: 'time', text: shortTime(d), attrs: { datetime: d.toISOString(), title: fullFmt.format(d) } })),
      text));
    return m.el;
  }

  /** The element of a message not yet acked (pending) or refused (failed). */
  function localEl(o) {
    const text = h('div', { className: 'text' });
    fillText(text, o.text);
    const status = h('div', { className: 'status' });
    if (o.status === 'failed') {
      status.append(
        h('span', { className: 'status-text', text: `Not sent: ${(o.error && SHORT_ERROR[o.error.code]) || describeError(o.error)}.` }),
        h('button', { className: 'btn btn-small btn-danger retry-btn', text: 'Retry', attrs: { type: 'button' }, on: { click: () => retry(o.nonce) } }),
        h('button', { className: 'btn btn-small btn-ghost discard-btn', text: 'Discard', attrs: { type: 'button' }, on: { click: () => discard(o.nonce) } }));
    } else {
      status.append(h('span', { className: 'status-text', text: S.socket && S.socket.connected ? 'Sending…' : 'Waiting for connection…' }));
    }
    const el = h('article', {
      className: `message mine local ${o.status}`,
      dataset: { id: '', nonce: o.nonce, status: o.status, testid: 'message' },
    },
    avatar(S.user.username),
    h('div', { className: 'body' },
      h('div', { className: 'meta' }, h('span', { className: 'author', text: S.user.username }),
        h('span', { className: 'time pending-label', text: o.status === 'failed' ? 'failed' : 'pending' })),
      text, status));
    return el;
  }

  function renderLocal(o) {
    const el = localEl(o);
    if (o.el && o.el.isConnected) o.el.replaceWith(el);
    else if (o.channelId === S.current) $('messages').append(el);
    o.el = el;
  }

  function renderMessages() {
    const list = $('messages');
    const st = chanState(S.current);
    const els = st.ids.map((id) => messageEl(st.msgs.get(id)));
    for (const o of S.outbox.values()) {
      if (o.channelId !== S.current) continue;
      o.el = localEl(o);
      els.push(o.el);
    }
    list.replaceChildren(...els);
    renderOlderButton();
    renderEmptyState();
  }

  function renderOlderButton() {
    const st = chanState(S.current);
    $('load-older').hidden = !(st.loaded && st.nextBefore);
  }

  function renderEmptyState() {
    const st = chanState(S.current);
    const hasLocal = [...S.outbox.values()].some((o) => o.channelId === S.current);
    $('empty-state').hidden = !(st.loaded && st.ids.length === 0 && !hasLocal);
  }

  function isNearBottom() {
    const s = $('scroller');
    return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
  }

  function scrollToBottom() {
    const s = $('scroller');
    s.scrollTop = s.scrollHeight;
  }

  // ---------------------------------------------------------------- sending

  function send(ev) {
    if (ev) ev.preventDefault();
    const input = $('message-input');
    const text = input.value.replace(/\s+$/, '').replace(/^\n+/, '');
    if (!text.trim() || !S.current) return;
    const o = { nonce: uuid(), channelId: S.current, text, status: 'pending', error: null, inFlight: false, el: null };
    S.outbox.set(o.nonce, o);
    input.value = '';
    autosize();
    S.lastTypingSent = 0;
    renderLocal(o);
    renderEmptyState();
    scrollToBottom();
    transmit(o);
    input.focus();
  }

  async function transmit(o) {
    if (!S.socket || !S.socket.connected || o.inFlight) return; // resent on (re)connect
    o.inFlight = true;
    try {
      const ack = await S.socket.request('message:send', { channelId: o.channelId, text: o.text, nonce: o.nonce }, SEND_TIMEOUT_MS);
      o.inFlight = false;
      if (!S.outbox.has(o.nonce)) return; // already confirmed by the message event
      if (!ack || ack.error || !ack.id) {
        fail(o, (ack && ack.error) || { code: 'invalid', message: 'Unexpected answer from the server' });
        return;
      }
      addMessage({ id: String(ack.id), channelId: o.channelId, authorId: S.user.id, author: S.user.username, text: o.text, ts: ack.ts, nonce: o.nonce, el: null });
      if (S.outbox.has(o.nonce)) { // not replaced (already known by id)
        S.outbox.delete(o.nonce);
        if (o.el) o.el.remove();
      }
    } catch (e) {
      o.inFlight = false;
      if (!S.outbox.has(o.nonce)) return;
      if (e.code === 'disconnected') {
        renderLocal(o); // "waiting for connection"; resent with the same nonce on connect
        return;
      }
      fail(o, { code: e.code || 'unavailable', message: e.message });
    }
  }

  function fail(o, error) {
    o.status = 'failed';
    o.error = error;
    renderLocal(o);
    showNotice(describeError(error));
  }

  function retry(nonce) {
    const o = S.outbox.get(nonce);
    if (!o) return;
    o.status = 'pending';
    o.error = null;
    renderLocal(o);
    transmit(o);
  }

  function discard(nonce) {
    const o = S.outbox.get(nonce);
    if (!o) return;
    S.outbox.delete(nonce);
    if (o.el) o.el.remove();
    renderEmptyState();
  }

  function flushOutbox() {
    for (const o of S.outbox.values()) {
      if (o.status === 'pending' && !o.inFlight) {
        renderLocal(o);
        transmit(o);
      }
    }
  }

  // ----------------------------------------------------------------- typing

  function onComposerInput() {
    autosize();
    const v = $('message-input').value;
    if (!v.trim() || !S.current || !S.socket || !S.socket.connected) return;
    const now = Date.now();
    if (now - S.lastTypingSent >= TYPING_SEND_EVERY_MS) {
      S.lastTypingSent = now;
      S.socket.emit('typing', { channelId: S.current });
    }
  }

  function onTyping(p) {
    if (!p || !p.channelId) return;
    const userId = String(p.userId ?? '');
    if (S.user && userId === S.user.id) return;
    let m = S.typing.get(p.channelId);
    if (!m) { m = new Map(); S.typing.set(p.channelId, m); }
    m.set(userId, { username: String(p.username || 'Someone'), until: Date.now() + TYPING_SHOW_MS });
    if (p.channelId === S.current) renderTyping();
  }

  function stopTyping(channelId, userId) {
    const m = S.typing.get(channelId);
    if (m && m.delete(userId) && channelId === S.current) renderTyping();
  }

  function renderTyping() {
    clearTimeout(S.typingTimer);
    const el = $('typing');
    const m = S.typing.get(S.current);
    const now = Date.now();
    const names = [];
    let next = Infinity;
    if (m) {
      for (const [uid, t] of m) {
        if (t.until <= now) { m.delete(uid); continue; }
        names.push(t.username);
        next = Math.min(next, t.until);
      }
    }
    names.sort();
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length === 3) text = `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
    else if (names.length > 3) text = 'Several people are typing…';
    el.textContent = text;
    el.classList.toggle('active', names.length > 0);
    if (next !== Infinity) S.typingTimer = setTimeout(renderTyping, next - now + 20);
  }

  // --------------------------------------------------------------- presence

  function onPresence(p) {
    if (!p || p.userId === undefined) return;
    const id = String(p.userId);
    if (p.status === 'online') S.online.set(id, String(p.username || id));
    else if (p.status === 'offline') {
      S.online.delete(id);
      for (const c of S.typing.keys()) stopTyping(c, id);
    }
    renderOnline();
  }

  function renderOnline() {
    const ul = $('online-users');
    const users = [...S.online.entries()].sort((a, b) => a[1].localeCompare(b[1]));
    ul.replaceChildren(...users.map(([id, name]) => {
      const me = S.user && id === S.user.id;
      return h('li', { className: 'user' + (me ? ' me' : ''), dataset: { username: name, userId: id } },
        h('span', { className: 'presence-dot', attrs: { 'aria-hidden': 'true' } }),
        h('span', { className: 'name', text: name }),
        me ? h('span', { className: 'you', text: 'you' }) : null);
    }));
    $('online-count').textContent = users.length ? String(users.length) : '';
  }

  // ------------------------------------------------------------- connection

  function setConnState(state) {
    const el = $('conn-state');
    el.textContent = state;
    el.dataset.state = state;
    const tips = {
      connecting: 'Connecting to the chat server…',
      connected: 'Live',
      recovered: 'Reconnected; missed messages were delivered',
      reconnecting: 'Connection lost; retrying…',
      offline: 'Offline',
    };
    el.title = tips[state] || state;
    $('chat-view').classList.toggle('is-disconnected', state === 'reconnecting' || state === 'offline' || state === 'connecting');
  }

  function connectSocket() {
    if (S.socket) S.socket.close();
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new SocketClient({
      url: `${proto}//${location.host}/socket.io/?EIO=4&transport=websocket`,
      auth: () => ({ token: S.token }),
      minDelay: 500,
      maxDelay: 10000,
      jitter: 0.5,
    });
    S.socket = socket;
    window.quibly.socket = socket;

    socket.on('state', (st) => {
      if (S.socket !== socket) return;
      if (st === 'connected') return; // decided in 'connect' (connected or recovered)
      clearTimeout(S.recoveredTimer);
      setConnState(st);
    });
    socket.on('connect', ({ recovered }) => {
      if (S.socket !== socket) return;
      clearTimeout(S.recoveredTimer);
      if (recovered) {
        setConnState('recovered');
        $('conn-state').dataset.lastConnect = 'recovered';
        S.recoveredTimer = setTimeout(() => { if (socket.connected) setConnState('connected'); }, RECOVERED_BADGE_MS);
      } else {
        setConnState('connected');
        $('conn-state').dataset.lastConnect = socket.attempts === 0 && !S.hadSession ? 'fresh' : 'new-session';
      }
      onConnected(socket, recovered);
      S.hadSession = true;
    });
    socket.on('disconnect', () => {
      if (S.socket !== socket) return;
      for (const c of S.chans.values()) c.joined = false;
      for (const o of S.outbox.values()) if (o.status === 'pending') renderLocal(o);
    });
    socket.on('connect_error', (err) => {
      if (S.socket !== socket) return;
      if (err.auth) logout('Your session has expired. Please log in again.');
    });
    socket.onEvent('message', (raw) => {
      const m = normalizeMessage(raw);
      if (!m) return;
      stopTyping(m.channelId, m.authorId);
      addMessage(m);
    });
    socket.onEvent('presence', onPresence);
    socket.onEvent('typing', onTyping);
    socket.open();
  }

  async function onConnected(socket, recovered) {
    if (!recovered) {
      // A new session: who is online is re-announced by the server, rooms must
      // be joined again, and anything we missed comes from history.
      S.online.clear();
      S.typing.clear();
      renderTyping();
      if (S.hadSession) {
        for (const [id, st] of S.chans) {
          if (id === S.current) loadLatest(id);
          else if (st.loaded) st.stale = true;
        }
        loadChannels().catch(() => {});
      }
    }
    if (S.user && S.user.id && !S.online.has(S.user.id)) S.online.set(S.user.id, S.user.username);
    renderOnline();
    const order = [S.current, ...S.channels.map((c) => c.id).filter((id) => id !== S.current)].filter(Boolean);
    const joins = order.map((id) => joinChannel(id));
    await Promise.allSettled(joins);
    if (S.socket === socket && socket.connected) flushOutbox();
  }

  // ----------------------------------------------------------------- notice

  function showNotice(text) {
    clearTimeout(S.noticeTimer);
    $('notice-text').textContent = text;
    $('notice').hidden = false;
    S.noticeTimer = setTimeout(hideNotice, NOTICE_MS);
  }

  function hideNotice() {
    clearTimeout(S.noticeTimer);
    $('notice').hidden = true;
  }

  // --------------------------------------------------------------- layout

  function openSidebar() {
    document.body.classList.add('sidebar-open');
    $('sidebar-backdrop').hidden = false;
    $('sidebar-toggle').setAttribute('aria-expanded', 'true');
  }

  function closeSidebar() {
    document.body.classList.remove('sidebar-open');
    $('sidebar-backdrop').hidden = true;
    $('sidebar-toggle').setAttribute('aria-expanded', 'false');
  }

  function autosize() {
    const t = $('message-input');
    t.style.height = 'auto';
    t.style.height = Math.min(t.scrollHeight, 160) + 'px';
  }

  // ------------------------------------------------------------------ boot

  function boot() {
    window.quibly = { state: S, socket: null };

    $('auth-form').addEventListener('submit', (e) => { e.preventDefault(); authenticate('login'); });
    $('register-btn').addEventListener('click', () => authenticate('register'));
    $('logout-btn').addEventListener('click', signOut);
    $('new-channel-form').addEventListener('submit', createChannel);
    $('composer').addEventListener('submit', send);
    $('load-older').addEventListener('click', loadOlder);
    $('notice-close').addEventListener('click', hideNotice);
    $('sidebar-toggle').addEventListener('click', () => (document.body.classList.contains('sidebar-open') ? closeSidebar() : openSidebar()));
    $('sidebar-close').addEventListener('click', closeSidebar);
    $('sidebar-backdrop').addEventListener('click', closeSidebar);
    $('conn-state').addEventListener('click', () => S.socket && S.socket.reconnectNow());

    const input = $('message-input');
    input.addEventListener('input', onComposerInput);
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) send(e);
    });
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeSidebar(); });

    window.addEventListener('hashchange', () => {
      const name = channelNameFromHash();
      const c = S.channels.find((x) => x.name === name);
      if (c && c.id !== S.current) selectChannel(c.id);
    });
    window.addEventListener('online', () => S.socket && S.socket.reconnectNow());
    window.addEventListener('offline', () => { if (S.socket && !S.socket.connected) setConnState('offline'); });
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && S.token) {
        if (S.socket) S.socket.reconnectNow();
        loadChannels().catch(() => {});
      }
    });

    S.token = localStorage.getItem(LS_TOKEN);
    try { S.user = JSON.parse(localStorage.getItem(LS_USER) || 'null'); } catch { S.user = null; }
    if (S.token && S.user && S.user.username) startChat();
    else {
      S.token = null;
      showAuth();
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
