// Read markers, unread and mention badges, "seen by", replies and threads, and the
// @mention autocomplete. The server keeps each user's marker per channel; this page
// moves it when the user sees a channel's newest message, and follows the read
// events of the user's other devices (and, in small private channels and DMs, the
// other members' receipts).
import { api } from './api.js';
import { hooks } from './hooks.js';
import { SEND_TIMEOUT_MS } from './constants.js';
import { $, describeError, h, uuid } from './helpers.js';
import { showNotice } from './notice.js';
import { S, chanState, pageMessages } from './state.js';

// ------------------------------------------------------------------ read markers

let readTimer = null;

/** The newest confirmed message of a channel (not a change of its state). */
function newest(st) {
  for (let i = st.ids.length - 1; i >= 0; i -= 1) {
    const m = st.msgs.get(st.ids[i]);
    if (m && !m.kind) return m;
  }
  return null;
}

/** Marks the open channel read up to its newest message, soon (one request for a
 * burst of messages), when the page is visible. */
export function markRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(async () => {
    const id = S.current;
    if (!id || document.visibilityState !== 'visible' || !S.socket || !S.socket.connected) return;
    const st = chanState(id);
    const m = newest(st);
    if (!m || (st.marker && m.id <= st.marker)) return;
    try {
      const res = await S.socket.request('channel:read', { channelId: id, messageId: m.id, nonce: uuid() }, SEND_TIMEOUT_MS);
      if (res && res.ok && typeof res.marker === 'string') setMarker(id, res.marker);
    } catch { /* the next message or visit marks it */ }
  }, 400);
}

function setMarker(channelId, marker) {
  const st = chanState(channelId);
  if (!st.marker || marker > st.marker) st.marker = marker;
  const last = newest(st);
  if (!st.loaded || !last || st.marker >= last.id) {
    st.unread = 0;
    st.mentions = 0;
  }
  hooks.renderChannels();
}

/** A read event: the user's own marker from any device, or another member's receipt. */
export function onRead(e) {
  if (!e || typeof e.channelId !== 'string' || typeof e.messageId !== 'string') return;
  if (S.user && e.userId === S.user.id) {
    setMarker(e.channelId, e.messageId);
    return;
  }
  const st = chanState(e.channelId);
  if (!st.reads) st.reads = new Map();
  const prev = st.reads.get(e.userId);
  if (!prev || e.messageId > prev.messageId) st.reads.set(e.userId, { username: String(e.username || ''), messageId: e.messageId });
  if (e.channelId === S.current) renderSeen();
}

/** A message mentions the user: counted until read, unless the user is looking. */
export function onMention(e) {
  if (!e || typeof e.channelId !== 'string') return;
  if (e.channelId === S.current && document.visibilityState === 'visible') return;
  const st = chanState(e.channelId);
  st.mentions = (st.mentions || 0) + 1;
  if (!st.joined) st.unread += 1; // a joined channel counts the message itself
  hooks.renderChannels();
}

/** The counts the channel list came with. */
export function takeCounts(c) {
  const st = chanState(String(c.id));
  if (typeof c.marker === 'string' && c.marker && (!st.marker || c.marker > st.marker)) st.marker = c.marker;
  if (String(c.id) === S.current) return;
  if (typeof c.unread === 'number') st.unread = c.unread;
  if (typeof c.mentions === 'number') st.mentions = c.mentions;
}

/** On opening a channel: where its "new messages" divider goes, and its receipts. */
export async function openedChannel(id) {
  const st = chanState(id);
  st.divider = st.unread ? st.marker || '' : null; // '': never read, all of it is new
  st.reads = new Map();
  const c = S.channels.find((x) => x.id === id);
  if (c && (c.private || c.dm)) {
    try {
      const res = await api('GET', `/api/channels/${encodeURIComponent(id)}/reads`);
      for (const r of (res && res.reads) || []) {
        if (r.userId !== (S.user && S.user.id)) st.reads.set(r.userId, { username: r.username, messageId: r.messageId });
      }
    } catch { /* no receipts shown */ }
  }
  if (id === S.current) renderSeen();
}

/** The "new messages" divider: before the first message after the marker at opening. */
export function dividerBefore(st) {
  if (st.divider === null) return null;
  for (const id of st.ids) {
    const m = st.msgs.get(id);
    if (id > st.divider && m && !m.kind && m.authorId !== (S.user && S.user.id)) return id;
  }
  return null;
}

