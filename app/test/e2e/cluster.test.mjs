// Cluster end-to-end and failure tests: three clustered nodes behind HAProxy
// (scripts/cluster.sh) on real Redis, Kafka and PostgreSQL (scripts/services.sh),
// driven by the stock socket.io-client. `make test-cluster` starts the cluster first.
//
// Every fault runs under steady load from clients pinned to every node. After each:
// every message acked to its sender is in PostgreSQL exactly once, every client has
// every acked message of its channel (live, or replayed by recovery), and sends
// during the outage got a clear error, never a false ack. Figures go to
// test-output/cluster-faults.json.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OUT_DIR, sleep } from './harness.mjs';
import { connect, makeSocket, ack, closeAll, newUser, createChannel, waitFor, randomUUID, once } from './clients.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, '../../..');
const LB = process.env.QUIBLY_LB_URL || 'http://127.0.0.1:8080';
const RR = process.env.QUIBLY_LB_RR_URL || 'http://127.0.0.1:8081';
const NODE_BASE_PORT = Number(process.env.QUIBLY_NODE_BASE_PORT || 5000);
const DATABASE_URL = process.env.QUIBLY_TEST_DATABASE_URL;
const LEASE_MS = 10000; // LEADER_LEASE's default
const nodeUrl = (n) => `http://127.0.0.1:${NODE_BASE_PORT + n}`;
const pin = (n) => ({ extraHeaders: { cookie: `QUIBLY_NODE=server-${n}` } });
const run = promisify(execFile);

async function script(name, ...args) {
  const { stdout } = await run(join(ROOT, 'scripts', name), args, { cwd: ROOT, timeout: 240000 });
  return stdout;
}

async function psql(sql) {
  const { stdout } = await run('psql', [DATABASE_URL, '-v', 'ON_ERROR_STOP=1', '-At', '-c', sql], { timeout: 30000 });
  return stdout.trim().split('\n').filter(Boolean);
}

async function health(n) {
  try {
    const r = await fetch(`${nodeUrl(n)}/health`, { signal: AbortSignal.timeout(3000) });
    return { ...(await r.json()), http: r.status };
  } catch (err) {
    return { http: 0, error: String(err.cause?.code || err.message) };
  }
}

const LOCAL = process.env.QUIBLY_LOCAL || join(ROOT, '.local'); // where scripts/ keep pid files
const nodePid = (n) => Number(readFileSync(join(LOCAL, 'cluster/run', `server-${n}.pid`), 'utf8').trim());

async function leaders() {
  const hs = await Promise.all([1, 2, 3].map(health));
  return hs.map((h, i) => (h.batchWriterLeader ? i + 1 : 0)).filter(Boolean);
}

/**
 * A chat client as a person's app would be: pinned to a node by the load balancer's
 * cookie, reconnecting on its own, retrying a failed send with the same nonce, and
 * reloading history only when the server says the session was not recovered.
 */
