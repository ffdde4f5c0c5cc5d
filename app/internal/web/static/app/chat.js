// The chat screen: channels, joining, the channel list.
import { api } from './api.js';
import { connectSocket, setConnState } from './connection.js';
import { CHANNEL_PAGE, JOIN_TIMEOUT_MS, LS_CHANNEL, LS_JOINED, MAX_JOINED } from './constants.js';
import { $, avatar, describeError, h } from './helpers.js';
import { loadLatest } from './history.js';
import { closeSidebar } from './layout.js';
import { renderMessages, scrollToBottom } from './messages.js';
import { showNotice } from './notice.js';
import { S, chanState } from './state.js';
import { renderTyping } from './typing.js';
import { refreshPanel } from './panel.js';
import { closeThread, markRead, openedChannel, renderReplyBanner, takeCounts } from './reads.js';

export async function startChat() {
  $('auth-view').hidden = true;
  $('chat-view').hidden = false;
  $('me-name').textContent = S.user.username;
  $('me-avatar').replaceWith(Object.assign(avatar(S.user.username, 'avatar-sm'), { id: 'me-avatar' }));
  setConnState('connecting');
  loadJoined();
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
export function channelNameFromHash() {
  try {
    return decodeURIComponent(location.hash.replace(/^#\/?/, ''));
  } catch {
    return '';
  }
}

/** The first page of the channel list, with the channels the user joined wherever
 * they fall in it. */
export async function loadChannels() {
  const res = await api('GET', `/api/channels?limit=${CHANNEL_PAGE}`);
  S.channels = [];
  addChannels(res);
}

/** The next page of the channel list (the "More channels" button). */
export async function loadMoreChannels() {
  if (!S.channelsNext) return;
  try {
    const res = await api('GET', `/api/channels?limit=${CHANNEL_PAGE}&after=${encodeURIComponent(S.channelsNext.after)}&afterId=${encodeURIComponent(S.channelsNext.afterId)}`);
    addChannels(res);
  } catch (e) {
    if (S.token) showNotice(`Cannot load more channels: ${describeError(e)}`);
  }
}

function addChannels(res) {
  const list = res && Array.isArray(res.channels) ? res.channels : [];
  const byId = new Map(S.channels.map((c) => [c.id, c]));
  // Direct-message channels are not shown here yet (their name is their users' ids).
  for (const c of list) {
    takeCounts(c);
    byId.set(String(c.id), { id: String(c.id), name: String(c.name), private: c.kind === 'private', archived: !!c.archived, dm: c.kind === 'dm',
      role: typeof c.role === 'string' ? c.role : '' });
  }
  for (const [id, name] of S.joined) if (!byId.has(id)) byId.set(id, { id, name });
  S.channels = [...byId.values()].sort((a, b) => a.name.localeCompare(b.name));
  S.channelsNext = res && typeof res.nextAfter === 'string' && typeof res.nextAfterId === 'string' ? { after: res.nextAfter, afterId: res.nextAfterId } : null;
  if (S.socket && S.socket.connected) {
    for (const c of S.channels) if (c.dm && !chanState(c.id).joined) joinChannel(c.id); // their messages count as they come
  }
  renderChannels();
  resolveDMNames();
}

/** Finds the other person of each DM not named yet (its members), then redraws. */
async function resolveDMNames() {
  const todo = S.channels.filter((c) => c.dm && !S.dmNames.has(c.id));
  if (!todo.length) return;
  await Promise.allSettled(todo.map(async (c) => {
    const { members } = await api('GET', `/api/channels/${encodeURIComponent(c.id)}/members`);
    const other = members.find((m) => !S.user || m.userId !== S.user.id) || members[0];
    if (other) S.dmNames.set(c.id, other.username);
  }));
  renderChannels();
  if (S.current && S.dmNames.has(S.current)) $('channel-name').textContent = displayName(S.channels.find((c) => c.id === S.current));
}

/** What a channel is called on the page: its name, or "@" and the other person for a DM. */
export function displayName(c) {
  if (!c) return '';
  return c.dm ? `@${S.dmNames.get(c.id) || '…'}` : c.name;
}

/** Opens (making it on first use) the DM with a user, from the people list. */
export async function openDM(userId, username) {
  try {
    const res = await api('POST', '/api/dms', { userId });
    const ch = res && res.channel;
    if (!ch) return;
    if (username) S.dmNames.set(String(ch.id), username);
    if (!S.channels.some((c) => c.id === ch.id)) {
      S.channels.push({ id: String(ch.id), name: String(ch.name), dm: true });
      S.channels.sort((a, b) => a.name.localeCompare(b.name));
    }
    chanState(String(ch.id)).loaded = false;
    selectChannel(String(ch.id));
  } catch (e) {
    if (S.token) showNotice(`Cannot open the conversation: ${describeError(e)}`);
  }
}

/** Where this browser keeps the channels a user opened: one list per user, so the
 * next user of the browser chooses their own and the last one finds theirs again. */
const joinedKey = () => `${LS_JOINED}.${S.user && S.user.id}`;

/** The channels this user opened on this browser, from the last visit. */
function loadJoined() {
  S.joined.clear();
  try {
    const list = JSON.parse(localStorage.getItem(joinedKey()) || '[]');
    if (Array.isArray(list)) {
      for (const c of list.slice(0, MAX_JOINED)) {
        if (c && typeof c.id === 'string' && typeof c.name === 'string') S.joined.set(c.id, c.name);
      }
    }
  } catch { /* a damaged entry: start over */ }
}

function saveJoined() {
  localStorage.setItem(joinedKey(), JSON.stringify([...S.joined].map(([cid, n]) => ({ id: cid, name: n }))));
}

/** Remembers that the user opened channel id: it is joined on every connect. */
function rememberJoined(id, name) {
  if (S.joined.has(id)) return;
  if (S.joined.size >= MAX_JOINED) S.joined.delete(S.joined.keys().next().value); // the oldest
  S.joined.set(id, name);
  saveJoined();
}

/** Forgets a channel this user is no longer in: out of the joined list, and out of
 * the channel list when it is private. */
export function forgetChannel(id, deleted = false) {
  const c = S.channels.find((x) => x.id === id);
  S.joined.delete(id);
  saveJoined();
  chanState(id).joined = false;
  const gone = c && (c.private || deleted);
  if (gone) S.channels = S.channels.filter((x) => x.id !== id);
  if (S.current === id && gone) {
    showNotice(deleted ? `#${c.name} was deleted.` : `You are no longer a member of ${c.name}.`);
    const next = S.channels.find((x) => x.name === 'general') || S.channels[0];
    if (next) selectChannel(next.id);
  }
  renderChannels();
}

/** A channel was renamed or (un)archived: the list, the header and the composer follow. */
export function onChannelUpdate(e) {
  if (!e || typeof e.channelId !== 'string') return;
  const c = S.channels.find((x) => x.id === e.channelId);
  if (!c) return;
  if (typeof e.name === 'string' && e.name) {
    c.name = e.name;
    if (S.joined.has(c.id)) { S.joined.set(c.id, c.name); saveJoined(); }
  }
  c.archived = !!e.archived;
  S.channels.sort((a, b) => a.name.localeCompare(b.name));
  if (S.current === c.id) selectChannel(c.id);
  else renderChannels();
}

/** The channels to join on connect: the open one first, then the ones the user chose,
 * then every direct-message channel listed (few, and a new message there must show). */
export function channelsToJoin() {
  const dms = S.channels.filter((c) => c.dm).map((c) => c.id);
  return [...new Set([S.current, ...S.joined.keys(), ...dms])].filter(Boolean).slice(0, MAX_JOINED);
}

export function channelName(id) {
  const c = S.channels.find((x) => x.id === id);
  return c ? c.name : '';
}

export function renderChannels() {
  const ul = $('channel-list');
  const items = S.channels.filter((c) => !c.dm).map((c) => {
    const st = chanState(c.id);
    const li = h('li', {
      className: 'channel' + (c.id === S.current ? ' active' : '') + (st.unread ? ' has-unread' : ''),
      dataset: { channelName: c.name, channelId: c.id, testid: 'channel' },
    });
    const btn = h('button', {
      className: 'channel-btn',
      attrs: { type: 'button', 'aria-current': c.id === S.current ? 'page' : 'false' },
      on: { click: () => selectChannel(c.id) },
    }, h('span', { className: c.private ? 'hash lock' : 'hash', text: c.private ? '' : '#', attrs: { 'aria-hidden': 'true' } }),
    h('span', { className: 'name', text: c.name }));
    if (st.mentions) btn.append(h('span', { className: 'mention-badge', text: `@${st.mentions}`, attrs: { 'aria-label': `${st.mentions} mentions` }, dataset: { testid: 'mention-badge' } }));
    if (st.unread) btn.append(h('span', { className: 'unread', text: st.unread > 99 ? '99+' : String(st.unread), attrs: { 'aria-label': `${st.unread} unread` }, dataset: { testid: 'unread' } }));
    li.append(btn);
    return li;
  });
  if (S.channelsNext) {
    items.push(h('li', { className: 'channel more' }, h('button', {
      className: 'channel-btn more-btn',
      attrs: { type: 'button' },
      dataset: { testid: 'more-channels' },
      on: { click: () => loadMoreChannels() },
    }, 'More channels…')));
  }
  ul.replaceChildren(...items);
  $('dm-list').replaceChildren(...S.channels.filter((c) => c.dm).map((c) => {
    const st = chanState(c.id);
    const btn = h('button', {
      className: 'channel-btn', attrs: { type: 'button', 'aria-current': c.id === S.current ? 'page' : 'false' },
      on: { click: () => selectChannel(c.id) },
    }, h('span', { className: 'name', text: displayName(c) }));
    if (st.mentions) btn.append(h('span', { className: 'mention-badge', text: `@${st.mentions}` }));
    if (st.unread) btn.append(h('span', { className: 'unread', text: st.unread > 99 ? '99+' : String(st.unread), dataset: { testid: 'unread' } }));
    return h('li', { className: 'channel dm' + (c.id === S.current ? ' active' : '') + (st.unread ? ' has-unread' : ''),
      dataset: { channelId: c.id, peer: S.dmNames.get(c.id) || '', testid: 'dm' } }, btn);
  }));
  updateTitle();
}

export function updateTitle() {
  let unread = 0;
  for (const c of S.channels) unread += chanState(c.id).unread;
  const c = S.channels.find((x) => x.id === S.current);
  const name = c ? (c.dm ? displayName(c) : `#${c.name}`) : '';
  document.title = `${unread ? `(${unread}) ` : ''}${name ? name + ' · ' : ''}Quibly`;
  $('menu-unread').hidden = unread === 0;
}

export function selectChannel(id) {
  if (!S.channels.some((c) => c.id === id)) return;
  const changed = S.current !== id;
  S.current = id;
  const st = chanState(id);
  if (changed) {
    openedChannel(id); // the "new messages" line and receipts, before the counts go
    closeThread();
    renderReplyBanner();
  }
  st.unread = 0;
  st.mentions = 0;
  const name = channelName(id);
  rememberJoined(id, name);
  localStorage.setItem(LS_CHANNEL, id);
  if (location.hash !== '#' + encodeURIComponent(name)) history.replaceState(null, '', '#' + encodeURIComponent(name));
  const ch = S.channels.find((c) => c.id === id);
  $('channel-name').textContent = ch && ch.dm ? displayName(ch).slice(1) : name;
  const mark = $('channel-title').querySelector('.hash');
  mark.textContent = ch && ch.dm ? '@' : ch && ch.private ? '' : '#';
  mark.classList.toggle('lock', !!(ch && ch.private));
  const archived = !!(ch && ch.archived);
  $('message-input').placeholder = archived ? `#${name} is archived: read only` : `Message ${ch && ch.dm ? displayName(ch) : `#${name}`}`;
  $('message-input').disabled = archived;
  renderChannels();
  closeSidebar();
  refreshPanel();
  if (changed) {
    renderMessages();
    renderTyping();
    scrollToBottom();
  }
  if (!st.loaded || st.stale) loadLatest(id);
  else markRead();
  if (S.socket && S.socket.connected && !st.joined) joinChannel(id);
  if (window.matchMedia('(min-width: 769px)').matches) $('message-input').focus();
}

export async function joinChannel(id) {
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

export async function createChannel(ev) {
  ev.preventDefault();
  const input = $('new-channel-name');
  const name = input.value.trim().replace(/^#+/, '');
  if (!name) { input.focus(); return; }
  const btn = $('create-channel-btn');
  btn.disabled = true;
  try {
    const res = await api('POST', '/api/channels', { name, private: $('new-channel-private').checked });
    const ch = (res && (res.channel || res)) || {};
    const c = { id: String(ch.id), name: String(ch.name || name), private: ch.kind === 'private' };
    if (!S.channels.some((x) => x.id === c.id)) {
      S.channels.push(c);
      S.channels.sort((a, b) => a.name.localeCompare(b.name));
    }
    input.value = '';
    $('new-channel-private').checked = false;
    chanState(c.id).loaded = false;
    if (S.socket && S.socket.connected) await joinChannel(c.id);
    selectChannel(c.id);
  } catch (e) {
    if (S.token) showNotice(`Cannot create #${name}: ${describeError(e)}`);
  } finally {
    btn.disabled = false;
  }
}
