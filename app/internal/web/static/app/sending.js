// Sending messages: the outbox, acks, retries.
import { SEND_TIMEOUT_MS } from './constants.js';
import { $, describeError, uuid } from './helpers.js';
import { autosize } from './layout.js';
import { addMessage, renderEmptyState, renderLocal, scrollToBottom } from './messages.js';
import { showNotice } from './notice.js';
import { cancelReply } from './reads.js';
import { S } from './state.js';

export function send(ev) {
  if (ev) ev.preventDefault();
  const input = $('message-input');
  const text = input.value.replace(/\s+$/, '').replace(/^\n+/, '');
  if (!text.trim() || !S.current) return;
  const replyTo = S.replyTo && S.replyTo.channelId === S.current ? S.replyTo.id : null;
  const o = { nonce: uuid(), channelId: S.current, text, replyTo, status: 'pending', error: null, inFlight: false, el: null };
  if (replyTo) cancelReply();
  S.outbox.set(o.nonce, o);
  input.value = '';
  autosize();
  S.lastTypingSent = 0;
  renderLocal(o);
  renderEmptyState();
  scrollToBottom();
  transmit(o);
  input.focus();
}

export async function transmit(o) {
  if (!S.socket || !S.socket.connected || o.inFlight) return; // resent on (re)connect
  o.inFlight = true;
  try {
    const payload = { channelId: o.channelId, text: o.text, nonce: o.nonce };
    if (o.replyTo) payload.replyTo = o.replyTo;
    const ack = await S.socket.request('message:send', payload, SEND_TIMEOUT_MS);
    o.inFlight = false;
    if (!S.outbox.has(o.nonce)) return; // already confirmed by the message event
    if (!ack || ack.error || !ack.id) {
      fail(o, (ack && ack.error) || { code: 'invalid', message: 'Unexpected answer from the server' });
      return;
    }
    addMessage({ id: String(ack.id), channelId: o.channelId, authorId: S.user.id, author: S.user.username, text: o.text, ts: ack.ts, nonce: o.nonce,
      replyTo: o.replyTo, mentions: [], reactions: [], el: null });
    if (S.outbox.has(o.nonce)) { // not replaced (already known by id)
      S.outbox.delete(o.nonce);
      if (o.el) o.el.remove();
    }
  } catch (e) {
    o.inFlight = false;
    if (!S.outbox.has(o.nonce)) return;
    if (e.code === 'disconnected') {
      renderLocal(o); // "waiting for connection"; resent with the same nonce on connect
      return;
    }
    fail(o, { code: e.code || 'unavailable', message: e.message });
  }
}

export function fail(o, error) {
  o.status = 'failed';
  o.error = error;
  renderLocal(o);
  showNotice(describeError(error));
}

export function retry(nonce) {
  const o = S.outbox.get(nonce);
  if (!o) return;
  o.status = 'pending';
  o.error = null;
  renderLocal(o);
  transmit(o);
}

export function discard(nonce) {
  const o = S.outbox.get(nonce);
  if (!o) return;
  S.outbox.delete(nonce);
  if (o.el) o.el.remove();
  renderEmptyState();
}

export function flushOutbox() {
  for (const o of S.outbox.values()) {
    if (o.status === 'pending' && !o.inFlight) {
      renderLocal(o);
      transmit(o);
    }
  }
}
