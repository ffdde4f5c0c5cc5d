// Quibly web client: sign-in, channels, history over REST, live chat over
// Socket.IO (client.js). All user-provided text is put into the page with
// textContent / DOM nodes only, never parsed as HTML.
// This module starts the client; the rest is in app/, one module a concern.

import { authenticate, logout, showAuth, signOut } from './app/auth.js';
import {
  channelNameFromHash, channelsToJoin, createChannel, forgetChannel, joinChannel, loadChannels, onChannelUpdate, openDM,
  renderChannels, selectChannel, startChat,
} from './app/chat.js';
import { setConnState } from './app/connection.js';
import { LS_TOKEN, LS_USER } from './app/constants.js';
import { $ } from './app/helpers.js';
import { loadOlder } from './app/history.js';
import { hooks } from './app/hooks.js';
import { closeSidebar, openSidebar } from './app/layout.js';
import { rerender } from './app/messages.js';
import { hideNotice } from './app/notice.js';
import { discard, retry, send } from './app/sending.js';
import { S } from './app/state.js';
import { onComposerInput } from './app/typing.js';
import { bindPanel } from './app/panel.js';
import { bindLife } from './app/life.js';
import { bindReads } from './app/reads.js';

// What lower modules call of higher ones (app/hooks.js).
Object.assign(hooks, {
  logout, renderChannels, forgetChannel, openDM, joinChannel, loadChannels, onChannelUpdate, channelsToJoin, rerender, retry, discard,
});

function boot() {
  window.quibly = { state: S, socket: null };

  $('auth-form').addEventListener('submit', (e) => { e.preventDefault(); authenticate('login'); });
  $('register-btn').addEventListener('click', () => authenticate('register'));
  $('logout-btn').addEventListener('click', signOut);
  $('new-channel-form').addEventListener('submit', createChannel);
  bindPanel();
  bindLife();
  bindReads();
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