class Chatter {
  constructor(user, node, channelId, stats) {
    Object.assign(this, { user, node, channelId, stats });
    this.received = new Set();
    this.viaHistory = new Set();
    this.acked = [];
    this.errors = {};
    this.unknown = 0; // sends whose outcome never came back (ack timed out)
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

  async sendOne(i) {
    const nonce = randomUUID();
    for (let attempt = 0; attempt < 20 && this.running; attempt += 1) {
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
 * Runs load on every node, applies fault mid-way, and checks the guarantees. fault
 * returns {note, downAt, upAt}: when the fault began and when the part was back.
 */
async function underLoad(label, fault, { perNode = 4, intervalMs = 250, before = 3000, settle = 4000, acksMayBeLost = false } = {}) {
  const owner = await newUser(LB, 'owner');
  const ch = await createChannel(LB, owner.token, `fault-${label}-${randomUUID().slice(0, 6)}`.toLowerCase());
  const stats = { acks: [], errors: [] };
  const chatters = [];
  for (const n of [1, 2, 3]) {
    for (let i = 0; i < perNode; i += 1) chatters.push(new Chatter(await newUser(LB, `n${n}c`), n, ch.id, stats));
  }
  await Promise.all(chatters.map((c) => c.start()));
  chatters.forEach((c) => c.loop(intervalMs));
  await sleep(before);

  const { note, downAt, upAt } = await fault();
  // Serving again means: a send acked after the part was back.
  const firstAckAfter = await waitFor(() => stats.acks.find((t) => t > upAt), 60000, `${label}: an ack after the fault`, 50);
  await sleep(settle);
  await Promise.all(chatters.map((c) => c.stop()));

  const acked = chatters.flatMap((c) => c.acked);
  assert.equal(new Set(acked).size, acked.length, `${label}: one id acked twice`);
  // Stored exactly once (the batch writer may still be catching up).
  let stored = [];
  await waitFor(async () => {
    stored = await psql(`SELECT id::text FROM messages WHERE channel_id::text = '${ch.id}'`);
    return acked.every((id) => stored.includes(id));
  }, 60000, `${label}: every acked message in PostgreSQL`, 500);
  assert.equal(new Set(stored).size, stored.length, `${label}: a message stored twice`);
  const dupNonces = await psql(`SELECT count(*) FROM (SELECT author_id, nonce FROM messages WHERE channel_id::text = '${ch.id}'
    GROUP BY author_id, nonce HAVING count(*) > 1) d`);
  assert.equal(dupNonces[0], '0', `${label}: a retried send stored twice`);
  const unacked = stored.filter((id) => !acked.includes(id)).length; // stored after an ack that timed out: fine

  // Every client has every acked message, live or recovered (or, if not recovered, from history).
  await waitFor(() => chatters.every((c) => acked.every((id) => c.received.has(id))), 15000,
    `${label}: every client has every acked message`, 100).catch(() => {});
  for (const c of chatters) {
    const missing = acked.filter((id) => !c.received.has(id));
    assert.deepEqual(missing, [], `${label}: ${c.user.name} (server-${c.node}) misses ${missing.length} acked messages`);
  }
  const errors = {};
  for (const c of chatters) for (const [k, v] of Object.entries(c.errors)) errors[k] = (errors[k] || 0) + v;
  const badCodes = Object.keys(errors).filter((k) => !['unavailable', 'rate_limited'].includes(k));
  assert.deepEqual(badCodes, [], `${label}: unexpected error codes ${JSON.stringify(errors)}`);
  const ackTimeouts = chatters.reduce((a, c) => a + c.unknown, 0);
  // Only a node that dies can leave a send unanswered; the sender retries it with its nonce.
  if (!acksMayBeLost) assert.equal(ackTimeouts, 0, `${label}: ${ackTimeouts} sends got no answer at all`);
  const failed = stats.errors.filter((t) => t >= downAt);
  const report = {
    scenario: label, note, clients: chatters.length,
    faultMs: upAt - downAt,
    // From the part being back to the first acked send.
    servingAgainAfterMs: firstAckAfter - upAt,
    // The span in which sends got an error.
    errorWindowMs: failed.length ? failed[failed.length - 1] - failed[0] : 0,
    // Clients that had to reconnect: the last of them back, counted from the fault.
    lastReconnectAfterMs: Math.max(0, ...chatters.filter((c) => c.lastConnectAt > downAt).map((c) => c.lastConnectAt - downAt)),
    sendsAcked: acked.length, stored: stored.length, storedWithoutAck: unacked,
    errors, ackTimeouts,
    reconnects: chatters.reduce((a, c) => a + c.connects - 1, 0),
    recovered: chatters.reduce((a, c) => a + c.recovered, 0),
    filledFromHistory: chatters.reduce((a, c) => a + c.viaHistory.size, 0),
  };
  for (const c of chatters) { c.socket.io.reconnection(false); c.socket.disconnect(); }
  return report;
}

const reports = [];

before(async () => {
  assert.ok(DATABASE_URL, 'QUIBLY_TEST_DATABASE_URL is not set (run through `make test-cluster`)');
  for (const n of [1, 2, 3]) {
    const h = await health(n);
    assert.equal(h.http, 200, `server-${n} is not healthy: ${JSON.stringify(h)} (run scripts/cluster.sh up)`);
  }
});

after(async () => {
  closeAll();
  writeFileSync(join(OUT_DIR, 'cluster-faults.json'), JSON.stringify(reports, null, 2));
});

describe('cluster', () => {
  test('health in clustered mode has exactly the guide keys, one batch-writer leader', async () => {
    for (const n of [1, 2, 3]) {
      const h = await health(n);
      const { http, ...doc } = h;
      assert.equal(http, 200);
      assert.deepEqual(Object.keys(doc).sort(), ['batchWriterLeader', 'serverId', 'services', 'status', 'timestamp', 'uptime']);
      assert.equal(h.serverId, `server-${n}`);
      assert.deepEqual(h.services, { redis: true, kafka: true, database: true, socketio: true });
    }
    await waitFor(async () => (await leaders()).length === 1, LEASE_MS + 5000, 'exactly one leader');
  });

  test('clients pinned to different nodes see each other\'s messages in id order', async () => {
    const people = await Promise.all([1, 2, 3].map((n) => newUser(LB, `x${n}`)));
    const ch = await createChannel(LB, people[0].token, `cross-${randomUUID().slice(0, 8)}`);
    const socks = await Promise.all(people.map((p, i) => connect(LB, p.token, { ...pin(i + 1), transports: ['websocket'] })));
    const got = socks.map((s) => { const l = []; s.on('message', (m) => l.push(m)); return l; });
    for (const s of socks) assert.deepEqual(await ack(s, 'channel:join', { channelId: ch.id }), { ok: true });
    const sent = [];
    await Promise.all(socks.map(async (s, i) => {
      for (let k = 0; k < 10; k += 1) {
        const res = await ack(s, 'message:send', { channelId: ch.id, text: `from ${i + 1}: ${k}`, nonce: randomUUID() });
        assert.ok(res.id, JSON.stringify(res));
        sent.push(res.id);
      }
    }));
    await waitFor(() => got.every((l) => l.length >= 30), 10000, 'all 30 messages at every client');
    // The three clients really are on three nodes.
    const onNode = await Promise.all([1, 2, 3].map((n) => fetch(`${LB}/health`, { headers: pin(n).extraHeaders }).then((r) => r.json())));
    assert.deepEqual(onNode.map((h) => h.serverId), ['server-1', 'server-2', 'server-3']);
    for (const l of got) {
      assert.deepEqual(l.map((m) => m.id).sort(), [...sent].sort());
      // Each sender's messages arrive in the order it sent them, and ids order them.
      for (let i = 1; i <= 3; i += 1) {
        const mine = l.filter((m) => m.text.startsWith(`from ${i}:`));
        assert.deepEqual(mine.map((m) => m.text), Array.from({ length: 10 }, (_, k) => `from ${i}: ${k}`));
        assert.deepEqual(mine.map((m) => m.id), mine.map((m) => m.id).slice().sort());
      }
    }
    socks.forEach((s) => s.disconnect());
  });

  test('long-polling works through the sticky balancer and breaks without stickiness', async () => {
    const p = await newUser(LB, 'poll');
    const gen = (await (await fetch(`${LB}/api/channels`, { headers: { authorization: `Bearer ${p.token}` } })).json());
    const general = (Array.isArray(gen) ? gen : gen.channels).find((c) => c.name === 'general').id;
    // withCredentials keeps the balancer's cookie between polling requests, as a browser does.
    const s = await connect(LB, p.token, { transports: ['polling'], withCredentials: true });
    assert.equal(s.io.engine.transport.name, 'polling');
    assert.deepEqual(await ack(s, 'channel:join', { channelId: general }), { ok: true });
    for (let i = 0; i < 5; i += 1) assert.ok((await ack(s, 'message:send', { channelId: general, text: `poll ${i}`, nonce: randomUUID() })).id);
    s.disconnect();

    // Round robin without the cookie: the next poll lands on a node that never saw
    // the session, which answers 400 "Session ID unknown", and the client drops.
    let failures = 0;
    for (let i = 0; i < 3; i += 1) {
      const r = makeSocket(RR, { transports: ['polling'], auth: { token: p.token } });
      const outcome = await Promise.race([
        once(r, 'connect_error', 10000).then(() => 'connect_error'),
        once(r, 'connect', 10000).then(async () => {
          // It may connect if two requests happened to hit one node; it cannot stay up.
          const res = await ack(r, 'channel:join', { channelId: general }, 3000).catch(() => null);
          return res && res.ok ? 'worked' : 'broken';
        }),
      ]).catch(() => 'timeout');
      if (outcome !== 'worked') failures += 1;
      r.disconnect();
    }
    assert.equal(failures, 3, 'polling through round robin worked: stickiness would not be needed');
  });

  test('SIGKILL of the leader: another node takes over within the lease', async () => {
    const [leader] = await waitFor(async () => { const l = await leaders(); return l.length === 1 && l; }, LEASE_MS + 5000, 'one leader');
    const t0 = Date.now();
    process.kill(nodePid(leader), 'SIGKILL');
    const [next] = await waitFor(async () => { const l = await leaders(); return l.length === 1 && l[0] !== leader && l; },
      LEASE_MS + 5000, 'a new leader', 100);
    const took = Date.now() - t0;
    reports.push({ scenario: 'leader SIGKILL', from: `server-${leader}`, to: `server-${next}`, takeoverMs: took });
    assert.ok(took <= LEASE_MS + 2000, `takeover took ${took} ms`);
    await script('cluster.sh', 'up');
    assert.deepEqual(await leaders(), [next], 'the restarted node took leadership back');
  });

  test('SIGKILL of a node under load', { timeout: 180000 }, async () => {
    reports.push(await underLoad('node-sigkill', async () => {
      const downAt = Date.now();
      process.kill(nodePid(2), 'SIGKILL');
      await sleep(5000);
      await script('cluster.sh', 'up');
      return { note: 'server-2 killed, restarted 5 s later', downAt, upAt: Date.now() };
    }, { acksMayBeLost: true }));
  });

  // Each outage outlasts a send's 5 s timeout, so senders see errors, not just slow acks.
  for (const [svc, outageMs] of [['redis', 6000], ['kafka', 8000], ['postgres', 6000]]) {
    test(`restart of ${svc} under load`, { timeout: 240000 }, async () => {
      reports.push(await underLoad(`${svc}-restart`, async () => {
        const downAt = Date.now();
        await script('services.sh', 'down', svc);
        await sleep(outageMs);
        await script('services.sh', 'up', svc);
        return { note: `${svc} stopped for ${outageMs / 1000} s, then started with its data`, downAt, upAt: Date.now() };
      }));
      for (const n of [1, 2, 3]) {
        await waitFor(async () => (await health(n)).http === 200, 30000, `server-${n} healthy after the ${svc} restart`);
      }
    });
  }
});
