// The channel panel: the open channel's members and roles, and what the user's role
// lets it do there (invite, change roles, remove, rename, archive, delete, leave).
import { api } from './api.js';
import { hooks } from './hooks.js';
import { $, describeError, h } from './helpers.js';
import { showNotice } from './notice.js';
import { S } from './state.js';

const ROLES = ['member', 'admin', 'owner'];

export function togglePanel() {
  const panel = $('channel-panel');
  const open = panel.hidden;
  panel.hidden = !open;
  $('channel-panel-btn').setAttribute('aria-expanded', String(open));
  if (open) refreshPanel();
}

/** Reloads the open panel (after a change, or a switch of channel). */
export async function refreshPanel() {
  if ($('channel-panel').hidden || !S.current) return;
  const id = S.current;
  try {
    const [{ channel }, { members }] = await Promise.all([
      api('GET', `/api/channels/${encodeURIComponent(id)}`),
      api('GET', `/api/channels/${encodeURIComponent(id)}/members`),
    ]);
    if (S.current !== id) return;
    const known = S.channels.find((c) => c.id === id);
    if (known) known.role = channel.role || ''; // what the message actions offer
    renderPanel(channel, members);
  } catch (e) {
    if (S.token) showNotice(`Cannot load the channel's members: ${describeError(e)}`);
  }
}

function renderPanel(channel, members) {
  const mine = channel.role || '';
  const manages = mine === 'owner' || mine === 'admin';
  const rows = members.map((m) => {
    const li = h('li', { className: 'member', dataset: { userId: m.userId, username: m.username, role: m.role, testid: 'member' } },
      h('span', { className: 'member-name', text: m.username }));
    const self = S.user && m.userId === S.user.id;
    if (manages && !self && channel.kind !== 'dm' && (mine === 'owner' || m.role === 'member')) {
      const select = h('select', { attrs: { 'aria-label': `Role of ${m.username}` }, dataset: { testid: 'member-role' },
        on: { change: () => act(`PUT`, `/members/${m.userId}`, { role: select.value }) } });
      for (const r of ROLES) {
        if (r === 'owner' && mine !== 'owner') continue;
        const opt = h('option', { text: r, attrs: { value: r } });
        if (r === m.role) opt.selected = true;
        select.append(opt);
      }
      li.append(select, h('button', { className: 'btn btn-ghost btn-small', text: 'Remove', attrs: { type: 'button' },
        dataset: { testid: 'member-remove' }, on: { click: () => act('DELETE', `/members/${m.userId}`) } }));
    } else {
      li.append(h('span', { className: 'member-role', text: m.role }));
    }
    return li;
  });
  $('member-list').replaceChildren(...rows);
  $('invite-form').hidden = !manages || channel.kind === 'dm';
  $('rename-form').hidden = mine !== 'owner' || channel.kind === 'dm';
  $('owner-actions').hidden = mine !== 'owner' || channel.kind === 'dm';
  $('rename-name').value = channel.name;
  $('archive-btn').textContent = channel.archived ? 'Unarchive' : 'Archive';
  $('archive-btn').dataset.archived = channel.archived ? 'true' : 'false';
  $('leave-btn').hidden = !mine || channel.kind === 'dm';
}

/** Runs one change of the open channel and shows its error in words; the panel is
 * reloaded unless the change takes the channel from the user (refresh false). */
async function act(method, path, body, refresh = true) {
  const id = S.current;
  try {
    await api(method, `/api/channels/${encodeURIComponent(id)}${path}`, body);
    if (refresh) refreshPanel();
    return true;
  } catch (e) {
    if (S.token) showNotice(describeError(e));
    refreshPanel();
    return false;
  }
}

export function bindPanel() {
  $('channel-panel-btn').addEventListener('click', togglePanel);
  $('invite-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const username = $('invite-name').value.trim();
    if (!username) return;
    if (await act('POST', '/members', { username, role: 'member' })) $('invite-name').value = '';
  });
  $('rename-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('rename-name').value.trim();
    if (name) act('PATCH', '', { name });
  });
  $('archive-btn').addEventListener('click', () => act('PATCH', '', { archived: $('archive-btn').dataset.archived !== 'true' }));
  $('delete-btn').addEventListener('click', async () => {
    const c = S.channels.find((x) => x.id === S.current);
    if (!c || !window.confirm(`Delete #${c.name} for everyone? Its history goes with it.`)) return;
    const id = c.id;
    if (await act('DELETE', '', undefined, false)) hooks.forgetChannel(id, true);
  });
  $('leave-btn').addEventListener('click', async () => {
    const id = S.current;
    if (S.user && await act('DELETE', `/members/${S.user.id}`, undefined, false)) hooks.forgetChannel(id);
  });
}
