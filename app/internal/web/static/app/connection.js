// The Socket.IO connection: connect, recover, reconnect.
import { hooks } from './hooks.js';
import { RECOVERED_BADGE_MS, SocketClient } from './constants.js';
import { $ } from './helpers.js';
import { loadLatest } from './history.js';
import { addMessage, renderLocal } from './messages.js';
import { onPresence, renderOnline } from './presence.js';
import { flushOutbox } from './sending.js';
import { S, memberChangeMessage, normalizeMessage } from './state.js';
import { onTyping, renderTyping, stopTyping } from './typing.js';
import { onMessageDelete, onMessageUpdate, onReaction } from './life.js';
import { onMention, onRead } from './reads.js';
import { refreshPanel } from './panel.js';

export function setConnState(state) {
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

export function connectSocket() {
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
    if (err.auth) hooks.logout('Your session has expired. Please log in again.');
  });
  socket.onEvent('message', (raw) => {
    const m = normalizeMessage(raw);
    if (!m) return;
    stopTyping(m.channelId, m.authorId);
    addMessage(m);
  });
  // The server ends a socket whose token was revoked (a log-out elsewhere) or expired.
  socket.onEvent('session:end', (e) => {
    if (S.socket !== socket) return;
    const why = e && typeof e.message === 'string' && e.message ? e.message : 'the session ended; sign in again';
    hooks.logout(`${why[0].toUpperCase()}${why.slice(1)}.`);
  });
  for (const kind of ['member:join', 'member:update', 'member:leave', 'channel:update', 'channel:delete']) {
    socket.onEvent(kind, (e) => {
      const m = memberChangeMessage(kind, e);
      if (m) addMessage(m);
      if (kind === 'member:leave') onMemberLeave(e);
      if (e && e.channelId === S.current) refreshPanel();
      if (kind === 'channel:update') hooks.onChannelUpdate(e);
      if (kind === 'channel:delete' && e && typeof e.channelId === 'string') hooks.forgetChannel(e.channelId, true);
    });
  }
  socket.onEvent('message:update', onMessageUpdate);
  socket.onEvent('message:delete', onMessageDelete);
  socket.onEvent('reaction', onReaction);
  socket.onEvent('read', onRead);
  socket.onEvent('mention', onMention);
  socket.onEvent('presence', onPresence);
  socket.onEvent('typing', onTyping);
  socket.open();
}

/** A member left a channel; when it is this user (removed, or left elsewhere), the
 * channel goes from this page as it went from the server's view. */
function onMemberLeave(e) {
  if (!e || !S.user || e.userId !== S.user.id || typeof e.channelId !== 'string') return;
  hooks.forgetChannel(e.channelId);
}

export async function onConnected(socket, recovered) {
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
      hooks.loadChannels().catch(() => {});
    }
  }
  if (S.user && S.user.id && !S.online.has(S.user.id)) S.online.set(S.user.id, S.user.username);
  renderOnline();
  const joins = hooks.channelsToJoin().map((id) => hooks.joinChannel(id));
  await Promise.allSettled(joins);
  if (S.socket === socket && socket.connected) flushOutbox();
}
