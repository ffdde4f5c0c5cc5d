// The sign-in screen: register, log in, log out.
import { ApiError, api } from './api.js';
import { startChat } from './chat.js';
import { LS_TOKEN, LS_USER } from './constants.js';
import { $, describeError } from './helpers.js';
import { hideNotice } from './notice.js';
import { S } from './state.js';

export function showAuth(message) {
  $('chat-view').hidden = true;
  $('auth-view').hidden = false;
  const err = $('auth-error');
  err.textContent = message || '';
  err.hidden = !message;
  document.title = 'Quibly';
  setTimeout(() => (($('username').value ? $('password') : $('username')).focus()), 0);
}

export async function authenticate(kind) {
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
export function signOut() {
  const token = S.token;
  logout();
  if (token) {
    fetch('/api/auth/logout', { method: 'POST', headers: { authorization: `Bearer ${token}` } }).catch(() => {});
  }
}

export function logout(message) {
  if (S.socket) S.socket.close();
  S.socket = null;
  S.token = null;
  S.user = null;
  S.channels = [];
  S.channelsNext = null;
  S.joined.clear();
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
