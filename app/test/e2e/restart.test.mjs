// End-to-end shutdown/restart test: SIGTERM drains the standalone server (health 503,
// no new connections, clients told to reconnect, exit 0 within 30 s), and a restart on
// the same data directory has every message that was acked before, exactly once.
// Run: node --test --test-concurrency=1 restart.test.mjs
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, channelId } from './harness.mjs';
import {
  waitFor, connect, connectError, ack, closeAll, newUser, history, UUID_V7,
  stopServer, randomUUID, sleep,
} from './clients.mjs';

const PASSWORD = 'correct horse battery'; // harness.register's default

async function login(url, username) {
  const r = await fetch(`${url}/api/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD }),
  });
  const body = await r.json();
  assert.equal(r.status, 200, `login ${username}: ${r.status} ${JSON.stringify(body)}`);
  assert.equal(typeof body.token, 'string');
  return body;
}

/** Sends one message; a rate_limited ack is retried with the same nonce (as a real client would). */
async function sendAcked(socket, chId, text) {
  const nonce = randomUUID();
  for (let attempt = 1; ; attempt += 1) {
    const res = await ack(socket, 'message:send', { channelId: chId, text, nonce });
    if (res && res.error && res.error.code === 'rate_limited' && attempt < 30) {
      await sleep(100 * Math.min(attempt, 10));
      continue;
    }
    assert.ok(res && !res.error, `send ${text}: ${JSON.stringify(res)}`);
    assert.match(res.id, UUID_V7);
    assert.equal(typeof res.ts, 'number');
    return res.id;
  }
}

describe('SIGTERM drain and restart on the same data directory', () => {
  const name = `e2e-restart-${process.pid}`;
  const state = { srv: null, srv2: null, user: null, gen: null, acked: [] };

  after(async () => {
    closeAll();
    await stopServer(state.srv);
    await stopServer(state.srv2);
  });

  it('SIGTERM: /health 503 (or refused) during drain, no new connections, clients told to reconnect, exit 0 within 30 s', { timeout: 60000 }, async () => {
    state.srv = await startServer({ name });
    const { url } = state.srv;
    state.user = await newUser(url, 'restart');
    state.gen = await channelId(url, state.user.token);
    const s = await connect(url, state.user.token, {
      transports: ['websocket'], reconnection: true, reconnectionDelay: 1000, randomizationFactor: 0,
    });
    assert.equal((await ack(s, 'channel:join', { channelId: state.gen })).ok, true);
    for (let i = 0; i < 30; i += 1) state.acked.push(await sendAcked(s, state.gen, `restart ${i}`));
    assert.equal(new Set(state.acked).size, 30);

    let disconnect = null;
    s.on('disconnect', (reason) => {
      disconnect = { reason, active: s.active, at: Date.now() };
      s.io.reconnection(false); // the server is going away; do not retry in the background
    });
    let exit = null;
    state.srv.exited.then((e) => { exit = { ...e, at: Date.now() }; });

    const t0 = Date.now();
    state.srv.proc.kill('SIGTERM');
    await sleep(50);

    // Probe /health until the process is gone: every answer must be 503 or a refused connection.
    // The drain can finish within the 50 ms above, so the loop probes at least once.
    const probes = [];
    const probing = (async () => {
      do {
        try {
          const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
          await r.arrayBuffer();
          probes.push({ t: Date.now() - t0, status: r.status });
        } catch (err) {
          probes.push({ t: Date.now() - t0, status: 'refused', error: String(err.cause?.code || err.message) });
        }
        await sleep(100);
      } while (!exit && Date.now() - t0 < 31000);
    })();
    // A new client is not let in while draining (or the port is already closed).
    const newcomer = await connectError(url, { auth: { token: state.user.token }, transports: ['websocket'] }, 10000);
    assert.ok(newcomer instanceof Error);

    const result = await Promise.race([state.srv.exited, sleep(30000).then(() => null)]);
    await probing;
    assert.ok(result, `the server did not exit within 30 s of SIGTERM; health probes: ${JSON.stringify(probes.slice(-5))}`);
    assert.equal(result.code, 0, `exit code ${result.code}, signal ${result.signal}`);
    const bad = probes.filter((p) => p.status !== 503 && p.status !== 'refused');
    assert.deepEqual(bad, [], `/health answered other than 503 during drain: ${JSON.stringify(probes)}`);

    await waitFor(() => disconnect, 3000, 'the connected client to be disconnected');
    assert.ok(disconnect.at <= exit.at + 100, 'the client noticed the shutdown only after the process exited');
    assert.equal(disconnect.active, true, `the client was not told to reconnect (disconnect reason '${disconnect.reason}')`);
    s.disconnect();
  });

  it('after a restart with the same data directory every acked message is in history exactly once', { timeout: 60000 }, async () => {
    assert.equal(state.acked.length, 30, 'the first test did not get 30 acks');
    if (state.srv && state.srv.proc.exitCode === null && state.srv.proc.signalCode === null) await stopServer(state.srv);
    state.srv2 = await startServer({ name: `${name}-2`, dataDir: state.srv.dataDir });
    const { url } = state.srv2;
    const { token } = await login(url, state.user.name);
    assert.equal(await channelId(url, token), state.gen, 'general has a different id after the restart');

    const h = await history(url, token, state.gen, { limit: 100 });
    for (const id of state.acked) {
      const n = h.filter((m) => m.id === id).length;
      assert.equal(n, 1, `acked id ${id} is in history ${n} times`);
    }
    const mine = h.filter((m) => m.authorId === state.user.user.id);
    assert.equal(mine.length, 30, `history has ${mine.length} messages of the user, expected 30`);
    const texts = new Map(h.map((m) => [m.id, m.text]));
    state.acked.forEach((id, i) => assert.equal(texts.get(id), `restart ${i}`));

    // and the restarted server serves the user normally
    const s = await connect(url, token);
    assert.equal((await ack(s, 'channel:join', { channelId: state.gen })).ok, true);
    await sendAcked(s, state.gen, 'after restart');
  });
});
