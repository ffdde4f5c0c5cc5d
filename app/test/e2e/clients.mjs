// Client-side helpers for the end-to-end tests: the stock socket.io-client, a raw
// Engine.IO/Socket.IO websocket speaker (package `ws`, which socket.io-client already
// depends on), event-driven waits, and REST shortcuts. Every socket made here is tracked
// so that closeAll() leaves nothing open and node can exit.
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { register, uniqueName, sleep } from './harness.mjs';

export { randomUUID };

const live = new Set();

/** Polls predicate until it returns a truthy value (returned) or ms pass (throws with label). */
export async function waitFor(predicate, ms = 5000, label = 'condition', interval = 20) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await predicate();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${label}`);
    await sleep(interval);
  }
}

/** Resolves with the arguments of the next `event` on emitter (an array), rejects after ms. */
export function once(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out after ${ms} ms waiting for '${event}'`));
    }, ms);
    const on = (...args) => { clearTimeout(t); resolve(args); };
    emitter.once(event, on);
  });
}

/** A new socket.io-client socket (forceNew, no auto-connect surprises), tracked for closeAll. */
export function makeSocket(url, opts = {}) {
  const s = io(url, { forceNew: true, reconnection: false, timeout: 5000, ...opts });
  live.add(s);
  return s;
}

/** Connects and resolves with the socket once 'connect' fired; rejects on connect_error. */
export function connect(url, token, opts = {}, ms = 10000) {
  const auth = opts.auth ?? (token === undefined ? undefined : { token });
  const s = makeSocket(url, { ...opts, ...(auth ? { auth } : {}) });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { cleanup(); reject(new Error(`connect timed out after ${ms} ms`)); }, ms);
    const ok = () => { cleanup(); resolve(s); };
    const bad = (err) => {
      cleanup();
      const e = new Error(`connect_error: ${err && err.message} ${JSON.stringify(err && err.data)}`);
      e.cause = err;
      reject(e);
    };
    const cleanup = () => { clearTimeout(t); s.off('connect', ok); s.off('connect_error', bad); };
    s.on('connect', ok);
    s.on('connect_error', bad);
  });
}

/** Connects expecting failure: resolves with the connect_error Error (throws if it connects). */
export function connectError(url, opts = {}, ms = 10000) {
  const s = makeSocket(url, opts);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { cleanup(); reject(new Error(`no connect_error within ${ms} ms`)); }, ms);
    const ok = () => { cleanup(); reject(new Error(`connected (id ${s.id}) but a connect_error was expected`)); };
    const bad = (err) => { cleanup(); resolve(err); };
    const cleanup = () => { clearTimeout(t); s.off('connect', ok); s.off('connect_error', bad); };
    s.on('connect', ok);
    s.on('connect_error', bad);
  });
}

/** Emits event with one payload and an ack; resolves with the ack's first argument (rejects after ms). */
export function ack(socket, event, payload, ms = 5000) {
  return socket.timeout(ms).emitWithAck(event, payload);
}

/** Emits event with any arguments (possibly none) and an ack; resolves with the ack's first argument. */
export function ackArgs(socket, ms, event, ...args) {
  return socket.timeout(ms).emitWithAck(event, ...args);
}

/** Records every event of the given names on a socket: {name: [payload, ...]}. */
export function record(socket, ...events) {
  const got = {};
  for (const ev of events) {
    got[ev] = [];
    socket.on(ev, (payload) => got[ev].push(payload));
  }
  return got;
}

/** Disconnects every tracked socket and raw websocket. */
export function closeAll() {
  for (const s of live) {
    try {
      if (s instanceof WebSocket) s.terminate();
      else { s.io.reconnection(false); s.disconnect(); s.io.engine?.close(); }
    } catch { /* already closed */ }
  }
  live.clear();
}

/** Registers a fresh user: {token, user, name}. */
export async function newUser(url, prefix = 'u') {
  const name = uniqueName(prefix);
  const r = await register(url, name);
  return { ...r, name };
}

