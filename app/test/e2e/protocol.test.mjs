// End-to-end protocol tests: the real Quibly binary (standalone) driven by the stock
// socket.io-client 4.8 and, where a test needs to misbehave, by a raw websocket.
// Run: node --test --test-concurrency=1 protocol.test.mjs
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import net from 'node:net';
import { startServer, channelId } from './harness.mjs';
import {
  waitFor, once, connect, connectError, makeSocket, ack, ackArgs, closeAll, newUser, createChannel, history,
  UUID_V7, uuidV7Time, sortIds, rawEngine, rawSocketIo, stopServer, randomUUID, sleep,
  fullHistory, pipeline, assertOneOrder, pythonClient,
} from './clients.mjs';

const T = { timeout: 30000 };

/** Starts one server for the enclosing describe block; closes clients after each test. */
function useServer(name, env) {
  const ctx = {};
  before(async () => {
    ctx.srv = await startServer({ name: `${name}-${process.pid}`, env });
    ctx.url = ctx.srv.url;
    ctx.serverId = `${name}-${process.pid}`;
  });
  afterEach(() => closeAll());
  after(async () => {
    closeAll();
    await stopServer(ctx.srv);
  });
  return ctx;
}

/** Asserts an ack is {id: UUIDv7, ts: number} and returns it. */
function assertSent(res, label = 'message:send ack') {
  assert.ok(res && typeof res === 'object', `${label}: not an object: ${JSON.stringify(res)}`);
  assert.equal(res.error, undefined, `${label}: unexpected error ${JSON.stringify(res)}`);
  assert.equal(typeof res.id, 'string', `${label}: id not a string: ${JSON.stringify(res)}`);
  assert.match(res.id, UUID_V7, `${label}: id is not a UUIDv7: ${res.id}`);
  assert.equal(typeof res.ts, 'number', `${label}: ts not a number: ${JSON.stringify(res)}`);
  assert.ok(Number.isFinite(res.ts) && res.ts > 0, `${label}: ts not a positive finite number: ${res.ts}`);
  const skew = Math.abs(uuidV7Time(res.id) - Date.now());
  assert.ok(skew < 60000, `${label}: UUIDv7 time ${uuidV7Time(res.id)} is ${skew} ms away from now`);
  return res;
}

/** Asserts an ack is {error: {code, message}} with the given code. */
function assertError(res, code, label = 'ack') {
  assert.ok(res && typeof res === 'object', `${label}: not an object: ${JSON.stringify(res)}`);
  assert.ok(res.error && typeof res.error === 'object', `${label}: expected {error:{code:'${code}'}}, got ${JSON.stringify(res)}`);
  assert.equal(res.error.code, code, `${label}: expected code ${code}, got ${JSON.stringify(res)}`);
  assert.equal(typeof res.error.message, 'string', `${label}: error.message not a string: ${JSON.stringify(res)}`);
}

/** Messages of one channel that a socket receives, in arrival order. */
function inbox(socket, chId) {
  const list = [];
  socket.on('message', (m) => { if (m && m.channelId === chId) list.push(m); });
  return list;
}

/** Asserts that obj has at least the given fields with the given values. */
function assertFields(obj, expected, label = 'payload') {
  assert.ok(obj && typeof obj === 'object', `${label}: not an object: ${JSON.stringify(obj)}`);
  for (const [k, v] of Object.entries(expected)) {
    assert.deepEqual(obj[k], v, `${label}.${k}: expected ${JSON.stringify(v)} in ${JSON.stringify(obj)}`);
  }
}

function assertOk(res, label) {
  assertFields(res, { ok: true }, label);
  assert.equal(res.error, undefined, `${label}: ${JSON.stringify(res)}`);
}

/** The value of a metric's sample line (0 when absent). */
async function metric(url, series) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.split(' ')[1]) : 0;
}

async function join(socket, chId) {
  assertOk(await ack(socket, 'channel:join', { channelId: chId }), `channel:join ${chId}`);
}

function send(socket, chId, text, nonce = randomUUID(), ms = 5000) {
  return ack(socket, 'message:send', { channelId: chId, text, nonce }, ms);
}

/** Joins general, sends a message, and waits until the sender itself receives it. */
async function roundTrip(url, user, socket) {
  const gen = await channelId(url, user.token);
  const got = inbox(socket, gen);
  await join(socket, gen);
  const text = `round trip ${randomUUID()}`;
  const res = assertSent(await send(socket, gen, text));
  await waitFor(() => got.find((m) => m.id === res.id), 5000, 'own message echoed back');
  assert.equal(got.find((m) => m.id === res.id).text, text);
  return res;
}

describe('transports', () => {
  const ctx = useServer('e2e-transports');

  it('websocket-only client connects over websocket and exchanges messages', T, async () => {
    const u = await newUser(ctx.url);
    const s = await connect(ctx.url, u.token, { transports: ['websocket'] });
    assert.equal(s.io.engine.transport.name, 'websocket');
    await roundTrip(ctx.url, u, s);
    assert.equal(s.io.engine.transport.name, 'websocket');
  });

  it('polling-only client connects over long-polling and exchanges messages', T, async () => {
    const u = await newUser(ctx.url);
    const s = await connect(ctx.url, u.token, { transports: ['polling'], upgrade: false });
    assert.equal(s.io.engine.transport.name, 'polling');
    await roundTrip(ctx.url, u, s);
    // long enough for several poll cycles
    await sleep(500);
    await roundTrip(ctx.url, u, s);
    assert.equal(s.io.engine.transport.name, 'polling');
    assert.equal(s.connected, true);
  });

  it('default client starts on polling, upgrades to websocket, and keeps working', T, async () => {
    const u = await newUser(ctx.url);
    let firstTransport = null;
    let upgradedTo = null;
    const s = makeSocket(ctx.url, { auth: { token: u.token } });
    s.io.on('open', () => {
      firstTransport = s.io.engine.transport.name;
      s.io.engine.on('upgrade', (t) => { upgradedTo = t.name; });
    });
    await once(s, 'connect', 10000);
    assert.equal(firstTransport, 'polling');
    await waitFor(() => upgradedTo, 10000, "engine 'upgrade' event");
    assert.equal(upgradedTo, 'websocket');
    assert.equal(s.io.engine.transport.name, 'websocket');
    await roundTrip(ctx.url, u, s);
    assert.equal(s.connected, true);
  });
});

