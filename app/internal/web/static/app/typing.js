// Typing indicators, sent and shown.
import { TYPING_SEND_EVERY_MS, TYPING_SHOW_MS } from './constants.js';
import { $ } from './helpers.js';
import { autosize } from './layout.js';
import { S } from './state.js';

export function onComposerInput() {
  autosize();
  const v = $('message-input').value;
  if (!v.trim() || !S.current || !S.socket || !S.socket.connected) return;
  const now = Date.now();
  if (now - S.lastTypingSent >= TYPING_SEND_EVERY_MS) {
    S.lastTypingSent = now;
    S.socket.emit('typing', { channelId: S.current });
  }
}

export function onTyping(p) {
  if (!p || !p.channelId) return;
  const userId = String(p.userId ?? '');
  if (S.user && userId === S.user.id) return;
  let m = S.typing.get(p.channelId);
  if (!m) { m = new Map(); S.typing.set(p.channelId, m); }
  m.set(userId, { username: String(p.username || 'Someone'), until: Date.now() + TYPING_SHOW_MS });
  if (p.channelId === S.current) renderTyping();
}

export function stopTyping(channelId, userId) {
  const m = S.typing.get(channelId);
  if (m && m.delete(userId) && channelId === S.current) renderTyping();
}

export function renderTyping() {
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
