// A message's life: edit, delete (with a confirmation), reactions. Each change is
// asked of the server, which answers in the ack and tells every member in the
// channel's order (message:update, message:delete, reaction); the page changes when
// that event comes, so every member's page shows the same, in the same order.
import { SEND_TIMEOUT_MS } from './constants.js';
import { $, describeError, h, uuid } from './helpers.js';
import { hooks } from './hooks.js';
import { openThread, startReply } from './reads.js';
import { showNotice } from './notice.js';
import { S, chanState } from './state.js';

/** The emoji the picker offers (any one emoji is accepted by the server). */
export const PICKER = ['👍', '❤️', '😂', '🎉', '😮', '😢', '👀', '✅'];

const ERRORS = {
  not_found: 'That message is gone.',
  forbidden: 'You cannot change that message.',
  too_large: 'Too long, or too many reactions.',
};

/** Asks the server for a change; shows its refusal in words. True when done. */
async function ask(event, payload) {
  if (!S.socket || !S.socket.connected) {
    showNotice('Not connected: try again once the connection is back.');
    return false;
  }
  try {
    const res = await S.socket.request(event, { ...payload, nonce: uuid() }, SEND_TIMEOUT_MS);
    if (res && res.ok) return res;
    const err = (res && res.error) || { code: 'invalid', message: 'Unexpected answer from the server' };
    showNotice(ERRORS[err.code] ? `${ERRORS[err.code]} (${err.message})` : describeError(err));
  } catch (e) {
    showNotice(describeError({ code: e.code || 'unavailable', message: e.message }));
  }
  return false;
}

function myRole(channelId) {
  const c = S.channels.find((x) => x.id === channelId);
  return (c && c.role) || '';
}

export function canEdit(m) { return !m.deleted && !m.kind && S.user && m.authorId === S.user.id; }
export function canDelete(m) {
  if (m.deleted || m.kind || !S.user) return false;
  const role = myRole(m.channelId);
  return m.authorId === S.user.id || role === 'owner' || role === 'admin';
}

/** The message's reaction chips; a click toggles the user's own. */
export function reactionsEl(m) {
  const list = Array.isArray(m.reactions) ? m.reactions : [];
  return h('div', { className: 'reactions', dataset: { testid: 'reactions' } },
    ...list.filter((r) => r.count > 0).map((r) => h('button', {
      className: 'reaction' + (r.me ? ' me' : ''),
      text: `${r.emoji} ${r.count}`,
      attrs: { type: 'button', title: r.me ? `Take back ${r.emoji}` : `React with ${r.emoji}`, 'aria-pressed': String(!!r.me) },
      dataset: { emoji: r.emoji, testid: 'reaction' },
      on: { click: () => react(m, r.emoji, !r.me) },
    })));
}

/** The hover actions of a message: react, and edit and delete as the user may. */
export function actionsEl(m) {
  const picker = h('div', { className: 'picker', attrs: { role: 'menu' }, dataset: { testid: 'picker' } },
    ...PICKER.map((e) => h('button', { className: 'pick', text: e, attrs: { type: 'button', 'aria-label': `React with ${e}` },
      dataset: { emoji: e, testid: 'pick' }, on: { click: () => { picker.hidden = true; react(m, e, true); } } })));
  picker.hidden = true;
  const buttons = [h('button', { className: 'act', text: '☺+', attrs: { type: 'button', title: 'Add a reaction' },
    dataset: { testid: 'react-btn' }, on: { click: () => { picker.hidden = !picker.hidden; } } }),
  h('button', { className: 'act', text: 'Reply', attrs: { type: 'button' }, dataset: { testid: 'reply-btn' }, on: { click: () => startReply(m) } }),
  h('button', { className: 'act', text: 'Thread', attrs: { type: 'button', title: 'The replies to this message' }, dataset: { testid: 'thread-btn' },
    on: { click: () => openThread(m.channelId, m.id) } })];
  if (canEdit(m)) {
    buttons.push(h('button', { className: 'act', text: 'Edit', attrs: { type: 'button' }, dataset: { testid: 'edit-btn' }, on: { click: () => startEdit(m) } }));
  }
  if (canDelete(m)) {
    buttons.push(h('button', { className: 'act', text: 'Delete', attrs: { type: 'button' }, dataset: { testid: 'delete-btn' }, on: { click: () => confirmDelete(m) } }));
  }
  return h('div', { className: 'actions' }, ...buttons, picker);
}