describe('events and acks', () => {
  const ctx = useServer('e2e-events');

  it('channel:join {channelId} acks {ok:true}', T, async () => {
    const u = await newUser(ctx.url);
    const s = await connect(ctx.url, u.token);
    const gen = await channelId(ctx.url, u.token);
    assertOk(await ack(s, 'channel:join', { channelId: gen }), 'channel:join general');
  });

  it('channel:join of an unknown channel acks {error:{code:"not_found"}}', T, async () => {
    const u = await newUser(ctx.url);
    const s = await connect(ctx.url, u.token);
    assertError(await ack(s, 'channel:join', { channelId: randomUUID() }), 'not_found', 'join unknown channel');
  });

  it('channel:leave acks {ok:true}, stops delivery, and sending there is then forbidden', T, async () => {
    const a = await newUser(ctx.url);
    const b = await newUser(ctx.url);
    const ch = await createChannel(ctx.url, a.token, `leave-${randomUUID().slice(0, 8)}`);
    const sa = await connect(ctx.url, a.token);
    const sb = await connect(ctx.url, b.token);
    const gotA = inbox(sa, ch.id);
    const gotB = inbox(sb, ch.id);
    await join(sa, ch.id);
    await join(sb, ch.id);
    const before = assertSent(await send(sb, ch.id, 'before leave'));
    await waitFor(() => gotA.find((m) => m.id === before.id), 5000, 'A receives before leaving');

    assertOk(await ack(sa, 'channel:leave', { channelId: ch.id }), 'channel:leave');

    const afterLeave = assertSent(await send(sb, ch.id, 'after leave'));
    await waitFor(() => gotB.find((m) => m.id === afterLeave.id), 5000, 'B receives its own message');
    await sleep(300);
    assert.equal(gotA.find((m) => m.id === afterLeave.id), undefined, 'A received a message after leaving');
    assertError(await send(sa, ch.id, 'not a member any more'), 'forbidden', 'send after leave');
  });

  it('message:send {channelId,text,nonce} acks {id: UUIDv7, ts: number}', T, async () => {
    const u = await newUser(ctx.url);
    const s = await connect(ctx.url, u.token);
    const gen = await channelId(ctx.url, u.token);
    await join(s, gen);
    assertSent(await send(s, gen, 'hello'));
  });

  it('message:send to a channel not joined acks {error:{code:"forbidden"}}', T, async () => {
    const owner = await newUser(ctx.url);
    const u = await newUser(ctx.url);
    const ch = await createChannel(ctx.url, owner.token, `nojoin-${randomUUID().slice(0, 8)}`);
    const s = await connect(ctx.url, u.token);
    const watcher = await connect(ctx.url, owner.token);
    const seen = inbox(watcher, ch.id);
    await join(watcher, ch.id);
    assertError(await send(s, ch.id, 'sneaky'), 'forbidden', 'send without join');
    await sleep(300);
    assert.equal(seen.length, 0, `a forbidden message was delivered: ${JSON.stringify(seen)}`);
  });

  it('typing {channelId} reaches the other member as {channelId,userId,username}, not the sender', T, async () => {
    const a = await newUser(ctx.url);
    const b = await newUser(ctx.url);
    const sa = await connect(ctx.url, a.token);
    const sb = await connect(ctx.url, b.token);
    const gen = await channelId(ctx.url, a.token);
    await join(sa, gen);
    await join(sb, gen);
    const typA = [];
    const typB = [];
    sa.on('typing', (p) => typA.push(p));
    sb.on('typing', (p) => typB.push(p));
    sa.emit('typing', { channelId: gen });
    const got = await waitFor(() => typB.find((p) => p && p.userId === a.user.id), 5000, 'typing at B');
    assertFields(got, { channelId: gen, userId: a.user.id, username: a.name }, 'typing');
    await sleep(500);
    assert.equal(typA.filter((p) => p && p.userId === a.user.id).length, 0, 'the sender received its own typing event');
  });

  it('presence: online when another user connects, offline after it disconnects', T, async () => {
    const a = await newUser(ctx.url);
    const b = await newUser(ctx.url);
    const sa = await connect(ctx.url, a.token);
    const gen = await channelId(ctx.url, a.token);
    await join(sa, gen);
    const pres = [];
    sa.on('presence', (p) => { if (p && p.userId === b.user.id) pres.push(p); });

    const sb = await connect(ctx.url, b.token);
    await join(sb, gen);
    const online = await waitFor(() => pres.find((p) => p.status === 'online'), 5000, 'presence online for B');
    assertFields(online, { userId: b.user.id, username: b.name, status: 'online' }, 'presence');

    sb.disconnect();
    const offline = await waitFor(() => pres.find((p) => p.status === 'offline'), 10000, 'presence offline for B');
    assertFields(offline, { userId: b.user.id, username: b.name, status: 'offline' }, 'presence');
    assert.ok(pres.indexOf(online) < pres.indexOf(offline));
  });
});

describe('messages', () => {
  // Two hundred pipelined sends need more than the default rate limit and send queue.
  const ordered = useServer('ordered', { MESSAGE_RATE: '10000', MESSAGE_BURST: '1000', SEND_QUEUE_SIZE: '4096' });
  const ctx = useServer('e2e-messages');

  it("the 'message' event payload is {id,channelId,authorId,author,text,ts,nonce}", T, async () => {
    const a = await newUser(ctx.url);
    const b = await newUser(ctx.url);
    const sa = await connect(ctx.url, a.token);
    const sb = await connect(ctx.url, b.token);
    const gen = await channelId(ctx.url, a.token);
    const gotA = inbox(sa, gen);
    const gotB = inbox(sb, gen);
    await join(sa, gen);
    await join(sb, gen);
    const nonce = randomUUID();
    const text = `payload check ✓ ${nonce}`;
    const res = assertSent(await send(sa, gen, text, nonce));
    const expected = { id: res.id, channelId: gen, authorId: a.user.id, author: a.name, text, ts: res.ts, nonce };
    const atB = await waitFor(() => gotB.find((m) => m.id === res.id), 5000, 'message at B');
    assertFields(atB, expected, 'message at B');
    const atA = await waitFor(() => gotA.find((m) => m.id === res.id), 5000, 'message echoed to the sender');
    assertFields(atA, expected, 'message at A');
  });

  it('two senders pipelining 200 sends each: three receivers get one ascending order, the senders\' own in send order, as history', { timeout: 90000 }, async () => {
    const [a, b, c] = await Promise.all([newUser(ordered.url), newUser(ordered.url), newUser(ordered.url)]);
    const ch = await createChannel(ordered.url, a.token, `order-${randomUUID().slice(0, 8)}`);
    const socks = await Promise.all([a, b, c].map((u) => connect(ordered.url, u.token)));
    const received = socks.map((s) => inbox(s, ch.id));
    for (const s of socks) await join(s, ch.id);
    // Every emit of both senders is issued before any ack comes back.
    const [acksA, acksB] = await Promise.all([pipeline(socks[0], ch.id, 'A', 200), pipeline(socks[1], ch.id, 'B', 200)]);
    [...acksA, ...acksB].forEach((r, i) => assertSent(r, `send #${i}`));
    await waitFor(() => received.every((l) => l.length >= 400), 30000, 'every receiver to get all 400 messages');
    await sleep(300); // catch duplicates
    assertOneOrder({ received, senders: [{ tag: 'A', acks: acksA }, { tag: 'B', acks: acksB }],
      history: await fullHistory(ordered.url, a.token, ch.id) });
  });

  it('a retried send with the same nonce returns the same id and is stored once', T, async () => {
    const a = await newUser(ctx.url);
    const sa = await connect(ctx.url, a.token);
    const gen = await channelId(ctx.url, a.token);
    await join(sa, gen);
    const nonce = randomUUID();
    const text = `retry ${nonce}`;
    const first = assertSent(await send(sa, gen, text, nonce));
    const second = assertSent(await send(sa, gen, text, nonce));
    assert.equal(second.id, first.id, 'the retry got a different id');

    await waitFor(async () => (await history(ctx.url, a.token, gen, { limit: 100 })).some((m) => m.id === first.id), 10000, 'message in history');
    await sleep(500);
    const h = await history(ctx.url, a.token, gen, { limit: 100 });
    assert.equal(h.filter((m) => m.id === first.id).length, 1, 'id stored more than once');
    assert.equal(h.filter((m) => m.text === text).length, 1, `text stored ${h.filter((m) => m.text === text).length} times`);
    const stored = h.find((m) => m.id === first.id);
    assert.equal(stored.channelId, gen);
    assert.equal(stored.authorId, a.user.id);
  });
});

describe('handshake errors', () => {
  const ctx = useServer('e2e-handshake');

  function assertUnauthorized(err) {
    assert.match(err.message, /unauthori[sz]ed/i, `connect_error message: ${err.message}`);
    assert.equal(err.data && err.data.code, 'unauthorized', `connect_error data: ${JSON.stringify(err.data)}`);
  }

  it('a bad token gets connect_error unauthorized', T, async () => {
    assertUnauthorized(await connectError(ctx.url, { auth: { token: 'not-a-jwt' } }));
    // A well-formed token whose signature is wrong: a real token's claims, re-signed.
    const u = await newUser(ctx.url);
    const [h, p] = u.token.split('.');
    const sig = createHmac('sha256', 'not-the-server-secret').update(`${h}.${p}`).digest('base64url');
    assertUnauthorized(await connectError(ctx.url, { auth: { token: `${h}.${p}.${sig}` } }));
    // The same user with the genuine token does connect.
    const s = await connect(ctx.url, u.token);
    assert.equal(s.connected, true);
  });

  it('a missing token gets connect_error unauthorized', T, async () => {
    assertUnauthorized(await connectError(ctx.url, {}));
    assertUnauthorized(await connectError(ctx.url, { auth: {} }));
    assertUnauthorized(await connectError(ctx.url, { auth: { token: '' } }));
  });

  it('an unknown namespace gets connect_error "Invalid namespace"', T, async () => {
    const u = await newUser(ctx.url);
    const err = await connectError(`${ctx.url}/nope`, { auth: { token: u.token } });
    assert.equal(err.message, 'Invalid namespace');
  });
});

