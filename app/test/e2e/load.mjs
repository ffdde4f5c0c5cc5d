// Steady chat load for the cluster and operations tests: clients pinned to nodes by
// the balancer's cookie, split over several channels, each sending every intervalMs and
// retrying a failed send with the same nonce; then the no-loss checks against PostgreSQL.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from './harness.mjs';
import { connect, ack, newUser, createChannel, waitFor, randomUUID } from './clients.mjs';

const run = promisify(execFile);
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
// Where scripts/ keep pid files, versions and releases.
export const LOCAL = process.env.QUIBLY_LOCAL || join(ROOT, '.local');
export const LEASE_MS = 10000; // LEADER_LEASE's default
const NODE_BASE_PORT = Number(process.env.QUIBLY_NODE_BASE_PORT || 5000);
export const nodeUrl = (n) => `http://127.0.0.1:${NODE_BASE_PORT + n}`;
export const LB = process.env.QUIBLY_LB_URL || 'http://127.0.0.1:8080';
const DATABASE_URL = process.env.QUIBLY_TEST_DATABASE_URL;
export const pin = (n) => ({ extraHeaders: { cookie: `QUIBLY_NODE=server-${n}` } });

export async function psql(sql, url = DATABASE_URL) {
  const { stdout } = await run('psql', [url, '-v', 'ON_ERROR_STOP=1', '-At', '-c', sql], { timeout: 30000, maxBuffer: 64 << 20 });
  return stdout.trim().split('\n').filter(Boolean);
}

/** GET /health of server-n: the document plus `http` (the status; 0 when unreachable). */
export async function health(n) {
  try {
    const r = await fetch(`${nodeUrl(n)}/health`, { signal: AbortSignal.timeout(3000) });
    return { ...(await r.json()), http: r.status };
  } catch (err) {
    return { http: 0, error: String(err.cause?.code || err.message) };
  }
}

/** The nodes among `nodes` that report batchWriterLeader: true. */
export async function leaders(nodes = [1, 2, 3]) {
  const hs = await Promise.all(nodes.map(health));
  return hs.map((h, i) => (h.batchWriterLeader ? nodes[i] : 0)).filter(Boolean);
}

/**
 * A chat client as a person's app would be: pinned to a node by the load balancer's
 * cookie, reconnecting on its own, retrying a failed send with the same nonce, and
 * reloading history only when the server says the session was not recovered.
 */
export class Chatter {
  constructor(user, node, channelId, stats) {
    Object.assign(this, { user, node, channelId, stats });
    this.received = new Set();
    this.viaHistory = new Set();
    this.acked = [];
    this.errors = {};
    this.unknown = 0; // sends whose outcome never came back (ack timed out)
    this.gaveUp = 0; // sends that were never acked after every retry
    this.connectErrors = 0; // handshakes refused or failed (at the balancer or a node)
    this.connects = 0;
    this.recovered = 0;
    this.running = false;
  }

  async start() {
    this.socket = await connect(LB, this.user.token, {
      ...pin(this.node), transports: ['websocket'], reconnection: true, reconnectionDelay: 300,
      reconnectionDelayMax: 2000, randomizationFactor: 0.2,
    });
    this.socket.on('message', (m) => { if (m.channelId === this.channelId) this.received.add(m.id); });
    this.socket.on('connect', () => this.onReconnect());
    this.socket.on('connect_error', () => { this.connectErrors += 1; });
    this.connects = 1;
    assert.deepEqual(await ack(this.socket, 'channel:join', { channelId: this.channelId }), { ok: true });
  }

  async onReconnect() {
    this.connects += 1;
    this.lastConnectAt = Date.now();
    if (this.socket.recovered) { this.recovered += 1; return; }
    // Not recovered: join again and fill the gap from history, as the web client does.
    try {
      await ack(this.socket, 'channel:join', { channelId: this.channelId }, 8000);
      const r = await fetch(`${LB}/api/channels/${this.channelId}/messages?limit=200`, { headers: { authorization: `Bearer ${this.user.token}` } });
      const list = await r.json();
      for (const m of Array.isArray(list) ? list : list.messages) {
        if (!this.received.has(m.id)) { this.received.add(m.id); this.viaHistory.add(m.id); }
      }
    } catch { /* the next reconnect tries again */ }
  }

  // Retries with the same nonce for up to 30 s, as a client should: a send that was in
  // flight on a node that died is refused as in progress until that node's claim on
  // its nonce expires (3 × the 5 s send timeout), and its ack wait alone takes 10 s.
  async sendOne(i) {
    const nonce = randomUUID();
    for (const giveUpAt = Date.now() + 30000; Date.now() < giveUpAt && this.running;) {
      if (!this.socket.connected) { await sleep(100); continue; }
      let res;
      try {
        res = await ack(this.socket, 'message:send', { channelId: this.channelId, text: `${this.user.name} ${i}`, nonce }, 10000);
      } catch {
        this.unknown += 1;
        continue;
      }
      if (res && res.id) {
        this.acked.push(res.id);
        this.stats.acks.push(Date.now());
        return;
      }
      const code = res?.error?.code || 'malformed';
      this.errors[code] = (this.errors[code] || 0) + 1;
      this.stats.errors.push(Date.now());
      await sleep(code === 'rate_limited' ? 500 : 200);
    }
    if (this.running) this.gaveUp += 1;
  }

  loop(intervalMs) {
    this.running = true;
    this.done = (async () => {
      for (let i = 0; this.running; i += 1) {
        await this.sendOne(i);
        await sleep(intervalMs);
      }
    })();
  }

  async stop() { this.running = false; await this.done; }
}