/** "Seen by …" under the user's own latest message of the open channel. */
export function renderSeen() {
  for (const el of document.querySelectorAll('#messages .seen')) el.remove();
  const st = chanState(S.current);
  if (!st.reads || !st.reads.size || !S.user) return;
  for (let i = st.ids.length - 1; i >= 0; i -= 1) {
    const m = st.msgs.get(st.ids[i]);
    if (!m || m.kind || m.authorId !== S.user.id) continue;
    const who = [...st.reads.values()].filter((r) => r.messageId >= m.id).map((r) => r.username).sort();
    if (who.length && m.el) m.el.querySelector('.body').append(h('div', { className: 'seen', text: `Seen by ${who.join(', ')}`, dataset: { testid: 'seen-by' } }));
    return;
  }
}

// ------------------------------------------------------------- replies, threads

/** Starts a reply to m: the composer says so until it is sent or cancelled. */
export function startReply(m) {
  S.replyTo = m;
  renderReplyBanner();
  $('message-input').focus();
}

export function cancelReply() {
  S.replyTo = null;
  renderReplyBanner();
}

function snippet(m) {
  if (!m) return 'a message';
  if (m.deleted) return 'a deleted message';
  return m.text.length > 80 ? `${m.text.slice(0, 80)}…` : m.text;
}

export function renderReplyBanner() {
  let banner = $('reply-banner');
  if (!banner) {
    banner = h('div', { className: 'reply-banner', attrs: { id: 'reply-banner' }, dataset: { testid: 'reply-banner' } });
    $('composer').before(banner);
  }
  const m = S.replyTo && S.replyTo.channelId === S.current ? S.replyTo : null;
  banner.hidden = !m;
  banner.replaceChildren(...(m ? [
    h('span', { text: `Replying to ${m.author}: ` }), h('span', { className: 'quote-text', text: snippet(m) }),
    h('button', { className: 'icon-btn', text: '✕', attrs: { type: 'button', 'aria-label': 'Cancel the reply' }, on: { click: cancelReply } }),
  ] : []));
}

/** The quoted preview of the message m answers; a click opens the thread. */
export function quoteEl(m) {
  const parent = chanState(m.channelId).msgs.get(m.replyTo);
  return h('button', {
    className: 'quote', attrs: { type: 'button', title: 'Open the thread' }, dataset: { testid: 'quote' },
    on: { click: () => openThread(m.channelId, m.replyTo) },
  }, h('span', { className: 'quote-author', text: parent && !parent.deleted ? `↪ ${parent.author}: ` : '↪ ' }),
  h('span', { className: 'quote-text', text: snippet(parent) }));
}

/** The thread panel: the message and its replies, newest last; live replies join. */
export async function openThread(channelId, parentId) {
  S.thread = { channelId, parentId, msgs: new Map() };
  let panel = $('thread-panel');
  if (!panel) {
    panel = h('section', { className: 'thread-panel', attrs: { id: 'thread-panel', 'aria-label': 'Thread' }, dataset: { testid: 'thread' } });
    $('scroller').before(panel);
  }
  panel.hidden = false;
  const parent = chanState(channelId).msgs.get(parentId);
  // The replies this page has already (the newest may not be stored yet), then the
  // stored ones.
  for (const m of chanState(channelId).msgs.values()) if (m.replyTo === parentId) S.thread.msgs.set(m.id, m);
  try {
    const res = await api('GET', `/api/channels/${encodeURIComponent(channelId)}/messages/${encodeURIComponent(parentId)}/replies?limit=100`);
    if (S.thread && S.thread.parentId === parentId) for (const r of pageMessages(res)) if (!S.thread.msgs.has(r.id)) S.thread.msgs.set(r.id, r);
  } catch (e) {
    showNotice(`Cannot load the thread: ${describeError(e)}`);
  }
  if (!S.thread || S.thread.parentId !== parentId) return; // closed, or another opened meanwhile
  if (parent) S.thread.parent = parent;
  renderThread();
}

export function closeThread() {
  S.thread = null;
  const panel = $('thread-panel');
  if (panel) panel.hidden = true;
}

/** A new message that answers the open thread's message. */
export function threadReply(m) {
  if (!S.thread || m.replyTo !== S.thread.parentId || m.channelId !== S.thread.channelId) return;
  S.thread.msgs.set(m.id, m);
  renderThread();
}