describe('tokens of users that no longer exist', () => {
  const SECRET = 'e2e-ghost-secret-of-at-least-32-characters';
  const ctx = useServer('e2e-ghost', { JWT_SECRET: SECRET });

  it('a validly signed token whose user is gone gets connect_error unauthorized and 401, not 503', T, async () => {
    const now = Math.floor(Date.now() / 1000);
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const h = b64({ alg: 'HS256', typ: 'JWT' });
    const p = b64({ sub: randomUUID(), name: 'ghost', iat: now, exp: now + 3600 });
    const token = `${h}.${p}.${createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url')}`;
    const err = await connectError(ctx.url, { auth: { token } });
    assert.equal(err.data && err.data.code, 'unauthorized', `connect_error data: ${JSON.stringify(err.data)}`);
    const r = await fetch(`${ctx.url}/api/channels`, { method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'haunted' }) });
    assert.equal(r.status, 401);
    // A real user's token under the same secret connects: the refusal is about the user.
    const u = await newUser(ctx.url);
    assert.equal((await connect(ctx.url, u.token)).connected, true);
  });

  it('after POST /api/auth/logout the user\'s tokens are refused on connect and REST', T, async () => {
    const u = await newUser(ctx.url);
    assert.equal((await connect(ctx.url, u.token)).connected, true);
    const out = await fetch(`${ctx.url}/api/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${u.token}` } });
    assert.equal(out.status, 204);
    const err = await connectError(ctx.url, { auth: { token: u.token }, reconnection: false });
    assert.equal(err.data && err.data.code, 'unauthorized', `connect_error data: ${JSON.stringify(err.data)}`);
    assert.match(err.message, /revoked/);
    const r = await fetch(`${ctx.url}/api/channels`, { headers: { authorization: `Bearer ${u.token}` } });
    assert.equal(r.status, 401);
  });
});

describe('malformed input', () => {
  const ctx = useServer('e2e-malformed');

  async function client() {
    const u = await newUser(ctx.url);
    const s = await connect(ctx.url, u.token);
    const gen = await channelId(ctx.url, u.token);
    await join(s, gen);
    return { u, s, gen };
  }

  it('an unknown event with an ack gets {error:{code:"invalid"}}', T, async () => {
    const { s } = await client();
    assertError(await ack(s, 'no:such:event', { channelId: 'x' }), 'invalid', 'unknown event');
    assertError(await ackArgs(s, 5000, 'message:sendd', {}), 'invalid', 'unknown event 2');
    assert.equal(s.connected, true);
  });

  it('a payload without channelId gets invalid', T, async () => {
    const { s } = await client();
    assertError(await ack(s, 'channel:join', {}), 'invalid', 'join {}');
    assertError(await ack(s, 'channel:leave', {}), 'invalid', 'leave {}');
    assertError(await ack(s, 'message:send', { text: 'hi', nonce: randomUUID() }), 'invalid', 'send without channelId');
    assertError(await ack(s, 'channel:join', { channelId: 42 }), 'invalid', 'join with numeric channelId');
  });

  it('a text that is not a string gets invalid', T, async () => {
    const { s, gen } = await client();
    assertError(await ack(s, 'message:send', { channelId: gen, text: 123, nonce: randomUUID() }), 'invalid', 'numeric text');
    assertError(await ack(s, 'message:send', { channelId: gen, text: { a: 1 }, nonce: randomUUID() }), 'invalid', 'object text');
    assertError(await ack(s, 'message:send', { channelId: gen, text: null, nonce: randomUUID() }), 'invalid', 'null text');
    assertError(await ack(s, 'message:send', { channelId: gen, nonce: randomUUID() }), 'invalid', 'missing text');
  });

  it('a payload that is not an object gets invalid', T, async () => {
    const { s, gen } = await client();
    assertError(await ack(s, 'message:send', 'hello'), 'invalid', 'string payload');
    assertError(await ack(s, 'message:send', 42), 'invalid', 'number payload');
    assertError(await ack(s, 'message:send', [gen, 'hi']), 'invalid', 'array payload');
    assertError(await ack(s, 'channel:join', null), 'invalid', 'null payload');
    assertError(await ackArgs(s, 5000, 'channel:join'), 'invalid', 'no payload');
    // still serving
    assertSent(await send(s, gen, 'still fine'));
  });

  it('an event carrying a Buffer (a binary packet) gets invalid and the socket stays', T, async () => {
    const { s, gen } = await client();
    const res = await ackArgs(s, 5000, 'message:send', { channelId: gen, text: 'with a file', nonce: randomUUID() }, Buffer.from([1, 2, 3]));
    assertError(res, 'invalid', 'send with a binary attachment');
    assert.match(res.error.message, /binary/);
    assert.equal(s.connected, true);
    assertSent(await send(s, gen, 'JSON still works'));
  });

  it('a malformed raw packet closes that connection while another client keeps working', T, async () => {
    const { s: other, gen } = await client();
    const bad = await newUser(ctx.url);
    const raw = await rawSocketIo(ctx.url, bad.token);
    // the raw connection works before the garbage
    raw.ws.send(`420${JSON.stringify(['channel:join', { channelId: gen }])}`);
    const reply = await raw.next((m) => m.startsWith('430'));
    assertOk(JSON.parse(reply.slice(3))[0], 'raw channel:join');

    raw.ws.send('42[not json');
    const closed = await Promise.race([raw.closed, sleep(5000).then(() => null)]);
    assert.ok(closed, `server did not close the connection after '42[not json'; received ${JSON.stringify(raw.messages)}`);
    assert.equal(closed.code, 1002, `close frame ${JSON.stringify(closed)}, want 1002 (protocol error)`);

    assertSent(await send(other, gen, 'unaffected'));
    assert.equal(other.connected, true);
  });
});

describe('limits', () => {
  const ctx = useServer('e2e-limits');

  it('text up to 4000 characters is accepted, longer text gets too_large', T, async () => {
    const u = await newUser(ctx.url);
    const s = await connect(ctx.url, u.token);
    const gen = await channelId(ctx.url, u.token);
    const got = inbox(s, gen);
    await join(s, gen);
    const ok = assertSent(await send(s, gen, 'x'.repeat(4000)));
    assertError(await send(s, gen, 'y'.repeat(4001)), 'too_large', '4001 chars');
    assertError(await send(s, gen, 'z'.repeat(5000)), 'too_large', '5000 chars');
    await waitFor(() => got.find((m) => m.id === ok.id), 5000, 'the 4000-char message');
    await sleep(300);
    assert.equal(got.filter((m) => m.text && m.text.length > 4000).length, 0, 'an oversized message was delivered');
    assert.equal(s.connected, true);
  });

  it('a websocket frame over maxPayload closes that connection, others keep serving', T, async () => {
    const u = await newUser(ctx.url);
    const other = await connect(ctx.url, u.token);
    const gen = await channelId(ctx.url, u.token);
    await join(other, gen);

    const big = await newUser(ctx.url);
    const raw = await rawSocketIo(ctx.url, big.token);
    const { maxPayload } = raw.open;
    assert.equal(typeof raw.open.sid, 'string');
    assert.equal(typeof raw.open.pingInterval, 'number');
    assert.equal(typeof raw.open.pingTimeout, 'number');
    assert.equal(typeof maxPayload, 'number', `open packet: ${JSON.stringify(raw.open)}`);
    assert.ok(maxPayload >= 1000000 && maxPayload <= 1048576, `maxPayload ${maxPayload} is not 1 MB`);

    const packet = `42${JSON.stringify(['message:send', { channelId: gen, text: 'q'.repeat(maxPayload + 100000), nonce: randomUUID() }])}`;
    raw.ws.send(packet);
    const closed = await Promise.race([raw.closed, sleep(5000).then(() => null)]);
    assert.ok(closed, 'the connection stayed open after an oversized frame');

    assertSent(await send(other, gen, 'after the big frame'));
    const again = await connect(ctx.url, big.token);
    assert.equal(again.connected, true);
  });

  it('flooding gets rate_limited acks for the flooder while another client is unaffected', T, async () => {
    const a = await newUser(ctx.url);
    const b = await newUser(ctx.url);
    const sa = await connect(ctx.url, a.token);
    const sb = await connect(ctx.url, b.token);
    const gen = await channelId(ctx.url, a.token);
    const gotB = inbox(sb, gen);
    await join(sa, gen);
    await join(sb, gen);

    const flood = Array.from({ length: 200 }, (_, i) => send(sa, gen, `flood ${i}`, randomUUID(), 20000));
    const normal = (async () => {
      const out = [];
      for (let i = 0; i < 5; i += 1) {
        out.push(await send(sb, gen, `normal ${i}`));
        await sleep(100);
      }
      return out;
    })();
    const [acks, normalAcks] = await Promise.all([Promise.all(flood), normal]);

    const ok = acks.filter((r) => r && !r.error);
    const limited = acks.filter((r) => r && r.error && r.error.code === 'rate_limited');
    const other = acks.filter((r) => !(r && !r.error) && !(r && r.error && r.error.code === 'rate_limited'));
    assert.deepEqual(other, [], 'acks that are neither {id,ts} nor rate_limited');
    assert.ok(limited.length > 0, `no rate_limited ack among 200 rapid sends (${ok.length} succeeded)`);
    limited.forEach((r) => assertError(r, 'rate_limited'));
    acks.slice(0, 5).forEach((r, i) => assertSent(r, `flood send #${i}`));
    ok.forEach((r) => assertSent(r));
    normalAcks.forEach((r, i) => assertSent(r, `normal send #${i}`));

    // Only the accepted flood messages are delivered.
    const okIds = new Set(ok.map((r) => r.id));
    await waitFor(() => gotB.filter((m) => m.authorId === a.user.id).length >= okIds.size, 10000, 'accepted flood messages at B');
    await sleep(300);
    const fromA = gotB.filter((m) => m.authorId === a.user.id).map((m) => m.id);
    assert.equal(fromA.length, okIds.size);
    assert.deepEqual(new Set(fromA), okIds);
    assert.equal(sa.connected, true);
    assert.equal(sb.connected, true);
  });
});