function authHeaders(token) {
  return { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
}

/** POST /api/channels {name}; returns the channel object ({id, name, ...}). */
export async function createChannel(url, token, name) {
  const r = await fetch(`${url}/api/channels`, { method: 'POST', headers: authHeaders(token), body: JSON.stringify({ name }) });
  const body = await r.json();
  if (r.status !== 200 && r.status !== 201) throw new Error(`create channel ${name}: ${r.status} ${JSON.stringify(body)}`);
  const ch = body.channel ?? body;
  if (!ch || !ch.id) throw new Error(`create channel ${name}: no id in ${JSON.stringify(body)}`);
  return ch;
}

/** GET /api/channels/{id}/messages; returns the array of messages. */
export async function history(url, token, chId, params = {}) {
  const q = new URLSearchParams(params).toString();
  const r = await fetch(`${url}/api/channels/${encodeURIComponent(chId)}/messages${q ? `?${q}` : ''}`, { headers: authHeaders(token) });
  const body = await r.json();
  if (r.status !== 200) throw new Error(`history ${chId}: ${r.status} ${JSON.stringify(body)}`);
  const list = Array.isArray(body) ? body : body.messages;
  if (!Array.isArray(list)) throw new Error(`history ${chId}: no message list in ${JSON.stringify(body)}`);
  return list;
}

export const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/** The unix-ms timestamp embedded in a UUIDv7. */
export function uuidV7Time(id) {
  return parseInt(id.replace(/-/g, '').slice(0, 12), 16);
}

/** Sorts ids (UUIDv7, time-ordered as lowercase strings). */
export function sortIds(ids) {
  return [...ids].map((s) => s.toLowerCase()).sort();
}

/**
 * A raw websocket to /socket.io/ speaking Engine.IO 4 by hand. Resolves with
 * {ws, open, messages, next(pred, ms), closed, status} once the handshake settled:
 * `open` is the parsed open packet when the server accepted; when it refused (HTTP
 * status, error or close before the open packet) `open` is null and `status`/`closed`
 * say how. Pings ('2') are answered with pongs ('3').
 */
export function rawEngine(url, { headers = {}, query = 'EIO=4&transport=websocket', ms = 5000 } = {}) {
  const wsUrl = `${url.replace(/^http/, 'ws')}/socket.io/?${query}`;
  const ws = new WebSocket(wsUrl, { headers, maxPayload: 64 * 1024 * 1024 });
  live.add(ws);
  const messages = [];
  const waiters = [];
  let closeInfo = null;
  const closed = new Promise((resolve) => {
    ws.on('close', (code, reason) => { closeInfo = { code, reason: String(reason) }; resolve(closeInfo); });
  });
  ws.on('message', (data) => {
    const text = String(data);
    if (text === '2') { try { ws.send('3'); } catch { /* closing */ } }
    messages.push(text);
    for (const w of [...waiters]) w();
  });
  const next = (pred, wms = 5000) => new Promise((resolve, reject) => {
    const check = () => {
      const i = messages.findIndex(pred);
      if (i >= 0) { done(); resolve(messages[i]); return true; }
      return false;
    };
    const t = setTimeout(() => { done(); reject(new Error(`raw ws: no matching message within ${wms} ms; got ${JSON.stringify(messages).slice(0, 500)}`)); }, wms);
    const done = () => { clearTimeout(t); const k = waiters.indexOf(check); if (k >= 0) waiters.splice(k, 1); };
    if (!check()) waiters.push(check);
  });
  return new Promise((resolve) => {
    let settled = false;
    const finish = (v) => { if (!settled) { settled = true; clearTimeout(t); resolve({ ws, messages, next, closed, get closeInfo() { return closeInfo; }, ...v }); } };
    const t = setTimeout(() => finish({ open: null, status: 'timeout' }), ms);
    ws.on('unexpected-response', (req, res) => { finish({ open: null, status: res.statusCode }); res.resume(); ws.terminate(); });
    ws.on('error', (err) => finish({ open: null, status: 'error', error: err }));
    closed.then((c) => finish({ open: null, status: 'closed', close: c }));
    next((m) => m.startsWith('0'), ms).then((m) => finish({ open: JSON.parse(m.slice(1)), status: 101 }), () => {});
  });
}

/** A raw websocket that also completed the Socket.IO CONNECT of namespace '/' with auth. */
export async function rawSocketIo(url, token, opts = {}) {
  const r = await rawEngine(url, opts);
  if (!r.open) throw new Error(`raw websocket refused: ${r.status} ${r.error?.message ?? ''}`);
  r.ws.send(`40${JSON.stringify({ token })}`);
  const reply = await r.next((m) => m.startsWith('40') || m.startsWith('44'));
  if (!reply.startsWith('40{')) throw new Error(`raw socket.io connect refused: ${reply}`);
  r.connect = JSON.parse(reply.slice(2));
  return r;
}

export { sleep };

/** SIGTERMs a server and waits for it to exit; SIGKILLs it when it takes longer than ms. */
export async function stopServer(srv, ms = 35000) {
  if (!srv) return null;
  let t;
  const killer = new Promise((resolve) => { t = setTimeout(() => { srv.proc.kill('SIGKILL'); resolve(); }, ms); });
  srv.stop('SIGTERM');
  await Promise.race([srv.exited, killer]);
  clearTimeout(t);
  return srv.exited;
}

/** A channel's whole history, oldest first, paged through 100 at a time. */
export async function fullHistory(url, token, chId) {
  const out = [];
  let before = '';
  for (;;) {
    const q = new URLSearchParams({ limit: '100', ...(before ? { before } : {}) });
    const r = await fetch(`${url}/api/channels/${encodeURIComponent(chId)}/messages?${q}`, { headers: authHeaders(token) });
    const body = await r.json();
    if (r.status !== 200) throw new Error(`history ${chId}: ${r.status} ${JSON.stringify(body)}`);
    out.push(...body.messages);
    if (!body.nextBefore) return out.reverse();
    before = body.nextBefore;
  }
}

/**
 * Pipelines `count` message:send emits (all issued before any ack) and resolves with
 * the acks in send order. Texts are `${tag}-${i}`.
 */
export function pipeline(socket, chId, tag, count, ms = 60000) {
  return Promise.all(Array.from({ length: count }, (_, i) =>
    ack(socket, 'message:send', { channelId: chId, text: `${tag}-${i}`, nonce: randomUUID() }, ms)));
}

/**
 * The ordering contract (docs/REFERENCE.md, Delivery and order), checked on what
 * receivers got in arrival order: each sees strictly ascending ids with no duplicate,
 * every receiver the same sequence, every sender's messages in its send order, and
 * history the very same sequence.
 */
export function assertOneOrder({ received, senders, history: hist }) {
  const lower = (ms) => ms.map((m) => m.id.toLowerCase());
  const first = lower(received[0]);
  received.forEach((got, r) => {
    const ids = lower(got);
    for (let i = 1; i < ids.length; i += 1) {
      if (!(ids[i - 1] < ids[i])) {
        throw new assert.AssertionError({ message: `receiver ${r}: message ${i} (${ids[i]}) does not follow ${ids[i - 1]} in id order` });
      }
    }
    assert.deepEqual(ids, first, `receiver ${r} saw another sequence than receiver 0`);
  });
  for (const { tag, acks } of senders) {
    const texts = received[0].filter((m) => m.text.startsWith(`${tag}-`)).map((m) => m.text);
    assert.deepEqual(texts, acks.map((_, i) => `${tag}-${i}`), `${tag}'s messages are not in its send order`);
    assert.deepEqual(received[0].filter((m) => m.text.startsWith(`${tag}-`)).map((m) => m.id.toLowerCase()),
      acks.map((a) => a.id.toLowerCase()), `${tag}'s acked ids differ from the delivered ones`);
  }
  assert.deepEqual(lower(hist), first, 'history is another sequence than live delivery');
}

/**
 * Runs the python-socketio client (python/burst.py) in the tests' virtualenv:
 * it joins chId, sends `sends` messages and waits for `expect` messages of the
 * channel. Returns {ready, result}: ready resolves once it has joined (start the
 * burst then), result with its report ({transport, acks, received, disconnects}).
 */
export function pythonClient({ url, token, chId, transports, sends = 5, expect, timeoutS = 30 }) {
  const here = new URL('.', import.meta.url).pathname;
  const py = spawn(`${here}.venv/bin/python`, [`${here}python/burst.py`, '--url', url, '--token', token,
    '--channel', chId, '--transports', transports, '--sends', String(sends), '--expect', String(expect),
    '--timeout', String(timeoutS)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let markReady;
  const ready = new Promise((res) => { markReady = res; });
  py.stdout.on('data', (d) => {
    out += d;
    if (out.includes('"ready": true')) markReady();
  });
  py.stderr.on('data', (d) => { err += d; });
  const result = new Promise((resolve, reject) => {
    py.on('error', reject);
    py.on('exit', (code) => {
      const lines = out.trim().split('\n').filter(Boolean);
      if (code !== 0) { reject(new Error(`python client exited ${code}: ${out} ${err}`)); return; }
      try {
        resolve(JSON.parse(lines[lines.length - 1]));
      } catch (e) {
        reject(new Error(`python client printed ${out} ${err}`));
      }
    });
  });
  result.catch(() => markReady()); // a client that fails before joining must not hang the test
  return { ready, result };
}
