// Test harness: starts a real Quibly binary on a free port with a fresh data directory.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, createWriteStream, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.QUIBLY_BIN || resolve(here, '../../bin/quibly');
export const OUT_DIR = process.env.TEST_OUTPUT_DIR || resolve(here, '../../../test-output');
mkdirSync(OUT_DIR, { recursive: true });

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Data directories made here are removed when the test process exits.
const madeDirs = [];
process.on('exit', () => { for (const d of madeDirs) rmSync(d, { recursive: true, force: true }); });
function tempDataDir() {
  const d = mkdtempSync(join(tmpdir(), 'quibly-test-'));
  madeDirs.push(d);
  return d;
}

/**
 * Starts a server. Options: env (extra variables), dataDir (reuse one to test restarts),
 * name (log file name under OUT_DIR). Returns {url, port, dataDir, proc, stop(signal)}.
 */
export async function startServer(opts = {}) {
  const port = opts.port || (await freePort());
  const dataDir = opts.dataDir || tempDataDir();
  const name = opts.name || `server-${port}`;
  const log = createWriteStream(join(OUT_DIR, `${name}.log`), { flags: 'a' });
  const proc = spawn(BIN, [], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PORT: String(port),
      DATA_DIR: dataDir,
      SERVER_ID: name,
      // Every test client comes from 127.0.0.1: the per-address limits are opened up
      // (a test of a limit sets its own).
      AUTH_RATE: '100000', AUTH_BURST: '100000', AUTH_USER_RATE: '100000', AUTH_USER_BURST: '100000',
      MAX_CONNECTIONS_PER_IP: '100000', MAX_CONNECTIONS_PER_USER: '100000',
      CHANNELS_PER_USER_HOUR: '100000', CHANNELS_PER_NODE_MINUTE: '100000',
      ...(opts.env || {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout.pipe(log);
  proc.stderr.pipe(log);
  const exited = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`server exited early (code ${proc.exitCode}); see ${name}.log`);
    try {
      const r = await fetch(`${url}/health`);
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`server did not become healthy; see ${name}.log`); }
    await sleep(50);
  }
  return {
    url, port, dataDir, proc, exited,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** Registers a fresh user and returns {token, user}. */
export async function register(url, username, password = 'correct horse battery') {
  const r = await fetch(`${url}/api/auth/register`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const body = await r.json();
  if (r.status !== 200 && r.status !== 201) throw new Error(`register ${username}: ${r.status} ${JSON.stringify(body)}`);
  return body;
}

let counter = 0;
/** A username unique within this test run. */
export function uniqueName(prefix = 'user') {
  counter += 1;
  return `${prefix}${process.pid % 10000}x${counter}`;
}

/** Looks up the id of the channel named name, paging through the channel list. */
export async function channelId(url, token, name = 'general') {
  let after = '';
  for (;;) {
    const r = await fetch(`${url}/api/channels?limit=200&after=${encodeURIComponent(after)}`, { headers: { authorization: `Bearer ${token}` } });
    const body = await r.json();
    if (r.status !== 200) throw new Error(`GET /api/channels: ${r.status} ${JSON.stringify(body)}`);
    const ch = body.channels.find((c) => c.name === name);
    if (ch) return ch.id;
    if (!body.nextAfter) throw new Error(`no channel ${name} in the channel list`);
    after = body.nextAfter;
  }
}