describe('login and register limits', () => {
  const ctx = useServer('e2e-auth-limits', { AUTH_RATE: '0.01', AUTH_BURST: '3' });

  it('past the burst from one address: 429 rate_limited with Retry-After', T, async () => {
    const codes = [];
    let limited;
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${ctx.url}/api/auth/login`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username: `nobody${i}`, password: 'wrong-password' }),
      });
      codes.push(res.status);
      if (res.status === 429) limited = { retry: res.headers.get('retry-after'), body: await res.json() };
    }
    assert.deepEqual(codes, [401, 401, 401, 429, 429]);
    assert.ok(Number(limited.retry) >= 1, `Retry-After ${limited.retry}`);
    assert.equal(limited.body.error.code, 'rate_limited');
  });
});

describe('connections per user and per address', () => {
  const ctx = useServer('e2e-conn-caps', { MAX_CONNECTIONS_PER_USER: '3', MAX_CONNECTIONS_PER_IP: '5' });

  it('a user past its connections gets rate_limited; a closed one frees a place', T, async () => {
    const u = await newUser(ctx.url);
    const socks = [];
    for (let i = 0; i < 3; i++) socks.push(await connect(ctx.url, u.token));
    const err = await connectError(ctx.url, { auth: { token: u.token }, reconnection: false });
    assert.equal(err.data && err.data.code, 'rate_limited', `4th connection: ${err.message} ${JSON.stringify(err.data)}`);
    socks[0].disconnect();
    await waitFor(async () => {
      try { socks.push(await connect(ctx.url, u.token, { reconnection: false }, 2000)); return true; } catch { return false; }
    }, 5000, 'a connection once one closed');
    assert.equal(socks.at(-1).connected, true);
  });

  it('an address past its sessions gets 429 at the handshake', T, async () => {
    // Handshakes open sessions (each lives until the connect timeout); the sixth at the
    // latest is refused, whatever the test above left open.
    const codes = [];
    let refused;
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${ctx.url}/socket.io/?EIO=4&transport=polling`);
      codes.push(res.status);
      if (res.status === 429) refused = res;
      await res.text();
    }
    assert.equal(codes.at(-1), 429, `handshakes from 127.0.0.1: ${codes}`);
    assert.ok(codes.filter((c) => c === 200).length <= 5, `more than 5 sessions: ${codes}`);
    assert.ok(refused.headers.get('retry-after'));
  });
});