async function react(m, emoji, add) {
  await ask(add ? 'reaction:add' : 'reaction:remove', { messageId: m.id, emoji });
}

/** Replaces the message's text by an editor: Enter saves, Escape cancels. */
export function startEdit(m) {
  if (!canEdit(m) || !m.el) return;
  const body = m.el.querySelector('.text');
  if (!body) return;
  const input = h('textarea', { className: 'edit-input', attrs: { rows: '2', 'aria-label': 'Edit message' }, dataset: { testid: 'edit-input' } });
  input.value = m.text;
  const cancel = () => { hooks.rerender(m); };
  const save = async () => {
    const text = input.value.replace(/\s+$/, '');
    if (text === m.text) { cancel(); return; }
    if (!text.trim()) { showNotice('A message cannot be empty: delete it instead.'); return; }
    input.disabled = true;
    if (await ask('message:edit', { id: m.id, text })) cancel(); // the message:update event shows the new text
    else input.disabled = false;
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); save(); }
    if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); cancel(); }
  });
  const editor = h('div', { className: 'editor' }, input,
    h('div', { className: 'editor-buttons' },
      h('button', { className: 'btn btn-small', text: 'Save', attrs: { type: 'button' }, dataset: { testid: 'edit-save' }, on: { click: save } }),
      h('button', { className: 'btn btn-small btn-ghost', text: 'Cancel', attrs: { type: 'button' }, on: { click: cancel } })));
  body.replaceWith(editor);
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

/** Asks in place whether to delete, then does. */
function confirmDelete(m) {
  if (!m.el || m.el.querySelector('.confirm')) return;
  const box = h('div', { className: 'confirm', attrs: { role: 'alertdialog', 'aria-label': 'Delete this message?' } },
    h('span', { text: 'Delete this message for everyone?' }),
    h('button', { className: 'btn btn-small btn-danger', text: 'Delete', attrs: { type: 'button' }, dataset: { testid: 'delete-confirm' },
      on: { click: async () => { box.remove(); await ask('message:delete', { id: m.id }); } } }),
    h('button', { className: 'btn btn-small btn-ghost', text: 'Cancel', attrs: { type: 'button' }, on: { click: () => box.remove() } }));
  m.el.querySelector('.body').append(box);
}

/** The up arrow in an empty composer edits the user's last message of the channel. */
export function editLast() {
  const st = chanState(S.current);
  for (let i = st.ids.length - 1; i >= 0; i -= 1) {
    const m = st.msgs.get(st.ids[i]);
    if (canEdit(m)) { startEdit(m); return true; }
  }
  return false;
}

function known(channelId, id) {
  if (typeof channelId !== 'string' || typeof id !== 'string') return null;
  return chanState(channelId).msgs.get(id) || null; // not loaded: history will show it as it is
}

export function onMessageUpdate(e) {
  const m = e && known(e.channelId, e.id);
  if (!m || m.deleted || typeof e.text !== 'string') return; // a change after the delete changes nothing
  m.text = e.text;
  m.editedAt = typeof e.editedAt === 'number' ? e.editedAt : Date.now();
  hooks.rerender(m);
}

export function onMessageDelete(e) {
  const m = e && known(e.channelId, e.id);
  if (!m) return;
  m.deleted = true;
  m.text = '';
  m.reactions = [];
  hooks.rerender(m);
}

export function onReaction(e) {
  const m = e && known(e.channelId, e.messageId);
  if (!m || m.deleted || typeof e.emoji !== 'string') return;
  const list = Array.isArray(m.reactions) ? m.reactions : [];
  let r = list.find((x) => x.emoji === e.emoji);
  if (!r) { r = { emoji: e.emoji, count: 0, me: false }; list.push(r); }
  const mine = S.user && e.userId === S.user.id;
  if (e.op === 'add') { r.count += 1; if (mine) r.me = true; }
  if (e.op === 'remove') { r.count = Math.max(0, r.count - 1); if (mine) r.me = false; }
  m.reactions = list.filter((x) => x.count > 0);
  hooks.rerender(m);
}

export function bindLife() {
  $('message-input').addEventListener('keydown', (e) => {
    if (e.key === 'ArrowUp' && !e.target.value && editLast()) e.preventDefault();
  });
}
