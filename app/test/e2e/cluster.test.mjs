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
import { join } from 'node:path';
import { OUT_DIR, sleep, channelId } from './harness.mjs';
import {
  connect, makeSocket, ack, closeAll, newUser, createChannel, waitFor, randomUUID, once, fullHistory, pipeline, assertOneOrder,
  pythonClient, sortIds,
} from './clients.mjs';
import { LB, pin, underLoad, ROOT, LOCAL, LEASE_MS, health, leaders, nodeUrl } from './load.mjs';

const RR = process.env.QUIBLY_LB_RR_URL || 'http://127.0.0.1:8081';
const DATABASE_URL = process.env.QUIBLY_TEST_DATABASE_URL;
const run = promisify(execFile);

async function script(name, ...args) {
  const { stdout } = await run(join(ROOT, 'scripts', name), args, { cwd: ROOT, timeout: 240000 });
  return stdout;
}

const nodePid = (n) => Number(readFileSync(join(LOCAL, 'cluster/run', `server-${n}.pid`), 'utf8').trim());

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
  test('health in clustered mode has exactly the documented keys, one batch-writer leader', async () => {
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

  // Two senders on two nodes pipeline 200 sends each; a receiver on every node.
  async function orderedBurst({ during } = {}) {
    const people = await Promise.all([1, 2, 3].map((n) => newUser(LB, `o${n}`)));
    const ch = await createChannel(LB, people[0].token, `order-${randomUUID().slice(0, 8)}`);
    const socks = await Promise.all(people.map((p, i) => connect(LB, p.token,
      { ...pin(i + 1), transports: ['websocket'], reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 1000 })));
    const received = socks.map((s) => { const l = []; s.on('message', (m) => { if (m.channelId === ch.id) l.push(m); }); return l; });
    for (const s of socks) assert.deepEqual(await ack(s, 'channel:join', { channelId: ch.id }), { ok: true });
    // The receivers really are on three nodes.
    const onNode = await Promise.all([1, 2, 3].map((n) => fetch(`${LB}/health`, { headers: pin(n).extraHeaders }).then((r) => r.json())));
    assert.deepEqual(onNode.map((h) => h.serverId), ['server-1', 'server-2', 'server-3']);
    const bursts = Promise.all([pipeline(socks[0], ch.id, 'A', 200), pipeline(socks[2], ch.id, 'C', 200)]);
    const note = during ? await during(received) : undefined;
    const [acksA, acksC] = await bursts;
    [...acksA, ...acksC].forEach((r, i) => assert.ok(r.id, `send #${i}: ${JSON.stringify(r)}`));
    await waitFor(() => received.every((l) => l.length >= 400), 60000, 'every receiver to get all 400 messages', 100);
    await sleep(500); // catch duplicates
    assertOneOrder({ received, senders: [{ tag: 'A', acks: acksA }, { tag: 'C', acks: acksC }],
      history: await waitFor(async () => { const h = await fullHistory(LB, people[0].token, ch.id); return h.length >= 400 && h; },
        30000, 'the batch writer to store all 400', 250) });
    socks.forEach((s) => s.disconnect());
    return { recovered: socks[1].recovered, note };
  }

  test('two senders on two nodes pipelining 200 each: every node\'s receiver gets one ascending order, as history', { timeout: 120000 }, async () => {
    await orderedBurst();
  });

  test('SIGKILL of a receiver\'s node mid-burst: it recovers elsewhere, still ascending, no gap, no duplicate', { timeout: 180000 }, async () => {
    const { recovered } = await orderedBurst({
      during: async (received) => {
        await waitFor(() => received[1].length >= 50, 30000, 'server-2\'s receiver to be mid-burst');
        process.kill(nodePid(2), 'SIGKILL');
      },
    });
    assert.equal(recovered, true, 'the receiver on the killed node was not recovered by another node');
    await script('cluster.sh', 'up');
  });

  test('long-polling works through the sticky balancer and breaks without stickiness', async () => {
    const p = await newUser(LB, 'poll');
    const general = await channelId(LB, p.token);
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

  test('a logout on one node ends the user\'s sockets on the other nodes', { timeout: 60000 }, async () => {
    const p = await newUser(LB, 'bye');
    const socks = await Promise.all([2, 3].map((n) => connect(LB, p.token, { ...pin(n), transports: ['websocket'] })));
    const ended = socks.map((s) => once(s, 'session:end', 10000));
    const out = await fetch(`${LB}/api/auth/logout`, { method: 'POST', headers: { ...pin(1).extraHeaders, authorization: `Bearer ${p.token}` } });
    assert.equal(out.status, 204);
    const t0 = Date.now();
    for (const [i, e] of (await Promise.all(ended)).entries()) {
      assert.equal(e[0] && e[0].code, 'unauthorized', `server-${i + 2}'s socket: ${JSON.stringify(e)}`);
    }
    await waitFor(() => socks.every((s) => !s.connected), 5000, 'both sockets closed');
    reports.push({ scenario: 'logout seen by sockets on other nodes', endedWithinMs: Date.now() - t0 });
  });

  for (const transports of ['polling', 'polling,websocket']) {
    test(`python-socketio through the sticky balancer over ${transports}: a burst arrives whole`, { timeout: 60000 }, async () => {
      const [py, other] = await Promise.all([newUser(LB, 'py'), newUser(LB, 'pyb')]);
      const ch = await createChannel(LB, py.token, `py-${randomUUID().slice(0, 8)}`);
      const client = pythonClient({ url: LB, token: py.token, chId: ch.id, transports, sends: 5, expect: 25 });
      await client.ready;
      const s = await connect(LB, other.token, { ...pin(3), transports: ['websocket'] });
      assert.deepEqual(await ack(s, 'channel:join', { channelId: ch.id }), { ok: true });
      const acks = await Promise.all(Array.from({ length: 20 }, (_, i) => ack(s, 'message:send', { channelId: ch.id, text: `burst ${i}`, nonce: randomUUID() })));
      acks.forEach((a, i) => assert.ok(a.id, `burst send ${i}: ${JSON.stringify(a)}`));
      const res = await client.result;
      assert.deepEqual(res.disconnects, [], `the python client was dropped: ${JSON.stringify(res)}`);
      res.acks.forEach((a, i) => assert.ok(a && a.id, `python send ${i}: ${JSON.stringify(a)}`));
      assert.equal(res.received.length, 25, `received ${res.received.length} of 25`);
      assert.deepEqual(res.received, sortIds(res.received), 'one ascending order');
      s.disconnect();
    });
  }

  test('with no message since the nodes started, a SIGKILLed node\'s clients all recover elsewhere, then get a new message once', { timeout: 180000 }, async () => {
    // No message since start: restart every node, send nothing.
    for (const n of [1, 2, 3]) await script('cluster.sh', 'node-start', String(n));
    const sent = async () => {
      let total = 0;
      for (const n of [1, 2, 3]) {
        const text = await (await fetch(`${nodeUrl(n)}/metrics`)).text();
        const line = text.split('\n').find((l) => l.startsWith('quibly_messages_total{result="ok"} '));
        total += line ? Number(line.split(' ')[1]) : 0;
      }
      return total;
    };
    const owner = await newUser(LB, 'fresh');
    const ch = await createChannel(LB, owner.token, `fresh-${randomUUID().slice(0, 8)}`);
    const perNode = 20;
    const clients = [];
    for (const n of [1, 2, 3]) {
      for (let i = 0; i < perNode; i += 1) {
        const u = await newUser(LB, `f${n}c`);
        const s = await connect(LB, u.token, { ...pin(n), transports: ['websocket'], reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 1000 });
        const got = [];
        s.on('message', (m) => { if (m.channelId === ch.id) got.push(m.id); });
        assert.deepEqual(await ack(s, 'channel:join', { channelId: ch.id }), { ok: true });
        clients.push({ n, s, got });
      }
    }
    assert.equal(await sent(), 0, 'a message was sent since the nodes started: the test proves nothing');
    const killed = clients.filter((c) => c.n === 2);
    const t0 = Date.now();
    process.kill(nodePid(2), 'SIGKILL');
    await waitFor(() => killed.every((c) => !c.s.connected), 10000, 'server-2\'s clients to notice');
    await waitFor(() => killed.every((c) => c.s.connected), 30000, 'server-2\'s clients to reconnect elsewhere', 100);
    const tookMs = Date.now() - t0;
    const recovered = killed.filter((c) => c.s.recovered).length;
    assert.equal(recovered, killed.length, `${recovered} of ${killed.length} clients recovered`);
    // After the kill, one message reaches every client exactly once, the recovered ones
    // without joining again.
    const sender = await connect(LB, owner.token, { ...pin(1), transports: ['websocket'] });
    assert.deepEqual(await ack(sender, 'channel:join', { channelId: ch.id }), { ok: true });
    const res = await ack(sender, 'message:send', { channelId: ch.id, text: 'after the kill', nonce: randomUUID() });
    assert.ok(res.id, JSON.stringify(res));
    await waitFor(() => clients.every((c) => c.got.includes(res.id)), 10000, 'every client to get the message');
    await sleep(500);
    for (const c of clients) assert.equal(c.got.filter((id) => id === res.id).length, 1, `a client of server-${c.n} got it ${c.got.length} times`);
    reports.push({ scenario: 'node SIGKILL before any message since start', clients: clients.length, dropped: killed.length, recovered, reconnectedWithinMs: tookMs });
    clients.forEach((c) => c.s.disconnect());
    sender.disconnect();
    await script('cluster.sh', 'up');
  });

  test('a private channel across three nodes: the outsider sees nothing, a removed member stops at its member:leave', { timeout: 60000 }, async () => {
    const [owner, member, outsider] = await Promise.all(['own', 'mem', 'out'].map((p) => newUser(LB, p)));
    const req = (token, method, path, body, n) => fetch(`${LB}${path}`, { method,
      headers: { ...pin(n).extraHeaders, authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body) });
    const made = await (await req(owner.token, 'POST', '/api/channels', { name: `priv-${randomUUID().slice(0, 8)}`, private: true }, 1)).json();
    const ch = made.channel;
    assert.equal((await req(owner.token, 'PUT', `/api/channels/${ch.id}/members/${member.user.id}`, { role: 'member' }, 1)).status, 201);
    // owner on server-1, member on server-2, outsider on server-3
    const [so, sm, sx] = await Promise.all([[owner, 1], [member, 2], [outsider, 3]].map(([u, n]) => connect(LB, u.token, { ...pin(n), transports: ['websocket'] })));
    for (const s of [so, sm]) assert.deepEqual(await ack(s, 'channel:join', { channelId: ch.id }), { ok: true });
    const refused = await ack(sx, 'channel:join', { channelId: ch.id });
    assert.equal(refused.error && refused.error.code, 'not_found');
    const memberSaw = [];
    sm.onAny((event, payload) => { if (payload && payload.channelId === ch.id) memberSaw.push(event); });
    const outsiderSaw = [];
    sx.onAny((event, payload) => { if (payload && payload.channelId === ch.id) outsiderSaw.push(event); });
    const before = await ack(so, 'message:send', { channelId: ch.id, text: 'before', nonce: randomUUID() });
    assert.ok(before.id, JSON.stringify(before));
    await waitFor(() => memberSaw.includes('message'), 10000, 'the member on server-2 gets the message');
    // Removed through server-3; the member's socket on server-2 stops at member:leave.
    assert.equal((await req(owner.token, 'DELETE', `/api/channels/${ch.id}/members/${member.user.id}`, undefined, 3)).status, 204);
    await waitFor(() => memberSaw.includes('member:leave'), 10000, 'the member on server-2 is told');
    const after = await ack(so, 'message:send', { channelId: ch.id, text: 'after', nonce: randomUUID() });
    assert.ok(after.id, JSON.stringify(after));
    await sleep(1000);
    assert.deepEqual(memberSaw, ['message', 'member:leave'], 'the removed member got more of the channel');
    assert.deepEqual(outsiderSaw, [], 'the outsider got events of the private channel');
    [so, sm, sx].forEach((s) => s.disconnect());
  });

  test('a member removed while its node is down recovers elsewhere without the channel: nothing of it replayed', { timeout: 90000 }, async () => {
    const [owner, member] = await Promise.all(['kown', 'kmem'].map((p) => newUser(LB, p)));
    const req = (token, method, path, body, n) => fetch(`${LB}${path}`, { method,
      headers: { ...pin(n).extraHeaders, authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body) });
    const ch = (await (await req(owner.token, 'POST', '/api/channels', { name: `kill-${randomUUID().slice(0, 8)}`, private: true }, 1)).json()).channel;
    const open = await createChannel(LB, owner.token, `open-${randomUUID().slice(0, 8)}`);
    assert.equal((await req(owner.token, 'PUT', `/api/channels/${ch.id}/members/${member.user.id}`, { role: 'member' }, 1)).status, 201);
    const so = await connect(LB, owner.token, { ...pin(1), transports: ['websocket'] });
    const sm = await connect(LB, member.token, { ...pin(2), transports: ['websocket'], reconnection: true, reconnectionDelay: 500, reconnectionDelayMax: 1000 });
    for (const s of [so, sm]) {
      for (const id of [ch.id, open.id]) assert.deepEqual(await ack(s, 'channel:join', { channelId: id }), { ok: true });
    }
    const memberSaw = [];
    sm.onAny((event, payload) => { if (payload && payload.channelId) memberSaw.push(`${payload.channelId === ch.id ? 'private' : 'open'} ${event} ${payload.text || ''}`.trim()); });
    const send = async (id, text) => { const r = await ack(so, 'message:send', { channelId: id, text, nonce: randomUUID() }); assert.ok(r.id, JSON.stringify(r)); };
    await send(ch.id, 'before the kill');
    await waitFor(() => memberSaw.includes('private message before the kill'), 10000, 'the member has the first message');
    // The member's node dies; while the member is away: a message, the removal, another.
    process.kill(nodePid(2), 'SIGKILL');
    await waitFor(() => !sm.connected, 10000, 'the member to notice');
    await send(ch.id, 'while away, still a member');
    assert.equal((await req(owner.token, 'DELETE', `/api/channels/${ch.id}/members/${member.user.id}`, undefined, 3)).status, 204);
    await send(ch.id, 'after the removal');
    await send(open.id, 'in the open channel');
    await waitFor(() => sm.connected, 30000, 'the member to reconnect elsewhere', 100);
    assert.equal(sm.recovered, true, 'the member\'s session was not recovered');
    await waitFor(() => memberSaw.includes('open message in the open channel'), 10000, 'the open channel\'s message replayed');
    await sleep(1000);
    assert.deepEqual(memberSaw.filter((e) => e.startsWith('private')), ['private message before the kill'],
      'recovery replayed the private channel after the removal');
    const still = await ack(sm, 'message:send', { channelId: ch.id, text: 'still in?', nonce: randomUUID() });
    assert.equal(still.error && still.error.code, 'forbidden', JSON.stringify(still));
    so.disconnect();
    sm.disconnect();
    await script('cluster.sh', 'up');
  });

  test('concurrent edits, reactions and a delete from three nodes end in one state on every client and in history', { timeout: 90000 }, async () => {
    const [author, bob, carol] = await Promise.all(['lauth', 'lbob', 'lcar'].map((p) => newUser(LB, p)));
    const ch = await createChannel(LB, author.token, `life-${randomUUID().slice(0, 8)}`);
    const sock = (u, n) => connect(LB, u.token, { ...pin(n), transports: ['websocket'] });
    // The author on server-1 and server-3, bob on server-2, carol on server-3.
    const [a1, a3, sb, sc] = await Promise.all([sock(author, 1), sock(author, 3), sock(bob, 2), sock(carol, 3)]);
    const all = [a1, a3, sb, sc];
    for (const s of all) assert.deepEqual(await ack(s, 'channel:join', { channelId: ch.id }), { ok: true });
    const logs = all.map((s) => {
      const log = [];
      s.onAny((event, p) => { if (p && p.channelId === ch.id && ['message:update', 'message:delete', 'reaction'].includes(event)) log.push({ event, ...p }); });
      return log;
    });
    const send = async (text) => { const r = await ack(a1, 'message:send', { channelId: ch.id, text, nonce: randomUUID() }); assert.ok(r.id, JSON.stringify(r)); return r.id; };
    const [kept, doomed] = [await send('kept'), await send('doomed')];
    const edit = (s, id, text) => ack(s, 'message:edit', { id, text, nonce: randomUUID() });
    const react = (s, id, emoji, op = 'add') => ack(s, `reaction:${op}`, { messageId: id, emoji, nonce: randomUUID() });
    // Everything at once, from every node.
    const acks = await Promise.all([
      edit(a1, kept, 'kept: from server-1'), edit(a3, kept, 'kept: from server-3'), react(sb, kept, '👍'), react(sc, kept, '👍'), react(sc, kept, '🎉'),
      edit(a1, doomed, 'doomed: edited'), ack(a3, 'message:delete', { id: doomed, nonce: randomUUID() }), react(sb, doomed, '😢'), edit(a1, doomed, 'doomed: again'),
    ]);
    for (const r of acks) assert.ok(r.ok || (r.error && r.error.code === 'not_found'), `a change was refused: ${JSON.stringify(r)}`);
    await react(sc, kept, '🎉', 'remove');
    // Each client folds the events it got, in order, as the web client does.
    const fold = (log) => {
      const st = { [kept]: { text: 'kept', deleted: false, r: {} }, [doomed]: { text: 'doomed', deleted: false, r: {} } };
      for (const e of log) {
        const m = st[e.id || e.messageId];
        if (!m || m.deleted) continue;
        if (e.event === 'message:update') m.text = e.text;
        if (e.event === 'message:delete') Object.assign(m, { deleted: true, text: '', r: {} });
        if (e.event === 'reaction') m.r[e.emoji] = (m.r[e.emoji] || 0) + (e.op === 'add' ? 1 : -1);
      }
      for (const m of Object.values(st)) for (const [k, v] of Object.entries(m.r)) if (!v) delete m.r[k];
      return st;
    };
    const settled = () => logs.every((l) => l.length === logs[0].length) && logs[0].some((e) => e.event === 'reaction' && e.op === 'remove');
    await waitFor(settled, 10000, 'every client has every change');
    await sleep(500);
    const key = (e) => `${e.event} ${e.id || e.messageId} ${e.text || e.emoji || ''} ${e.op || ''}`;
    for (const l of logs.slice(1)) assert.deepEqual(l.map(key), logs[0].map(key), 'two clients got the changes in different orders');
    const final = fold(logs[0]);
    assert.equal(final[doomed].deleted, true, 'the delete was lost');
    assert.deepEqual(final[kept].r, { '👍': 2 });
    // History says the same, once the batch writer has it.
    await waitFor(async () => {
      const page = await (await fetch(`${LB}/api/channels/${ch.id}/messages`, { headers: { authorization: `Bearer ${bob.token}` } })).json();
      const h = Object.fromEntries(page.messages.map((m) => [m.id, m]));
      const k = h[kept];
      const d = h[doomed];
      return k && d && k.text === final[kept].text && d.deleted && d.text === '' &&
        JSON.stringify((k.reactions || []).map((r) => [r.emoji, r.count])) === JSON.stringify([['👍', 2]]);
    }, 15000, `history agrees with the clients (${JSON.stringify(final)})`);
    all.forEach((s) => s.disconnect());
  });

  test('a client away while its peers edit, react and delete recovers on another node with exactly those changes, once each, in order', { timeout: 60000 }, async () => {
    const [a, b] = await Promise.all(['rcva', 'rcvb'].map((p) => newUser(LB, p)));
    const ch = await createChannel(LB, a.token, `life-rec-${randomUUID().slice(0, 8)}`);
    const sa = await connect(LB, a.token, { ...pin(2), transports: ['websocket'], reconnection: true, reconnectionDelay: 1500, reconnectionDelayMax: 1500, randomizationFactor: 0 });
    const sb = await connect(LB, b.token, { ...pin(1), transports: ['websocket'] });
    for (const s of [sa, sb]) assert.deepEqual(await ack(s, 'channel:join', { channelId: ch.id }), { ok: true });
    const seen = [];
    sa.onAny((event, p) => {
      if (!p || p.channelId !== ch.id) return;
      if (event === 'message') seen.push(`message ${p.text}`);
      else if (event === 'message:update') seen.push(`update ${p.text}`);
      else if (event === 'message:delete') seen.push(`delete ${p.id.slice(-4)}`);
      else if (event === 'reaction') seen.push(`reaction ${p.emoji} ${p.op}`);
    });
    const sent = async (text) => { const r = await ack(sb, 'message:send', { channelId: ch.id, text, nonce: randomUUID() }); assert.ok(r.id, JSON.stringify(r)); return r.id; };
    const [one, two] = [await sent('one'), await sent('two')];
    await waitFor(() => seen.length === 2, 10000, 'a has both messages');
    // a drops; its next connection goes to server-3.
    sa.io.opts.extraHeaders = pin(3).extraHeaders;
    const dropped = once(sa, 'disconnect', 5000);
    sa.io.engine.close();
    await dropped;
    for (const [event, payload] of [
      ['message:edit', { id: one, text: 'one, edited' }], ['reaction:add', { messageId: one, emoji: '🎉' }],
      ['reaction:remove', { messageId: one, emoji: '🎉' }], ['message:delete', { id: two }]]) {
      const r = await ack(sb, event, { ...payload, nonce: randomUUID() });
      assert.equal(r.ok, true, `${event}: ${JSON.stringify(r)}`);
    }
    assert.equal(sa.connected, false, 'a reconnected too early; the test proves nothing');
    await once(sa, 'connect', 15000);
    assert.equal(sa.recovered, true, 'a was not recovered on server-3');
    await waitFor(() => seen.length >= 6, 10000, 'a gets the four changes').catch((e) => { throw new Error(`${e.message}: a saw ${JSON.stringify(seen)}`); });
    await sleep(500);
    assert.deepEqual(seen, ['message one', 'message two', 'update one, edited', 'reaction 🎉 add', 'reaction 🎉 remove', `delete ${two.slice(-4)}`]);
    [sa, sb].forEach((s) => s.disconnect());
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
    }, { clients: 12, intervalMs: 250, acksMayBeLost: true }));
  });

  // Each outage outlasts a send's 5 s timeout, so senders see errors, not just slow acks.
  for (const [svc, key, outageMs] of [['redis', 'redis', 6000], ['kafka', 'kafka', 8000], ['postgres', 'database', 6000]]) {
    test(`restart of ${svc} under load`, { timeout: 240000 }, async () => {
      reports.push(await underLoad(`${svc}-restart`, async () => {
        const downAt = Date.now();
        await script('services.sh', 'down', svc);
        // Every node says so on /health, so the balancer and operators see it.
        for (const n of [1, 2, 3]) {
          await waitFor(async () => { const h = await health(n); return h.http === 503 && h.services?.[key] === false; },
            outageMs, `server-${n} /health 503 with services.${key} false`, 200);
        }
        await sleep(Math.max(0, outageMs - (Date.now() - downAt)));
        await script('services.sh', 'up', svc);
        return { note: `${svc} stopped for ${outageMs / 1000} s, then started with its data`, downAt, upAt: Date.now() };
      }, { clients: 12, intervalMs: 250 }));
      for (const n of [1, 2, 3]) {
        await waitFor(async () => (await health(n)).http === 200, 30000, `server-${n} healthy after the ${svc} restart`);
      }
    });
  }
});
