// Who is online.
import { hooks } from './hooks.js';
import { $, h } from './helpers.js';
import { S } from './state.js';
import { stopTyping } from './typing.js';

export function onPresence(p) {
  if (!p || p.userId === undefined) return;
  const id = String(p.userId);
  if (p.status === 'online') S.online.set(id, String(p.username || id));
  else if (p.status === 'offline') {
    S.online.delete(id);
    for (const c of S.typing.keys()) stopTyping(c, id);
  }
  renderOnline();
}

export function renderOnline() {
  const ul = $('online-users');
  const users = [...S.online.entries()].sort((a, b) => a[1].localeCompare(b[1]));
  ul.replaceChildren(...users.map(([id, name]) => {
    const me = S.user && id === S.user.id;
    return h('li', { className: 'user' + (me ? ' me' : ''), dataset: { username: name, userId: id } },
      h('span', { className: 'presence-dot', attrs: { 'aria-hidden': 'true' } }),
      h('span', { className: 'name', text: name }),
      me ? h('span', { className: 'you', text: 'you' }) : null,
      h('button', { className: 'btn btn-ghost btn-small dm-btn', text: me ? 'Notes' : 'Message',
        attrs: { type: 'button', 'aria-label': me ? 'Your notes' : `Message ${name}` }, dataset: { testid: 'dm-btn' },
        on: { click: () => hooks.openDM(id, name) } }));
  }));
  $('online-count').textContent = users.length ? String(users.length) : '';
}