describe('stalled and idle HTTP connections', () => {
  const ctx = useServer('e2e-timeouts', { HTTP_READ_TIMEOUT: '1s', HTTP_IDLE_TIMEOUT: '1s' });

  /** Opens a TCP connection, writes what it is given, and resolves with the ms until the server closes it. */
  function closedAfter(what) {
    const { hostname, port } = new URL(ctx.url);
    return new Promise((resolve, reject) => {
      const start = Date.now();
      const sock = net.connect(Number(port), hostname, () => sock.write(what));
      sock.on('data', () => {});
      sock.on('error', () => {});
      sock.on('close', () => resolve(Date.now() - start));
      setTimeout(() => { sock.destroy(); reject(new Error(`still open after 10 s: ${JSON.stringify(what.slice(0, 40))}`)); }, 10000);
    });
  }

  it('a body that stalls after its headers is cut at the read timeout', T, async () => {
    const ms = await closedAfter('POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"user');
    assert.ok(ms >= 900 && ms < 5000, `closed after ${ms} ms, want about 1 s`);
  });

  it('an idle keep-alive connection is closed at the idle timeout', T, async () => {
    const ms = await closedAfter('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok(ms >= 900 && ms < 5000, `closed after ${ms} ms, want about 1 s`);
  });

  it('websocket and long-polling clients outlive both timeouts', T, async () => {
    const u = await newUser(ctx.url);
    const ws = await connect(ctx.url, u.token);
    const polling = await connect(ctx.url, u.token, { transports: ['polling'] });
    const drops = [];
    for (const [name, s] of [['websocket', ws], ['polling', polling]]) s.on('disconnect', (why) => drops.push(`${name}: ${why}`));
    await sleep(2500);
    assert.deepEqual(drops, [], 'disconnects while the timeouts passed');
    assert.equal(ws.connected, true, 'websocket client');
    assert.equal(polling.connected, true, 'polling client');
    const gen = await channelId(ctx.url, u.token);
    await join(polling, gen);
    assertSent(await send(polling, gen, 'after the timeouts'));
  });
});

describe('connection state recovery', () => {
  const ctx = useServer('e2e-recovery');
  const reconnectOpts = {
    transports: ['websocket'], reconnection: true, reconnectionDelay: 3000, reconnectionDelayMax: 3000, randomizationFactor: 0,
  };

  it('a client that reconnects within the window gets exactly the messages it missed', T, async () => {
    const a = await newUser(ctx.url);
    const b = await newUser(ctx.url);
    const ch = await createChannel(ctx.url, a.token, `recover-${randomUUID().slice(0, 8)}`);
    const sa = await connect(ctx.url, a.token, reconnectOpts);
    const sb = await connect(ctx.url, b.token);
    assert.equal(typeof sa._pid, 'string', "the server's CONNECT carried no pid: recovery is off");
    assert.ok(sa._pid.length > 0);
    const gotA = inbox(sa, ch.id);
    await join(sa, ch.id);
    await join(sb, ch.id);

    const before = [];
    for (let i = 0; i < 3; i += 1) before.push(assertSent(await send(sb, ch.id, `before ${i}`)).id);
    await waitFor(() => before.every((id) => gotA.some((m) => m.id === id)), 5000, 'A receives the first 3');
    assert.equal(typeof sa._lastOffset, 'string', 'message events carry no offset argument: recovery is off');

    const pid = sa._pid;
    const disconnected = once(sa, 'disconnect', 5000);
    sa.io.engine.close();
    const [reason] = await disconnected;
    assert.equal(sa.active, true, `A will not reconnect (reason ${reason})`);

    const missed = [];
    for (let i = 0; i < 5; i += 1) missed.push(assertSent(await send(sb, ch.id, `missed ${i}`)).id);
    assert.equal(sa.connected, false, 'A reconnected before B finished sending; the test proves nothing');

    await once(sa, 'connect', 15000);
    assert.equal(sa.recovered, true, 'A was not recovered');
    assert.equal(sa._pid, pid);
    await waitFor(() => missed.every((id) => gotA.some((m) => m.id === id)), 5000, 'A receives the 5 missed messages');
    await sleep(500); // catch duplicates
    const ids = gotA.map((m) => m.id);
    assert.deepEqual(ids.slice().sort(), [...before, ...missed].sort(), `A got ${JSON.stringify(gotA.map((m) => m.text))}`);
    assert.equal(new Set(ids).size, ids.length, 'duplicates');
    assert.deepEqual(gotA.filter((m) => missed.includes(m.id)).map((m) => m.text).sort(), [0, 1, 2, 3, 4].map((i) => `missed ${i}`));

    // The recovered session is still in the channel, without joining again.
    const later = assertSent(await send(sb, ch.id, 'after recovery')).id;
    await waitFor(() => gotA.some((m) => m.id === later), 5000, 'A receives a new message after recovery');
  });

  it('a client that drops before it received any message still recovers what it missed', T, async () => {
    const a = await newUser(ctx.url);
    const b = await newUser(ctx.url);
    const ch = await createChannel(ctx.url, a.token, `recover0-${randomUUID().slice(0, 8)}`);
    const sb = await connect(ctx.url, b.token);
    await join(sb, ch.id);
    assertSent(await send(sb, ch.id, 'before A joined')); // gives the bus a position
    const sa = await connect(ctx.url, a.token, reconnectOpts);
    const gotA = inbox(sa, ch.id);
    await join(sa, ch.id);
    assert.equal(sa._lastOffset, undefined, 'A already has an offset; the test proves nothing');

    const pid = sa._pid;
    const disconnected = once(sa, 'disconnect', 5000);
    sa.io.engine.close();
    await disconnected;
    const missed = [];
    for (let i = 0; i < 3; i += 1) missed.push(assertSent(await send(sb, ch.id, `missed ${i}`)).id);
    assert.equal(sa.connected, false, 'A reconnected before B finished sending; the test proves nothing');

    await once(sa, 'connect', 15000);
    assert.equal(sa.recovered, true, 'A, which presented a pid but no offset, was not recovered');
    assert.equal(sa._pid, pid);
    await waitFor(() => missed.every((id) => gotA.some((m) => m.id === id)), 5000, 'A receives the 3 missed messages');
    await sleep(300); // catch duplicates
    assert.deepEqual(gotA.map((m) => m.id).sort(), missed.slice().sort(), `A got ${JSON.stringify(gotA.map((m) => m.text))}`);
  });

  it('a client that reconnects with an unknown pid is not recovered', T, async () => {
    const a = await newUser(ctx.url);
    const sa = await connect(ctx.url, a.token, { ...reconnectOpts, reconnectionDelay: 300, reconnectionDelayMax: 300 });
    assert.equal(typeof sa._pid, 'string', "the server's CONNECT carried no pid: recovery is off");
    const bogus = `unknown-${randomUUID()}`;
    sa._pid = bogus;
    sa._lastOffset = `unknown-${randomUUID()}`;
    const disconnected = once(sa, 'disconnect', 5000);
    sa.io.engine.close();
    await disconnected;
    await once(sa, 'connect', 10000);
    assert.equal(sa.recovered, false);
    assert.equal(typeof sa._pid, 'string');
    assert.notEqual(sa._pid, bogus);
    // a fresh session: it works once it joins again
    const gen = await channelId(ctx.url, a.token);
    await join(sa, gen);
    assertSent(await send(sa, gen, 'fresh session'));
  });
});

describe('recovery on a node that has carried no message since it started', () => {
  const ctx = useServer('e2e-recovery-fresh');

  for (const transports of [['websocket'], ['polling']]) {
    it(`a client whose transport drops before the first message recovers (${transports[0]}), then gets a new message once`, T, async () => {
      const a = await newUser(ctx.url);
      const b = await newUser(ctx.url);
      const gen = await channelId(ctx.url, a.token);
      const sa = await connect(ctx.url, a.token, { transports, upgrade: false, reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 200 });
      const gotA = inbox(sa, gen);
      await join(sa, gen);
      assert.equal(await metric(ctx.url, 'quibly_messages_total{result="ok"}'), 0, 'a message was sent: the test proves nothing');
      const pid = sa._pid;
      const disconnected = once(sa, 'disconnect', 5000);
      sa.io.engine.close();
      await disconnected;
      await once(sa, 'connect', 10000);
      assert.equal(sa.recovered, true, 'a session that began before any message was not recovered');
      assert.equal(sa._pid, pid);
      // Still in its channel without joining again: a message sent now arrives, once.
      const sb = await connect(ctx.url, b.token);
      await join(sb, gen);
      const sent = assertSent(await send(sb, gen, `after the drop ${transports[0]}`));
      await waitFor(() => gotA.some((m) => m.id === sent.id), 5000, 'A receives the new message');
      await sleep(300);
      assert.equal(gotA.filter((m) => m.id === sent.id).length, 1, 'delivered twice');
      sa.disconnect();
      sb.disconnect();
      // Later sessions of this server already see a message; restart it for the next transport.
      await stopServer(ctx.srv);
      ctx.srv = await startServer({ name: `e2e-recovery-fresh-${transports[0]}-${process.pid}`, dataDir: ctx.srv.dataDir });
      ctx.url = ctx.srv.url;
    });
  }
});

describe('health and metrics', () => {
  const ctx = useServer('e2e-health');

  it('GET /health reports a healthy standalone node', T, async () => {
    const r = await fetch(`${ctx.url}/health`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') || '', /application\/json/);
    const h = await r.json();
    assert.equal(h.status, 'healthy');
    assert.equal(h.serverId, ctx.serverId);
    assert.equal(typeof h.uptime, 'number');
    assert.ok(h.uptime >= 0);
    assert.equal(typeof h.timestamp, 'string');
    assert.ok(!Number.isNaN(Date.parse(h.timestamp)), `timestamp ${h.timestamp}`);
    assert.ok(Math.abs(Date.parse(h.timestamp) - Date.now()) < 60000, `timestamp ${h.timestamp} is not now`);
    assert.equal(h.batchWriterLeader, true);
    assert.equal(h.mode, 'standalone');
    assert.equal(h.services && h.services.database, true, JSON.stringify(h));
    assert.equal(h.services.socketio, true, JSON.stringify(h));
    assert.notEqual(h.services.redis, true, 'standalone claims Redis is up');
    assert.notEqual(h.services.kafka, true, 'standalone claims Kafka is up');
  });

  it('GET /metrics serves Prometheus text with quibly_ metrics', T, async () => {
    const u = await newUser(ctx.url);
    const s = await connect(ctx.url, u.token);
    const gen = await channelId(ctx.url, u.token);
    const got = inbox(s, gen);
    await join(s, gen);
    const sent = assertSent(await send(s, gen, 'timed'));
    await waitFor(() => got.find((m) => m.id === sent.id), 5000, 'own message delivered');
    const r = await fetch(`${ctx.url}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') || '', /text\/plain/);
    const text = await r.text();
    assert.match(text, /^quibly_[a-z0-9_]+(\{[^}]*\})? [0-9.eE+-]+$/m, 'no quibly_ sample line');
    assert.match(text, /^# TYPE quibly_/m);
    // Where a send's time goes: each stage, and the bus to this node's clients.
    for (const series of ['quibly_send_stage_seconds_count{stage="accept"}', 'quibly_send_stage_seconds_count{stage="queue"}', 'quibly_send_stage_seconds_count{stage="publish"}', 'quibly_delivery_seconds_count']) {
      const line = text.split('\n').find((l) => l.startsWith(series + ' '));
      assert.ok(line && Number(line.split(' ')[1]) >= 1, `${series}: ${line}`);
    }
  });
});

describe('origin checks', () => {
  const ctx = useServer('e2e-origin');

  it('a websocket upgrade from a foreign Origin is rejected', T, async () => {
    const r = await rawEngine(ctx.url, { headers: { Origin: 'http://evil.example' } });
    assert.equal(r.open, null, `a foreign origin got an open packet: ${JSON.stringify(r.open)}`);
    // long-polling must not grant the foreign origin CORS access either
    const p = await fetch(`${ctx.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: 'http://evil.example' } });
    await p.arrayBuffer();
    const acao = p.headers.get('access-control-allow-origin');
    assert.ok(p.status >= 400 || (acao !== 'http://evil.example' && acao !== '*'), `polling: ${p.status}, ACAO ${acao}`);
  });

  it("a websocket upgrade from the server's own origin (or none) is accepted", T, async () => {
    const own = await rawEngine(ctx.url, { headers: { Origin: ctx.url } });
    assert.ok(own.open, `own origin refused: ${own.status}`);
    assert.equal(typeof own.open.sid, 'string');
    const none = await rawEngine(ctx.url);
    assert.ok(none.open, `no-origin (non-browser) client refused: ${none.status}`);
  });
});

describe('origin checks with FRONTEND_URL', () => {
  const ctx = useServer('e2e-frontend', { FRONTEND_URL: 'http://app.example' });

  it('FRONTEND_URL is an allowed origin and foreign origins stay rejected', T, async () => {
    const app = await rawEngine(ctx.url, { headers: { Origin: 'http://app.example' } });
    assert.ok(app.open, `FRONTEND_URL origin refused: ${app.status}`);
    const own = await rawEngine(ctx.url, { headers: { Origin: ctx.url } });
    assert.ok(own.open, `own origin refused: ${own.status}`);
    const evil = await rawEngine(ctx.url, { headers: { Origin: 'http://evil.example' } });
    assert.equal(evil.open, null, 'a foreign origin got an open packet');
    // a browser client on FRONTEND_URL starts with long-polling, which needs CORS
    const p = await fetch(`${ctx.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: 'http://app.example' } });
    await p.arrayBuffer();
    assert.equal(p.status, 200);
    assert.equal(p.headers.get('access-control-allow-origin'), 'http://app.example');
  });
});

describe('sockets end with their tokens', () => {
  const ctx = useServer('e2e-token-end');

  it('a logout ends the user\'s open sockets: session:end, then connect_error unauthorized; a fresh token recovers', T, async () => {
    const u = await newUser(ctx.url);
    let token = u.token;
    const s = makeSocket(ctx.url, { auth: (cb) => cb({ token }), reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
    await once(s, 'connect');
    const gen = await channelId(ctx.url, token);
    await join(s, gen);
    const ended = once(s, 'session:end', 5000);
    const refused = once(s, 'connect_error', 10000);
    const out = await fetch(`${ctx.url}/api/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${u.token}` } });
    assert.equal(out.status, 204);
    const [end] = await ended;
    assertFields(end, { code: 'unauthorized' }, 'session:end');
    assert.match(end.message, /logged out|revoked/);
    const [err] = await refused;
    assert.equal(err.data && err.data.code, 'unauthorized', `reconnect with the revoked token: ${JSON.stringify(err.data)}`);
    // A new login gives a token the server takes; the session recovers with it.
    const login = await fetch(`${ctx.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: u.name, password: 'correct horse battery' }) });
    token = (await login.json()).token;
    s.connect();
    await once(s, 'connect', 10000);
    assert.equal(s.recovered, true, 'the session recovers with a fresh token of the same user');
    assertSent(await send(s, gen, 'back after signing in again'));
  });
});