/**
 * Runs `clients` chatters spread over `nodes` (pinned by cookie) and `channels` channels,
 * applies op mid-way, and checks: no id acked twice; every acked message stored exactly
 * once (no duplicate id, no nonce stored twice); every client has every acked message of
 * its channel (live, recovered, or from history); no error code but unavailable or
 * rate_limited; no send given up; no send left unanswered (unless acksMayBeLost). op returns {note, downAt, upAt, ...extra}.
 */
export async function underLoad(label, op, { nodes = [1, 2, 3], clients = 12, channels = 1, intervalMs = 500, before = 3000, settle = 4000, acksMayBeLost = false } = {}) {
  const owner = await newUser(LB, 'owner');
  const chans = [];
  for (let k = 0; k < channels; k += 1) {
    chans.push(await createChannel(LB, owner.token, `load-${label}-${k}-${randomUUID().slice(0, 6)}`.toLowerCase()));
  }
  const stats = { acks: [], errors: [] };
  const chatters = [];
  for (let i = 0; i < clients; i += 1) {
    const n = nodes[i % nodes.length];
    chatters.push(new Chatter(await newUser(LB, `n${n}c`), n, chans[Math.floor(i / nodes.length) % channels].id, stats));
  }
  // A few at a time: 50 handshakes at once on 2 cores only measure the machine.
  for (let i = 0; i < chatters.length; i += 10) await Promise.all(chatters.slice(i, i + 10).map((c) => c.start()));
  chatters.forEach((c) => c.loop(intervalMs));
  await sleep(before);

  const { note, downAt, upAt, ...extra } = await op();
  const firstAckAfter = await waitFor(() => stats.acks.find((t) => t > upAt), 60000, `${label}: an ack after the operation`, 50);
  await sleep(settle);
  await Promise.all(chatters.map((c) => c.stop()));

  const acked = chatters.flatMap((c) => c.acked);
  assert.equal(new Set(acked).size, acked.length, `${label}: one id acked twice`);
  let stored = [];
  let unacked = 0;
  for (const ch of chans) {
    const mine = chatters.filter((c) => c.channelId === ch.id);
    const ackedHere = mine.flatMap((c) => c.acked);
    let rows = [];
    await waitFor(async () => {
      rows = await psql(`SELECT id::text FROM messages WHERE channel_id::text = '${ch.id}'`);
      const have = new Set(rows);
      return ackedHere.every((id) => have.has(id));
    }, 60000, `${label}: every acked message of ${ch.name} in PostgreSQL`, 500);
    assert.equal(new Set(rows).size, rows.length, `${label}: a message stored twice`);
    const dupNonces = await psql(`SELECT count(*) FROM (SELECT author_id, nonce FROM messages WHERE channel_id::text = '${ch.id}'
      GROUP BY author_id, nonce HAVING count(*) > 1) d`);
    assert.equal(dupNonces[0], '0', `${label}: a retried send stored twice`);
    const ackedSet = new Set(ackedHere);
    unacked += rows.filter((id) => !ackedSet.has(id)).length; // stored after an ack that timed out
    stored = stored.concat(rows);

    await waitFor(() => mine.every((c) => ackedHere.every((id) => c.received.has(id))), 15000,
      `${label}: every client has every acked message`, 100).catch(() => {});
    for (const c of mine) {
      const missing = ackedHere.filter((id) => !c.received.has(id));
      assert.deepEqual(missing, [], `${label}: ${c.user.name} (server-${c.node}) misses ${missing.length} acked messages`);
    }
  }
  const errors = {};
  for (const c of chatters) for (const [k, v] of Object.entries(c.errors)) errors[k] = (errors[k] || 0) + v;
  const badCodes = Object.keys(errors).filter((k) => !['unavailable', 'rate_limited'].includes(k));
  assert.deepEqual(badCodes, [], `${label}: unexpected error codes ${JSON.stringify(errors)}`);
  const ackTimeouts = chatters.reduce((a, c) => a + c.unknown, 0);
  const gaveUp = chatters.reduce((a, c) => a + c.gaveUp, 0);
  assert.equal(gaveUp, 0, `${label}: ${gaveUp} sends never acked after every retry`);
  // A send written as its node closes the connection in a drain can lose its answer with
  // the connection; the client then retries it with the same nonce (stored once, above).
  if (!acksMayBeLost) assert.equal(ackTimeouts, 0, `${label}: ${ackTimeouts} sends got no answer at all`);
  const failed = stats.errors.filter((t) => t >= downAt);
  const report = {
    scenario: label, note, ...extra, clients: chatters.length, channels, nodes, sendEveryMs: intervalMs,
    opMs: upAt - downAt,
    // From the operation's end to the first acked send.
    servingAgainAfterMs: firstAckAfter - upAt,
    // The span in which sends got an error.
    errorWindowMs: failed.length ? failed[failed.length - 1] - failed[0] : 0,
    // Clients that had to reconnect: the last of them back, counted from the operation's start.
    lastReconnectAfterMs: Math.max(0, ...chatters.filter((c) => c.lastConnectAt > downAt).map((c) => c.lastConnectAt - downAt)),
    sendsAcked: acked.length, stored: stored.length, storedWithoutAck: unacked,
    errors, ackTimeouts, gaveUp, connectErrors: chatters.reduce((a, c) => a + c.connectErrors, 0),
    reconnects: chatters.reduce((a, c) => a + c.connects - 1, 0),
    recovered: chatters.reduce((a, c) => a + c.recovered, 0),
    filledFromHistory: chatters.reduce((a, c) => a + c.viaHistory.size, 0),
  };
  for (const c of chatters) { c.socket.io.reconnection(false); c.socket.disconnect(); }
  return report;
}