function renderThread() {
  const panel = $('thread-panel');
  if (!panel || !S.thread) return;
  const replies = [...S.thread.msgs.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  const line = (m, testid = 'thread-reply') => h('div', { className: 'thread-line', dataset: { id: m.id, testid } },
    h('span', { className: 'author', text: m.deleted ? '' : m.author }), h('span', { className: 'text', text: m.deleted ? 'This message was deleted.' : m.text }));
  panel.replaceChildren(
    h('div', { className: 'thread-head' }, h('strong', { text: 'Thread' }),
      h('button', { className: 'icon-btn', text: '✕', attrs: { type: 'button', 'aria-label': 'Close the thread' }, dataset: { testid: 'thread-close' }, on: { click: closeThread } })),
    S.thread.parent ? h('div', { className: 'thread-parent' }, line(S.thread.parent, 'thread-parent')) : null,
    h('div', { className: 'thread-count', text: `${replies.length} ${replies.length === 1 ? 'reply' : 'replies'}` }),
    ...replies.map((m) => line(m)),
    h('button', { className: 'btn btn-small', text: 'Reply', attrs: { type: 'button' }, dataset: { testid: 'thread-reply-btn' },
      on: { click: () => { const p = S.thread.parent || { id: S.thread.parentId, channelId: S.thread.channelId, author: '', text: '' }; startReply(p); } } }));
}

// ------------------------------------------------------------------ mentions

/** Whether a message mentions the user. */
export function mentionsMe(m) {
  return Array.isArray(m.mentions) && S.user && m.mentions.includes(S.user.id);
}

/** Names the composer can complete after "@": the open channel's members when it has
 * a member list, else who is online and who wrote here. */
async function candidates() {
  const id = S.current;
  const c = S.channels.find((x) => x.id === id);
  const names = new Set();
  if (c && (c.private || c.dm)) {
    try {
      const { members } = await api('GET', `/api/channels/${encodeURIComponent(id)}/members`);
      for (const m of members) names.add(m.username);
    } catch { /* none */ }
  } else {
    for (const n of S.online.values()) names.add(n);
    for (const m of chanState(id).msgs.values()) if (!m.kind && m.author) names.add(m.author);
  }
  if (S.user) names.delete(S.user.username);
  return [...names].sort((a, b) => a.localeCompare(b));
}

/** Shows the names matching the "@word" being typed; Tab or a click completes. */
export async function onMentionInput() {
  const input = $('message-input');
  const before = input.value.slice(0, input.selectionStart);
  const m = before.match(/(?:^|[^A-Za-z0-9_.@-])@([A-Za-z0-9_.-]{0,32})$/);
  let list = $('mention-list');
  if (!list) {
    list = h('ul', { className: 'mention-list', attrs: { id: 'mention-list', role: 'listbox' }, dataset: { testid: 'mention-list' } });
    $('composer').append(list);
  }
  if (!m) { list.hidden = true; return; }
  const word = m[1].toLowerCase();
  const names = (await candidates()).filter((n) => n.toLowerCase().startsWith(word)).slice(0, 6);
  list.hidden = names.length === 0;
  list.replaceChildren(...names.map((n) => h('li', {}, h('button', {
    className: 'mention-option', text: `@${n}`, attrs: { type: 'button', role: 'option' }, dataset: { name: n, testid: 'mention-option' },
    on: { mousedown: (ev) => { ev.preventDefault(); complete(n); } },
  }))));
}

function complete(name) {
  const input = $('message-input');
  const at = input.selectionStart;
  const before = input.value.slice(0, at).replace(/@([A-Za-z0-9_.-]{0,32})$/, `@${name} `);
  input.value = before + input.value.slice(at);
  input.setSelectionRange(before.length, before.length);
  const list = $('mention-list');
  if (list) list.hidden = true;
  input.focus();
}

/** Tab completes the first name offered. True when it did. */
export function completeFirst() {
  const list = $('mention-list');
  const first = list && !list.hidden && list.querySelector('[data-name]');
  if (!first) return false;
  complete(first.dataset.name);
  return true;
}

export function bindReads() {
  const input = $('message-input');
  input.addEventListener('input', () => { onMentionInput(); });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Tab' && completeFirst()) e.preventDefault();
    if (e.key === 'Escape' && S.replyTo) cancelReply();
  });
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') markRead(); });
}
