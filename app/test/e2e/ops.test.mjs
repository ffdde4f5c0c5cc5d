// Operations under load (scripts/ops/, ENV=local): a rolling deploy of every node, a
// deploy whose build fails its health check and its rollback, scaling 3 -> 4 -> 2, and
// backup / wipe / restore of PostgreSQL; plus the dry-run plan of an AWS deploy from a
// canned stack output. `make test-ops` starts the 3-node cluster first.
//
// "No request failed at the load balancer" is measured by HAProxy's counters (show
// stat: hrsp_5xx, econ, ereq, dreq of the quibly frontend and backend, sampled across
// reloads, see watchLb) and by the clients: no connect error, no error ack but
// unavailable/rate_limited (load.mjs). Figures go to test-output/ops.json.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync, statSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { OUT_DIR, sleep } from './harness.mjs';
import { closeAll, waitFor, connect, ack, newUser, createChannel, randomUUID } from './clients.mjs';
import { underLoad, psql, LB, ROOT, LOCAL, LEASE_MS, health, leaders } from './load.mjs';

const DATABASE_URL = process.env.QUIBLY_TEST_DATABASE_URL;
const run = promisify(execFile);
const TAG = Date.now().toString(36);
const V1 = `ops-${TAG}-a`;
const V2 = `ops-${TAG}-b`;
const BAD = `ops-${TAG}-bad`;

/** Runs a script; resolves {code, out} (stdout and stderr together), never throws. */
function sh(cmd, args, env = {}) {
  return new Promise((done) => {
    execFile('bash', ['-c', `"$0" "$@" 2>&1`, join(ROOT, cmd), ...args], { cwd: ROOT, timeout: 300000, maxBuffer: 16 << 20, env: { ...process.env, ...env } },
      (err, stdout) => done({ code: err ? (err.code ?? 1) : 0, out: stdout }));
  });
}

