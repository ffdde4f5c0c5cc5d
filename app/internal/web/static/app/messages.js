// Rendering messages and keeping each channel's list in order.
import { hooks } from './hooks.js';
import { $, SHORT_ERROR, avatar, describeError, fillText, fullFmt, h, shortTime, toDate } from './helpers.js';
import { actionsEl, reactionsEl } from './life.js';
import { dividerBefore, markRead, mentionsMe, quoteEl, renderSeen, threadReply } from './reads.js';
import { S, chanState } from './state.js';

export function bsearch(ids, id) {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid] < id) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/** Adds a confirmed message to its channel (deduplicated by id, ordered by id). */
export function addMessage(m, opts = {}) {
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
    if (!m.kind) markRead();
    if (mine(m)) renderSeen();
  } else if (!opts.fromHistory && !m.kind && m.authorId !== S.user.id && st.loaded !== undefined) {
    st.unread++;
    hooks.renderChannels();
  }
  if (m.replyTo) threadReply(m);
  return true;
}

const mine = (m) => S.user && m.authorId === S.user.id;

/** What a change of the channel's state says, in words. */
export function describeChange(m) {
  const d = m.data || {};
  const who = d.username || 'someone';
  const by = d.byName || 'someone';
  switch (m.kind) {
    case 'member:join':
      return d.by === d.userId ? `${who} joined` : `${by} added ${who}${d.role && d.role !== 'member' ? ` as ${d.role}` : ''}`;
    case 'member:update':
      return `${by} made ${who} ${d.role === 'admin' ? 'an admin' : d.role === 'owner' ? 'an owner' : 'a member'}`;
    case 'member:leave':
      return d.by === d.userId ? `${who} left` : `${by} removed ${who}`;
    case 'channel:update':
      return d.archived ? `${by} archived the channel` : `${by} named the channel ${d.name || ''}`;
    case 'channel:delete':
      return `${by} deleted the channel`;
    default:
      return `${m.kind}`;
  }
}

export function messageEl(m) {
  if (m.el) return m.el;
  if (m.kind) {
    const d = toDate(m.ts);
    m.el = h('div', { className: 'message system', dataset: { id: m.id, testid: 'system-message' } },
      h('span', { className: 'text', text: describeChange(m) }),
      h('time', { className: 'time', text: shortTime(d), attrs: { datetime: d.toISOString(), title: fullFmt.format(d) } }));
    return m.el;
  }
  const d = toDate(m.ts);
  const mine = S.user && m.authorId === S.user.id;
  const text = h('div', { className: 'text' });
  if (m.deleted) text.textContent = 'This message was deleted.';
  else fillText(text, m.text, S.user ? S.user.username : '');
  const meta = h('div', { className: 'meta' },
    h('span', { className: 'author', text: m.deleted ? '' : m.author }),
    h('time', { className: 'time', text: shortTime(d), attrs: { datetime: d.toISOString(), title: fullFmt.format(d) } }));
  if (m.editedAt && !m.deleted) {
    const e = toDate(m.editedAt);
    meta.append(h('span', { className: 'edited', text: '(edited)', attrs: { title: `Edited ${fullFmt.format(e)}` }, dataset: { testid: 'edited' } }));
  }
  m.el = h('article', {
    className: 'message' + (mine ? ' mine' : '') + (m.deleted ? ' deleted' : '') + (!m.deleted && mentionsMe(m) ? ' mentions-me' : ''),
    dataset: { id: m.id, authorId: m.authorId, testid: 'message' },
  },
  avatar(m.deleted ? '?' : m.author),
  h('div', { className: 'body' }, meta, ...(m.replyTo ? [quoteEl(m)] : []), text, ...(m.deleted ? [] : [reactionsEl(m), actionsEl(m)])));
  return m.el;
}

/** Draws a message again after it changed (edited, deleted, reacted to). */
export function rerender(m) {
  const old = m.el;
  m.el = null;
  const el = messageEl(m);
  if (old && old.isConnected) old.replaceWith(el);
}

/** The element of a message not yet acked (pending) or refused (failed). */
export function localEl(o) {
  const text = h('div', { className: 'text' });
  fillText(text, o.text);
  const status = h('div', { className: 'status' });
  if (o.status === 'failed') {
    status.append(
      h('span', { className: 'status-text', text: `Not sent: ${(o.error && SHORT_ERROR[o.error.code]) || describeError(o.error)}.` }),
      h('button', { className: 'btn btn-small btn-danger retry-btn', text: 'Retry', attrs: { type: 'button' }, on: { click: () => hooks.retry(o.nonce) } }),
      h('button', { className: 'btn btn-small btn-ghost discard-btn', text: 'Discard', attrs: { type: 'button' }, on: { click: () => hooks.discard(o.nonce) } }));
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

export function renderLocal(o) {
  const el = localEl(o);
  if (o.el && o.el.isConnected) o.el.replaceWith(el);
  else if (o.channelId === S.current) $('messages').append(el);
  o.el = el;
}

export function renderMessages() {
  const list = $('messages');
  const st = chanState(S.current);
  const els = st.ids.map((id) => messageEl(st.msgs.get(id)));
  const at = dividerBefore(st);
  if (at) els.splice(st.ids.indexOf(at), 0, h('div', { className: 'new-divider', text: 'New messages', dataset: { testid: 'new-divider' } }));
  for (const o of S.outbox.values()) {
    if (o.channelId !== S.current) continue;
    o.el = localEl(o);
    els.push(o.el);
  }
  list.replaceChildren(...els);
  renderOlderButton();
  renderEmptyState();
}

export function renderOlderButton() {
  const st = chanState(S.current);
  $('load-older').hidden = !(st.loaded && st.nextBefore);
}

export function renderEmptyState() {
  const st = chanState(S.current);
  const hasLocal = [...S.outbox.values()].some((o) => o.channelId === S.current);
  $('empty-state').hidden = !(st.loaded && st.ids.length === 0 && !hasLocal);
}

export function isNearBottom() {
  const s = $('scroller');
  return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
}

export function scrollToBottom() {
  const s = $('scroller');
  s.scrollTop = s.scrollHeight;
}