describe('sockets end when their token expires', () => {
  const ctx = useServer('e2e-token-expiry', { TOKEN_TTL: '3s' });

  for (const transports of [['websocket'], ['polling']]) {
    it(`a socket ends at its token's expiry with session:end unauthorized (${transports[0]})`, T, async () => {
      const u = await newUser(ctx.url);
      const s = await connect(ctx.url, u.token, { transports, upgrade: false });
      const start = Date.now();
      const [end] = await once(s, 'session:end', 8000);
      assertFields(end, { code: 'unauthorized' }, 'session:end');
      assert.match(end.message, /expired/);
      await waitFor(() => !s.connected, 5000, 'the connection closed');
      assert.ok(Date.now() - start < 6000, 'ended near the expiry');
      const err = await connectError(ctx.url, { auth: { token: u.token } });
      assert.equal(err.data && err.data.code, 'unauthorized');
    });
  }
});

describe('text that would not be the text sent', () => {
  const ctx = useServer('e2e-text');

  it('a lone surrogate escape is refused, not stored as U+FFFD; invisible-only text is refused', T, async () => {
    const u = await newUser(ctx.url);
    const s = await connect(ctx.url, u.token);
    const gen = await channelId(ctx.url, u.token);
    await join(s, gen);
    // JSON.stringify escapes a lone surrogate as \ud800: the server must not turn it into U+FFFD.
    assertError(await send(s, gen, 'x\ud800y'), 'invalid', 'lone high surrogate');
    assertError(await send(s, gen, 'x\udc00y'), 'invalid', 'lone low surrogate');
    for (const blank of ['\u200b', '\u200d\u200b', '\ufeff', '\u3164', ' \u200b\u00a0 ']) {
      assertError(await send(s, gen, blank), 'invalid', `text ${JSON.stringify(blank)}`);
    }
    const ok = assertSent(await send(s, gen, 'emoji 😀 and a \u200b joiner'));
    const page = await history(ctx.url, u.token, gen);
    assert.equal(page.find((m) => m.id === ok.id).text, 'emoji 😀 and a \u200b joiner');
  });

  it('REST bodies over 16 KiB get 413 too_large', T, async () => {
    const big = JSON.stringify({ username: 'x'.repeat(17 * 1024), password: 'long enough' });
    const r = await fetch(`${ctx.url}/api/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
    assert.equal(r.status, 413);
    assert.equal((await r.json()).error.code, 'too_large');
  });
});

describe('answers to a client\'s own requests never drop it', () => {
  const ctx = useServer('e2e-ack-burst');

  for (const transports of [['websocket'], ['polling']]) {
    it(`1,200 joins at once over ${transports[0]}: every one answered, the client stays`, { timeout: 60000 }, async () => {
      const u = await newUser(ctx.url);
      const s = await connect(ctx.url, u.token, { transports, upgrade: false });
      const gen = await channelId(ctx.url, u.token);
      let disconnected = null;
      s.on('disconnect', (reason) => { disconnected = reason; });
      // More answers than the 256-packet send queue holds, asked for in one burst.
      const acks = await Promise.all(Array.from({ length: 1200 }, () => ack(s, 'channel:join', { channelId: gen }, 30000)));
      const codes = {};
      for (const a of acks) {
        const code = a.ok ? 'ok' : a.error.code;
        codes[code] = (codes[code] || 0) + 1;
      }
      assert.ok(codes.ok >= 200 && codes.ok + (codes.rate_limited || 0) === 1200, `answers ${JSON.stringify(codes)}`);
      assert.equal(disconnected, null, 'the client was dropped for its own answers');
      assert.equal(s.connected, true);
      assertSent(await send(s, gen, 'still here'));
      assert.equal(await metric(ctx.url, 'quibly_slow_clients_dropped_total'), 0);
    });
  }
});

describe('channel creation limits and the channel list in pages', () => {
  const ctx = useServer('e2e-channel-flood', { CHANNELS_PER_USER_HOUR: '5', CHANNELS_PER_NODE_MINUTE: '8' });

  it('past a user\'s and the node\'s allowance: 429 rate_limited with Retry-After; the list pages', T, async () => {
    const create = async (token, name) => fetch(`${ctx.url}/api/channels`, { method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
    const a = await newUser(ctx.url);
    const b = await newUser(ctx.url);
    const statuses = [];
    for (let i = 0; i < 7; i++) statuses.push((await create(a.token, `flood-a-${i}`)).status);
    assert.deepEqual(statuses, [201, 201, 201, 201, 201, 429, 429], 'a user gets 5 an hour');
    const r = await create(a.token, 'flood-a-late');
    assert.ok(Number(r.headers.get('retry-after')) > 0, 'Retry-After');
    assert.equal((await r.json()).error.code, 'rate_limited');
    const other = [];
    for (let i = 0; i < 4; i++) other.push((await create(b.token, `flood-b-${i}`)).status);
    assert.deepEqual(other, [201, 201, 201, 429], 'the node takes 8 a minute over every user');
    // 8 created + general: pages of 3 walk all 9, once each, by name.
    const names = [];
    let after = '';
    for (let pages = 0; ; pages++) {
      assert.ok(pages < 10, 'the pages never end');
      const body = await (await fetch(`${ctx.url}/api/channels?limit=3&after=${encodeURIComponent(after)}`,
        { headers: { authorization: `Bearer ${a.token}` } })).json();
      assert.ok(body.channels.length <= 3);
      names.push(...body.channels.map((c) => c.name));
      if (!body.nextAfter) break;
      after = body.nextAfter;
    }
    assert.equal(names.length, 9, names.join(' '));
    assert.deepEqual(names, [...names].sort(), 'by name');
  });
});

describe('python-socketio', () => {
  // One sender's burst of 40 is past the default per-user rate; this is about the client.
  const ctx = useServer('e2e-python', { MESSAGE_BURST: '100', MESSAGE_RATE: '100' });

  for (const transports of ['polling', 'websocket', 'polling,websocket']) {
    it(`over ${transports}: sends are acked and a burst of 40 arrives whole, in order`, { timeout: 60000 }, async () => {
      const u = await newUser(ctx.url);
      const gen = await channelId(ctx.url, u.token);
      const py = pythonClient({ url: ctx.url, token: u.token, chId: gen, transports, sends: 5, expect: 45 });
      await py.ready;
      // The burst: another client pipelines 40 sends, more than python-engineio takes
      // in one polling payload (16).
      const other = await newUser(ctx.url);
      const s = await connect(ctx.url, other.token);
      await join(s, gen);
      const acks = await Promise.all(Array.from({ length: 40 }, (_, i) => send(s, gen, `burst ${i}`)));
      acks.forEach((a) => assertSent(a, 'burst send'));
      const res = await py.result;
      assert.deepEqual(res.disconnects, [], `the python client was dropped: ${JSON.stringify(res)}`);
      assert.equal(res.acks.length, 5);
      res.acks.forEach((a) => assertSent(a, 'python send'));
      assert.equal(res.received.length, 45, `received ${res.received.length} of 45`);
      assert.deepEqual(res.received, sortIds(res.received), 'one ascending order');
      for (const a of acks) assert.ok(res.received.includes(a.id), `burst message ${a.id} missing`);
      const want = transports === 'polling' ? 'polling' : 'websocket';
      assert.equal(res.transport, want);
    });
  }
});

describe('private channels and members', () => {
  const ctx = useServer('e2e-members');
  const api = async (token, method, path, body) => {
    const r = await fetch(`${ctx.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };

  it('only members join; a member sees member:join before the new member\'s first message; a removed member gets member:leave and nothing after', T, async () => {
    const [owner, member, outsider] = [await newUser(ctx.url), await newUser(ctx.url), await newUser(ctx.url)];
    const made = await api(owner.token, 'POST', '/api/channels', { name: `priv-${randomUUID().slice(0, 8)}`, private: true });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const ch = made.body.channel;
    const [so, sm, sx] = await Promise.all([owner, member, outsider].map((u) => connect(ctx.url, u.token)));
    await join(so, ch.id);
    const notFound = await ack(sx, 'channel:join', { channelId: ch.id });
    const unknown = await ack(sx, 'channel:join', { channelId: randomUUID() });
    assertError(notFound, 'not_found', 'an outsider joins the private channel');
    assert.equal(notFound.error.message.replace(ch.id, 'X'), unknown.error.message.replace(/"[^"]+"/, '"X"'), 'the refusal reveals nothing');
    // The owner's view of the channel, in order.
    const seen = [];
    so.onAny((event, payload) => { if (payload && payload.channelId === ch.id) seen.push(event === 'message' ? `message ${payload.text}` : `${event} ${payload.username || ''}`); });
    assert.equal((await api(owner.token, 'PUT', `/api/channels/${ch.id}/members/${member.user.id}`, { role: 'member' })).status, 201);
    await join(sm, ch.id);
    assertSent(await send(sm, ch.id, 'hello from the new member'));
    await waitFor(() => seen.length >= 2, 5000, 'the owner sees the join and the message');
    assert.deepEqual(seen.slice(0, 2), [`member:join ${member.name}`, 'message hello from the new member']);
    // Removal: the member's socket gets member:leave, then nothing of the channel.
    const memberSaw = [];
    sm.onAny((event, payload) => { if (payload && payload.channelId === ch.id) memberSaw.push(event); });
    assert.equal((await api(owner.token, 'DELETE', `/api/channels/${ch.id}/members/${member.user.id}`)).status, 204);
    await waitFor(() => memberSaw.includes('member:leave'), 5000, 'the removed member is told');
    const after = assertSent(await send(so, ch.id, 'after the removal'));
    await waitFor(() => seen.includes('message after the removal'), 5000, 'the owner gets its own message');
    await sleep(300);
    assert.deepEqual(memberSaw, ['member:leave'], 'the removed member got more of the channel');
    assertError(await send(sm, ch.id, 'still here?'), 'forbidden', 'a removed member sends');
    assertError(await ack(sm, 'channel:join', { channelId: ch.id }), 'not_found', 'a removed member joins again');
    assert.equal((await api(member.token, 'GET', `/api/channels/${ch.id}/messages`)).status, 404);
    // History keeps the changes in their places among the messages.
    const hist = await waitFor(async () => {
      const page = await api(owner.token, 'GET', `/api/channels/${ch.id}/messages`);
      return page.body.messages.length >= 4 && page.body.messages;
    }, 10000, 'the history of the channel');
    assert.deepEqual(hist.map((m) => m.kind || `message ${m.text}`).reverse(),
      ['member:join', 'message hello from the new member', 'member:leave', 'message after the removal']);
    assert.equal(hist[hist.length - 1].data.username, member.name);
    assert.ok(after.id);
  });

  it('an owner renames, archives and deletes a channel; its members see each in order; archived takes no message, deleted is gone', T, async () => {
    const [owner, member] = [await newUser(ctx.url), await newUser(ctx.url)];
    const ch = (await api(owner.token, 'POST', '/api/channels', { name: `life-${randomUUID().slice(0, 8)}` })).body.channel;
    const [so, sm] = await Promise.all([owner, member].map((u) => connect(ctx.url, u.token)));
    await join(so, ch.id);
    await join(sm, ch.id);
    const seen = [];
    sm.onAny((event, payload) => { if (payload && payload.channelId === ch.id) seen.push(event === 'message' ? `message ${payload.text}` : event); });
    const renamed = await api(owner.token, 'PATCH', `/api/channels/${ch.id}`, { name: `${ch.name}-v2` });
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
    assert.equal((await api(member.token, 'PATCH', `/api/channels/${ch.id}`, { archived: true })).status, 403);
    assert.equal((await api(owner.token, 'PATCH', `/api/channels/${ch.id}`, { archived: true })).status, 200);
    await waitFor(() => seen.length >= 2, 5000, 'both updates');
    assertError(await send(sm, ch.id, 'into the archive'), 'forbidden', 'a send to an archived channel');
    assert.equal((await api(member.token, 'GET', `/api/channels/${ch.id}/messages`)).status, 200, 'an archive stays readable');
    assert.equal((await api(owner.token, 'PATCH', `/api/channels/${ch.id}`, { archived: false })).status, 200);
    await waitFor(() => seen.length >= 3, 5000, 'the unarchive');
    assertSent(await send(so, ch.id, 'open again'));
    assert.equal((await api(owner.token, 'DELETE', `/api/channels/${ch.id}`)).status, 204);
    await waitFor(() => seen.includes('channel:delete'), 5000, 'the delete');
    await sleep(300);
    assert.deepEqual(seen, ['channel:update', 'channel:update', 'channel:update', 'message open again', 'channel:delete']);
    assertError(await send(so, ch.id, 'into the void'), 'forbidden', 'a send to a deleted channel');
    assertError(await ack(sm, 'channel:join', { channelId: ch.id }), 'not_found', 'a join of a deleted channel');
    assert.equal((await api(member.token, 'GET', `/api/channels/${ch.id}/messages`)).status, 404);
  });

  it('a DM is one channel for both, private to them', T, async () => {
    const [a, b, c] = [await newUser(ctx.url), await newUser(ctx.url), await newUser(ctx.url)];
    const ab = await api(a.token, 'POST', '/api/dms', { username: b.name });
    const ba = await api(b.token, 'POST', '/api/dms', { userId: a.user.id });
    assert.equal(ab.status, 201);
    assert.equal(ba.status, 200);
    assert.equal(ab.body.channel.id, ba.body.channel.id);
    assert.equal(ab.body.channel.kind, 'dm');
    const [sa, sb, sc] = await Promise.all([a, b, c].map((u) => connect(ctx.url, u.token)));
    await join(sa, ab.body.channel.id);
    await join(sb, ab.body.channel.id);
    assertError(await ack(sc, 'channel:join', { channelId: ab.body.channel.id }), 'not_found', 'a third user joins the DM');
    const got = inbox(sb, ab.body.channel.id);
    const sent = assertSent(await send(sa, ab.body.channel.id, 'just between us'));
    await waitFor(() => got.some((m) => m.id === sent.id), 5000, 'the DM reaches the other user');
  });
});

describe("a message's life: edit, delete, reactions", () => {
  const ctx = useServer('e2e-life');
  const reconnectOpts = {
    transports: ['websocket'], reconnection: true, reconnectionDelay: 3000, reconnectionDelayMax: 3000, randomizationFactor: 0,
  };
  const LIFE = ['message', 'message:update', 'message:delete', 'reaction'];
  /** What a socket receives of a channel's messages and their changes, in order. */
  function lifeLog(socket, chId) {
    const log = [];
    socket.onAny((event, p) => {
      if (!LIFE.includes(event) || !p || p.channelId !== chId) return;
      if (event === 'message') log.push(`message ${p.text}`);
      else if (event === 'message:update') log.push(`update ${p.id.slice(-4)} ${p.text}`);
      else if (event === 'message:delete') log.push(`delete ${p.id.slice(-4)}`);
      else log.push(`reaction ${p.messageId.slice(-4)} ${p.emoji} ${p.op}`);
    });
    return log;
  }

  it('the author edits, members react and take it back, the author deletes; every member sees it in order and history agrees', T, async () => {
    const [a, b] = [await newUser(ctx.url), await newUser(ctx.url)];
    const ch = await createChannel(ctx.url, a.token, `life-${randomUUID().slice(0, 8)}`);
    const [sa, sb] = await Promise.all([a, b].map((u) => connect(ctx.url, u.token)));
    await join(sa, ch.id);
    await join(sb, ch.id);
    const seen = lifeLog(sb, ch.id);
    const m = assertSent(await send(sa, ch.id, 'tpyo'));
    const k = m.id.slice(-4);
    const edited = await ack(sa, 'message:edit', { id: m.id, text: 'typo', nonce: randomUUID() });
    assertOk(edited, 'message:edit');
    assert.equal(typeof edited.editedAt, 'number');
    assertError(await ack(sb, 'message:edit', { id: m.id, text: 'mine' }), 'forbidden', "an edit of another's message");
    assertOk(await ack(sb, 'reaction:add', { messageId: m.id, emoji: '👍' }), 'reaction:add');
    assertOk(await ack(sa, 'reaction:add', { messageId: m.id, emoji: '🎉' }), 'reaction:add');
    assertError(await ack(sb, 'reaction:add', { messageId: m.id, emoji: 'thumbs up' }), 'invalid', 'a reaction that is no emoji');
    const page = await waitFor(async () => {
      const h = await history(ctx.url, b.token, ch.id);
      const msg = h.find((x) => x.id === m.id);
      return msg && msg.text === 'typo' && msg.reactions && msg.reactions.length === 2 && h;
    }, 10000, 'history has the edit and both reactions');
    const inHistory = page.find((x) => x.id === m.id);
    assert.equal(inHistory.editedAt, edited.editedAt);
    assert.deepEqual(inHistory.reactions, [{ emoji: '👍', count: 1, me: true }, { emoji: '🎉', count: 1 }]);
    assertOk(await ack(sb, 'reaction:remove', { messageId: m.id, emoji: '👍' }), 'reaction:remove');
    assertOk(await ack(sa, 'message:delete', { id: m.id, nonce: randomUUID() }), 'message:delete');
    assertError(await ack(sb, 'reaction:add', { messageId: m.id, emoji: '👍' }), 'not_found', 'a reaction on a deleted message');
    assertError(await ack(sa, 'message:edit', { id: m.id, text: 'back' }), 'not_found', 'an edit of a deleted message');
    await waitFor(() => seen.length >= 6, 5000, 'B sees every change');
    await sleep(200);
    assert.deepEqual(seen, ['message tpyo', `update ${k} typo`, `reaction ${k} 👍 add`, `reaction ${k} 🎉 add`, `reaction ${k} 👍 remove`, `delete ${k}`]);
    const tomb = await waitFor(async () => {
      const h = await history(ctx.url, a.token, ch.id);
      const msg = h.find((x) => x.id === m.id);
      return msg && msg.deleted && msg;
    }, 10000, 'history shows the tombstone');
    assert.equal(tomb.text, '');
    assert.equal(tomb.author, '');
    assert.equal(tomb.reactions, undefined);
  });

  it('a client that drops while its peer edits, reacts and deletes recovers exactly those changes, once each, in order', T, async () => {
    const [a, b] = [await newUser(ctx.url), await newUser(ctx.url)];
    const ch = await createChannel(ctx.url, a.token, `life-rec-${randomUUID().slice(0, 8)}`);
    const sa = await connect(ctx.url, a.token, reconnectOpts);
    const sb = await connect(ctx.url, b.token);
    await join(sa, ch.id);
    await join(sb, ch.id);
    const seen = lifeLog(sa, ch.id);
    const [m1, m2] = [assertSent(await send(sb, ch.id, 'one')), assertSent(await send(sb, ch.id, 'two'))];
    await waitFor(() => seen.length === 2, 5000, 'A has both messages');
    const disconnected = once(sa, 'disconnect', 5000);
    sa.io.engine.close();
    await disconnected;
    assertOk(await ack(sb, 'message:edit', { id: m1.id, text: 'one, edited', nonce: randomUUID() }), 'edit while A is away');
    assertOk(await ack(sb, 'reaction:add', { messageId: m1.id, emoji: '❤️' }), 'reaction while A is away');
    assertOk(await ack(sb, 'message:delete', { id: m2.id }), 'delete while A is away');
    assert.equal(sa.connected, false, 'A reconnected too early; the test proves nothing');
    await once(sa, 'connect', 15000);
    assert.equal(sa.recovered, true, 'A was not recovered');
    await waitFor(() => seen.length >= 5, 5000, 'A gets the three changes');
    await sleep(300); // catch duplicates
    assert.deepEqual(seen, ['message one', 'message two', `update ${m1.id.slice(-4)} one, edited`, `reaction ${m1.id.slice(-4)} ❤️ add`, `delete ${m2.id.slice(-4)}`]);
  });

  it('a retry with the same nonce applies once', T, async () => {
    const [a, b] = [await newUser(ctx.url), await newUser(ctx.url)];
    const ch = await createChannel(ctx.url, a.token, `life-nonce-${randomUUID().slice(0, 8)}`);
    const [sa, sb] = await Promise.all([a, b].map((u) => connect(ctx.url, u.token)));
    await join(sa, ch.id);
    await join(sb, ch.id);
    const seen = lifeLog(sb, ch.id);
    const m = assertSent(await send(sa, ch.id, 'draft'));
    const nonce = randomUUID();
    const first = await ack(sa, 'message:edit', { id: m.id, text: 'final', nonce });
    const again = await ack(sa, 'message:edit', { id: m.id, text: 'final', nonce });
    assert.deepEqual(again, first);
    await waitFor(() => seen.length >= 2, 5000, 'the edit');
    await sleep(300);
    assert.deepEqual(seen, ['message draft', `update ${m.id.slice(-4)} final`]);
  });
});

describe('replies, mentions and read markers', () => {
  const ctx = useServer('e2e-reads');
  const api = async (token, method, path, body) => {
    const r = await fetch(`${ctx.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };

  it('a reply carries replyTo and pages in its thread; a mention reaches every connection of the user, joined or not, and counts until read', T, async () => {
    const [a, b] = [await newUser(ctx.url), await newUser(ctx.url)];
    const ch = await createChannel(ctx.url, a.token, `thread-${randomUUID().slice(0, 8)}`);
    const sa = await connect(ctx.url, a.token);
    const [sb1, sb2] = [await connect(ctx.url, b.token), await connect(ctx.url, b.token)];
    await join(sa, ch.id);
    await join(sb1, ch.id); // sb2 stays out of the channel
    const mentions = [];
    sb2.on('mention', (e) => mentions.push(e));
    const q = assertSent(await send(sa, ch.id, 'a question'));
    const replyAck = await ack(sa, 'message:send', { channelId: ch.id, text: `@${b.name} what do you think?`, replyTo: q.id, nonce: randomUUID() });
    const reply = assertSent(replyAck);
    assertError(await ack(sa, 'message:send', { channelId: ch.id, text: 'x', replyTo: randomUUID() }), 'not_found', 'a reply to no message');
    await waitFor(() => mentions.length === 1, 5000, 'the mention reaches the connection that did not join');
    assert.deepEqual(mentions[0], { channelId: ch.id, messageId: reply.id });
    const thread = await api(b.token, 'GET', `/api/channels/${ch.id}/messages/${q.id}/replies`);
    assert.equal(thread.status, 200);
    assert.deepEqual(thread.body.messages.map((m) => [m.id, m.replyTo, m.mentions]), [[reply.id, q.id, [b.user.id]]]);
    const counts = async () => (await api(b.token, 'GET', '/api/channels?limit=200')).body.channels.find((c) => c.id === ch.id);
    await waitFor(async () => (await counts()).mentions === 1, 5000, 'the mention counts');
    // b reads on one connection; the other, not in the channel, learns it too.
    const reads = [];
    sb2.on('read', (e) => reads.push(e));
    const readAck = await ack(sb1, 'channel:read', { channelId: ch.id, messageId: reply.id, nonce: randomUUID() });
    assert.deepEqual(readAck, { ok: true, marker: reply.id });
    await waitFor(() => reads.length === 1, 5000, "the reader's other connection gets the marker");
    assert.equal(reads[0].userId, b.user.id);
    assert.deepEqual(await ack(sb1, 'channel:read', { channelId: ch.id, messageId: q.id }), { ok: true, marker: reply.id }, 'a marker never moves back');
    await waitFor(async () => { const c = await counts(); return c.unread === 0 && c.mentions === 0 && c.marker === reply.id; }, 5000, 'read: nothing unread');
    const aSaw = [];
    sa.on('read', (e) => aSaw.push(e));
    await sleep(300);
    assert.deepEqual(aSaw, [], 'a marker in a public channel went to another member');
  });

  it('in a DM each side gets the other\'s read receipts, and seen-by lists them', T, async () => {
    const [a, b] = [await newUser(ctx.url), await newUser(ctx.url)];
    const dm = (await api(a.token, 'POST', '/api/dms', { username: b.name })).body.channel;
    const [sa, sb] = [await connect(ctx.url, a.token), await connect(ctx.url, b.token)];
    await join(sa, dm.id);
    await join(sb, dm.id);
    const receipts = [];
    sa.on('read', (e) => receipts.push(e));
    const m = assertSent(await send(sa, dm.id, 'did you see this?'));
    assertOk(await ack(sb, 'channel:read', { channelId: dm.id, messageId: m.id }), 'channel:read');
    await waitFor(() => receipts.some((r) => r.userId === b.user.id && r.messageId === m.id), 5000, 'a gets b\'s receipt');
    const seen = await waitFor(async () => {
      const r = await api(a.token, 'GET', `/api/channels/${dm.id}/reads`);
      return r.body.reads.length === 1 && r.body;
    }, 5000, 'seen-by');
    assert.equal(seen.receipts, true);
    assert.deepEqual(seen.reads.map((r) => [r.userId, r.username, r.messageId]), [[b.user.id, b.name, m.id]]);
  });
});