async function ok(cmd, ...args) {
  const t0 = Date.now();
  const r = await sh(cmd, args);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} failed:\n${r.out}`);
  return { ...r, ms: Date.now() - t0 };
}

const versionOf = (n) => readFileSync(join(LOCAL, 'cluster/run', `server-${n}.version`), 'utf8').trim();

async function lbStates() {
  const { out } = await ok('scripts/cluster.sh', 'lb', 'show stat');
  return Object.fromEntries(out.split('\n').map((l) => l.split(',')).filter((f) => f[0] === 'quibly' && /^server-/.test(f[1])).map((f) => [f[1], f[17]]));
}

// HAProxy's error counters for the sticky frontend and backend, and its pid: a reload
// (scale) starts a new process whose counters start at 0.
const COUNTERS = ['dreq', 'dresp', 'ereq', 'econ', 'eresp', 'wretr', 'wredis', 'hrsp_5xx'];
async function lbCounters() {
  // One connection, both answers: the process's pid, then the stats CSV.
  const { out, code } = await sh('scripts/cluster.sh', ['lb', 'show info;show stat']);
  const pid = (out.match(/^Pid: (\d+)/m) || [])[1];
  const at = out.indexOf('# pxname');
  if (code !== 0 || !pid || at < 0) return null;
  const lines = out.slice(at).split('\n').filter(Boolean);
  const head = lines[0].replace(/^# /, '').split(',');
  const c = {};
  for (const l of lines.slice(1)) {
    const f = l.split(',');
    if (f[0] !== 'quibly' || !['FRONTEND', 'BACKEND'].includes(f[1])) continue;
    for (const k of COUNTERS) c[`${f[1].toLowerCase()}.${k}`] = Number(f[head.indexOf(k)] || 0);
  }
  return { pid, c };
}

/**
 * Samples the counters every 250 ms and keeps the last sample of each HAProxy process;
 * stop() sums, per process, last minus first (0 for a process started by a reload). A
 * request failed on an old process in its last <= 250 ms before a reload would be missed.
 */
function watchLb() {
  const first = new Map(); const last = new Map();
  let live = true; let samples = 0;
  const loop = (async () => {
    for (let i = 0; live; i += 1) {
      const s = await lbCounters().catch(() => null);
      if (s) {
        samples += 1;
        if (!first.has(s.pid)) first.set(s.pid, first.size === 0 ? s.c : Object.fromEntries(COUNTERS.flatMap((k) => [[`frontend.${k}`, 0], [`backend.${k}`, 0]])));
        last.set(s.pid, s.c);
      }
      await sleep(250);
    }
  })();
  return async () => {
    live = false;
    await loop;
    const s = await lbCounters();
    if (s) last.set(s.pid, s.c);
    const sum = {};
    for (const [pid, c] of last) for (const k of Object.keys(c)) sum[k] = (sum[k] || 0) + c[k] - ((first.get(pid) || {})[k] || 0);
    return { haproxyProcesses: last.size, samples, ...sum };
  };
}

/** Runs op under load and adds HAProxy's error counters over it. */
async function withLbWatch(label, op, opts) {
  const stop = watchLb();
  await sleep(300);
  const report = await underLoad(label, op, opts);
  report.lbCounters = await stop();
  return report;
}

function assertNoLbFailures(r) {
  // Errors the balancer answered (5xx), connections it could not make to a node, requests
  // it denied: none. ereq also counts a TCP connection closed before any request, which
  // is what cluster.sh's readiness probe (port_open) does once after each HAProxy reload:
  // at most one per reload. The rest (eresp: a websocket its node closes, ...) is
  // reported; what clients saw is checked on the clients and on the messages.
  for (const k of ['frontend.hrsp_5xx', 'backend.hrsp_5xx', 'backend.econ', 'frontend.dreq']) {
    assert.equal(r.lbCounters[k], 0, `${r.scenario}: HAProxy ${k} went up: ${JSON.stringify(r.lbCounters)}`);
  }
  const reloads = r.lbCounters.haproxyProcesses - 1;
  assert.ok(r.lbCounters['frontend.ereq'] <= reloads, `${r.scenario}: HAProxy frontend.ereq ${r.lbCounters['frontend.ereq']} > ${reloads} reload probes`);
  assert.equal(r.connectErrors, 0, `${r.scenario}: clients got ${r.connectErrors} connect errors`);
}

const reports = [];
const backups = [];
const LOAD = { clients: 50, channels: 5, intervalMs: 500 };

before(async () => {
  assert.ok(DATABASE_URL, 'QUIBLY_TEST_DATABASE_URL is not set (run through `make test-ops`)');
  for (const n of [1, 2, 3]) assert.equal((await health(n)).http, 200, `server-${n} is not healthy (run scripts/cluster.sh up)`);
  // Two releases of this tree, and one whose configuration is broken (below).
  for (const v of [V1, V2]) await ok('scripts/release.sh', 'build', v);
});

after(async () => {
  closeAll();
  // This run's releases, backups and deploy record: nodes still running a release keep
  // their binary until `cluster.sh down` (the Makefile runs it next).
  for (const v of [V1, V2, BAD]) rmSync(join(LOCAL, 'releases', v), { recursive: true, force: true });
  for (const f of backups) rmSync(f, { force: true });
  rmSync(join(LOCAL, 'ops/local'), { recursive: true, force: true });
  writeFileSync(join(OUT_DIR, 'ops.json'), JSON.stringify(reports, null, 2));
});

describe('operations', () => {
  test('AWS deploy and scale dry runs from a canned stack output', async () => {
    const env = { QUIBLY_STACK_OUTPUTS: join(ROOT, 'scripts/ops/testdata/stack-outputs.json'), QUIBLY_DRY_RUN_VERSIONS: '0.1.0 -' };
    const d = await sh('scripts/ops/deploy.sh', ['small', '0.2.0', '--dry-run'], env);
    assert.equal(d.code, 0, d.out);
    const cmds = d.out.split('\n').filter((l) => l.trim().startsWith('$')).map((l) => l.trim().replace(/\\/g, ''));
    const idx = (re, from = 0) => cmds.findIndex((c, i) => i >= from && re.test(c));
    // The rollback target recorded first; then node after node: out, its own version
    // parameter moved, restarted, back (port from the stack outputs); the stack's version
    // moves only after the last node.
    let at = idx(/ssm put-parameter --name \/quibly-small\/app-version-previous .*--value 0\.1\.0/);
    assert.ok(at >= 0, d.out);
    assert.equal(idx(/--name \/quibly-small\/app-version --/), idx(/--name \/quibly-small\/app-version --/, at), 'the stack version moved before the nodes');
    for (const [n, id] of [[1, 'i-0aaaaaaaaaaaaaaa1'], [2, 'i-0bbbbbbbbbbbbbbb2']]) {
      for (const re of [`elbv2 deregister-targets .*Id=${id},Port=5080`, `elbv2 wait target-deregistered .*Id=${id},Port=5080`,
        `ssm put-parameter --name /quibly-small/nodes/server-${n}/app-version .*--value 0.2.0`,
        `ssm send-command --instance-ids ${id} .*systemctl restart quibly.service`, `elbv2 register-targets .*Id=${id},Port=5080`]) {
        const i = idx(new RegExp(re), at);
        assert.ok(i >= at, `dry run lacks, in order: ${re}\n${cmds.join('\n')}`);
        at = i + 1;
      }
    }
    for (const re of [/ssm put-parameter --name \/quibly-small\/app-version --.*--value 0\.2\.0/, /pulumi -C \S+\/infra config set --path quibly:app.version 0.2.0 --stack small/]) {
      const i = idx(re, at);
      assert.ok(i >= at, `dry run lacks, after the last node: ${re}\n${cmds.join('\n')}`);
      at = i + 1;
    }
    assert.ok(!/--show-secrets|secretsmanager/.test(d.out), 'a deploy reads no secret');
    const s = await sh('scripts/ops/scale.sh', ['small', '3', '--dry-run'], env);
    assert.equal(s.code, 0, s.out);
    assert.match(s.out, /pulumi -C \S+\/infra config set --path quibly:fleet.instances 3 --stack small/);
    assert.match(s.out, /pulumi -C \S+\/infra up --stack small --yes/);
    const down = await sh('scripts/ops/scale.sh', ['small', '1', '--dry-run'], env);
    assert.match(down.out.replace(/\\/g, ''), /deregister-targets .*i-0bbbbbbbbbbbbbbb2[\s\S]*systemctl stop quibly.service[\s\S]*fleet.instances 1/);
    reports.push({ scenario: 'aws dry run', deployCommands: cmds.length });
  });

  test('rolling deploy of 3 nodes under load from 50 clients: nothing lost, no LB error, one leader', { timeout: 400000 }, async () => {
    let deploy;
    const r = await withLbWatch('rolling-deploy', async () => {
      const downAt = Date.now();
      deploy = await ok('scripts/ops/deploy.sh', 'local', V1);
      return { note: `scripts/ops/deploy.sh local ${V1}`, downAt, upAt: Date.now(), deployMs: deploy.ms };
    }, { ...LOAD, acksMayBeLost: true });
    r.deploySteps = deploy.out.split('\n').filter((l) => /\] server-\d done in/.test(l)).map((l) => l.replace(/.*\] /, ''));
    reports.push(r);
    for (const n of [1, 2, 3]) assert.equal(versionOf(n), V1);
    assert.deepEqual(await lbStates(), { 'server-1': 'UP', 'server-2': 'UP', 'server-3': 'UP' });
    assertNoLbFailures(r);
    await waitFor(async () => (await leaders([1, 2, 3])).length === 1, LEASE_MS + 5000, 'exactly one batch-writer leader');
    r.leaders = await leaders([1, 2, 3]);
    console.log(`rolling deploy: ${r.deployMs} ms, ${r.sendsAcked} acked, ${r.stored} stored, LB ${JSON.stringify(r.lbCounters)}`);
  });

  test('a deploy whose build fails its health check stops at the first node; rollback restores it', { timeout: 300000 }, async () => {
    // The same code with a broken configuration: its Redis address points at a closed
    // port, so the node exits at start ("Redis does not answer") and never answers
    // /health — a real misconfigured release, as a wrong endpoint in a unit file.
    await ok('scripts/release.sh', 'build', BAD, '--env', 'REDIS_PORT_NO=1');
    const t0 = Date.now();
    const d = await sh('scripts/ops/deploy.sh', ['local', BAD]);
    const failMs = Date.now() - t0;
    assert.notEqual(d.code, 0, d.out);
    assert.match(d.out, /stopped at server-1/);
    assert.match(d.out, /server-2 +untouched, runs [^,]+, in the load balancer/);
    assert.match(d.out, /server-3 +untouched/);
    assert.match(d.out, new RegExp(`scripts/ops/rollback.sh local`));
    // The others serve; the failed node is out of the balancer.
    assert.equal((await health(2)).http, 200);
    assert.equal((await health(3)).http, 200);
    assert.equal(versionOf(2), V1);
    assert.equal(versionOf(3), V1);
    const st = await lbStates();
    assert.equal(st['server-1'], 'MAINT');
    assert.equal(st['server-2'], 'UP');
    const u = await newUser(LB, 'afterfail');
    const ch = await createChannel(LB, u.token, `ops-fail-${randomUUID().slice(0, 6)}`);
    for (let i = 0; i < 5; i += 1) {
      const s = await connect(LB, u.token, { transports: ['websocket'] });
      assert.deepEqual(await ack(s, 'channel:join', { channelId: ch.id }), { ok: true });
      assert.ok((await ack(s, 'message:send', { channelId: ch.id, text: `still serving ${i}`, nonce: randomUUID() })).id);
      s.disconnect();
    }
    const rb = await ok('scripts/ops/rollback.sh', 'local');
    for (const n of [1, 2, 3]) {
      assert.equal((await health(n)).http, 200);
      assert.equal(versionOf(n), V1);
    }
    assert.deepEqual(await lbStates(), { 'server-1': 'UP', 'server-2': 'UP', 'server-3': 'UP' });
    reports.push({ scenario: 'failed deploy + rollback', failedAfterMs: failMs, rollbackMs: rb.ms, deployOutput: d.out.split('\n').slice(-7) });
  });

  test('scale 3 -> 4 -> 2 under load from 50 clients', { timeout: 400000 }, async () => {
    // Deploy V2 first so the scale-up must start the new node on the running version.
    await ok('scripts/ops/deploy.sh', 'local', V2);
    const timings = {};
    const r = await withLbWatch('scale-3-4-2', async () => {
      const downAt = Date.now();
      timings.up = (await ok('scripts/ops/scale.sh', 'local', '4')).ms;
      assert.equal((await health(4)).http, 200);
      assert.equal(versionOf(4), V2);
      assert.equal((await lbStates())['server-4'], 'UP');
      await sleep(5000); // load on 4 nodes
      timings.down = (await ok('scripts/ops/scale.sh', 'local', '2')).ms;
      return { note: 'scripts/ops/scale.sh local 4, then 2', downAt, upAt: Date.now(), scaleUpMs: timings.up, scaleDownMs: timings.down };
    }, { ...LOAD, acksMayBeLost: true });
    reports.push(r);
    assert.deepEqual(await lbStates(), { 'server-1': 'UP', 'server-2': 'UP' });
    for (const n of [3, 4]) assert.equal((await health(n)).http, 0, `server-${n} still answers`);
    assertNoLbFailures(r);
    await waitFor(async () => (await leaders([1, 2])).length === 1, LEASE_MS + 5000, 'exactly one batch-writer leader');
    console.log(`scale: up ${timings.up} ms, down ${timings.down} ms, ${r.sendsAcked} acked, LB ${JSON.stringify(r.lbCounters)}`);
  });

  test('backup, wipe, restore: the restored database has every message', { timeout: 200000 }, async () => {
    // Quiet: the batch writer has flushed when the count stops moving.
    let last = -1;
    await waitFor(async () => { const [c] = await psql('SELECT count(*) FROM messages'); const same = c === last; last = c; return same; }, 30000, 'messages settled', 1000);
    const ids = new Set(await psql('SELECT id::text FROM messages'));
    const b = await ok('scripts/ops/backup.sh', 'backup', 'local');
    const file = b.out.trim().split('\n').pop();
    assert.match(file, new RegExp(`/quibly-local-\\d{8}T\\d{6}Z\\.dump$`));
    assert.ok(statSync(file).size > 0);
    backups.push(file, `${file}.counts`);
    // The live database serves the cluster (and, in `make test`, is shared): the wipe
    // and restore happen in a database of their own, restored twice: fresh, and wiped.
    const db = `quibly_ops_restore_${TAG}`;
    const url = DATABASE_URL.replace(/\/[^/?]+(\?|$)/, `/${db}$1`);
    const r1 = await ok('scripts/ops/backup.sh', 'restore', 'local', file, db);
    assert.match(r1.out, /row counts match the backup/);
    const restored = new Set(await psql('SELECT id::text FROM messages', url));
    assert.deepEqual([...ids].filter((id) => !restored.has(id)), [], 'messages missing after restore');
    await psql('TRUNCATE messages, channels, users CASCADE', url);
    assert.equal((await psql('SELECT count(*) FROM messages', url))[0], '0');
    const r2 = await ok('scripts/ops/backup.sh', 'restore', 'local', file, db);
    const again = new Set(await psql('SELECT id::text FROM messages', url));
    assert.deepEqual([...ids].filter((id) => !again.has(id)), [], 'messages missing after wipe + restore');
    assert.ok(again.size >= ids.size);
    await psql(`DROP DATABASE ${db}`);
    reports.push({ scenario: 'backup, wipe, restore', file, bytes: statSync(file).size, messages: ids.size, backupMs: b.ms, restoreMs: r1.ms, restoreAfterWipeMs: r2.ms });
  });
});
