// End-to-end test of the embedded web client in headless Chromium (playwright-core):
// two people in two browser contexts (a 1280x800 laptop and a 375x740 phone) register,
// chat in #general, see each other online and typing, survive a dropped connection
// (state recovery) and a server restart; screenshots go to OUT_DIR.
// Run: node --test browser.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, uniqueName, OUT_DIR, sleep, register, channelId } from './harness.mjs';
import { connect, ack, closeAll, createChannel, randomUUID } from './clients.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const LAUNCH = {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
};
const LAPTOP = { viewport: { width: 1280, height: 800 } };
const PHONE = { viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
const PASSWORD = 'correct horse battery';
// A fixed signing key, so that tokens stay valid across the restart below.
const ENV = { JWT_SECRET: 'browser-test-secret-0123456789abcdef0123456789' };

const ctx = { srv: null, browser: null, people: [], errors: [] };

// ------------------------------------------------------------------ helpers

/** Fails when the page never shows what we wait for; the message names it. */
async function until(page, fn, arg, label, timeout = 10000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (e) {
    throw new Error(`${label}: not seen within ${timeout} ms (${e.message.split('\n')[0]})`);
  }
}

async function shot(page, name) {
  const path = join(OUT_DIR, name);
  await page.screenshot({ path });
  return path;
}

const connState = (page) => page.locator('#conn-state').textContent();

async function waitConnState(page, states, timeout = 15000) {
  const want = Array.isArray(states) ? states : [states];
  await until(page, (w) => w.includes(document.querySelector('#conn-state')?.textContent), want,
    `#conn-state in ${want.join('|')} (is "${await connState(page).catch(() => '?')}")`, timeout);
}

/** Opens a browser context for a new person and registers them through the form. */
async function person(prefix, device) {
  const context = await ctx.browser.newContext(device);
  const page = await context.newPage();
  const name = uniqueName(prefix);
  page.on('pageerror', (e) => ctx.errors.push(`${name}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(m.text())) ctx.errors.push(`${name} console: ${m.text()}`); });
  await page.goto(ctx.srv.url + '/');
  await page.locator('#username').fill(name);
  await page.locator('#password').fill(PASSWORD);
  await page.locator('#register-btn').click();
  await waitConnState(page, 'connected');
  const p = { name, context, page, device };
  ctx.people.push(p);
  return p;
}

const isPhone = (p) => p.device === PHONE;

/** Opens the sidebar on a phone (it is collapsed there); no-op on a laptop. */
async function showSidebar(p) {
  if (await p.page.locator('#sidebar-toggle').isVisible()) {
    await p.page.locator('#sidebar-toggle').click();
    await p.page.locator('#channel-list').waitFor({ state: 'visible' });
  }
}

async function openChannel(p, name) {
  await showSidebar(p);
  await p.page.locator(`#channel-list [data-channel-name="${name}"] button`).click();
  await until(p.page, (n) => document.querySelector('#channel-name')?.textContent === n, name, `channel ${name} open`);
}

async function sendText(p, text) {
  await p.page.locator('#message-input').fill(text);
  await p.page.locator('#send-btn').click();
}

/** Waits until a confirmed (acked, has an id) message with this text is in #messages. */
async function waitMessage(p, text, timeout = 10000) {
  await until(p.page, (t) => [...document.querySelectorAll('#messages .message')]
    .some((m) => m.dataset.id && m.querySelector('.text')?.textContent === t), text,
  `${p.name} sees message "${text.slice(0, 40)}"`, timeout);
}

/** [{id, author, text}] of #messages, in document order. */
function messages(p) {
  return p.page.$$eval('#messages .message', (els) => els.map((m) => ({
    id: m.dataset.id,
    author: m.querySelector('.author')?.textContent,
    text: m.querySelector('.text')?.textContent,
    status: m.dataset.status || 'sent',
  })));
}

function assertOrdered(list, label) {
  const ids = list.filter((m) => m.id).map((m) => m.id);
  assert.deepEqual(ids, [...ids].sort(), `${label}: messages not in id order`);
  assert.equal(new Set(ids).size, ids.length, `${label}: duplicate message ids`);
}

async function onlineNames(p) {
  return p.page.$$eval('#online-users [data-username]', (els) => els.map((e) => e.dataset.username));
}

async function waitFile(path, ms) {
  const deadline = Date.now() + ms;
  while (!existsSync(path)) {
    if (Date.now() > deadline) return false;
    await sleep(1000);
  }
  return true;
}

// -------------------------------------------------------------------- setup

before(async () => {
  assert.ok(await waitFile(CHROMIUM, 5 * 60 * 1000), `${CHROMIUM} is missing (apt-get install chromium)`);
  ctx.srv = await startServer({ name: `browser-${process.pid}`, env: ENV });
  ctx.browser = await chromium.launch(LAUNCH);
});

after(async () => {
  closeAll();
  for (const p of ctx.people) await p.context.close().catch(() => {});
  if (ctx.browser) await ctx.browser.close().catch(() => {});
  if (ctx.srv) await ctx.srv.stop();
});

// -------------------------------------------------------------------- tests

test('the web client is served at / with its assets', async () => {
  const r = await fetch(ctx.srv.url + '/');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/html/);
  assert.equal(r.headers.get('cache-control'), 'no-cache');
  const html = await r.text();
  assert.match(html, /id="messages"/);
  for (const [asset, type] of [['/app.js', /javascript/], ['/client.js', /javascript/], ['/style.css', /^text\/css/]]) {
    const a = await fetch(ctx.srv.url + asset);
    assert.equal(a.status, 200, asset);
    assert.match(a.headers.get('content-type'), type, asset);
  }
});

test('a wrong password is refused on the sign-in form', async () => {
  const context = await ctx.browser.newContext(LAPTOP);
  try {
    const page = await context.newPage();
    await page.goto(ctx.srv.url + '/');
    await page.locator('#username').fill(uniqueName('nobody'));
    await page.locator('#password').fill('not the password');
    await page.locator('#login-btn').click();
    await page.locator('#auth-error').waitFor({ state: 'visible' });
    assert.ok((await page.locator('#auth-error').textContent()).length > 0);
    assert.equal(await page.locator('#chat-view').isVisible(), false);
    await shot(page, 'browser-login.png');
  } finally {
    await context.close();
  }
});

test('a link with a malformed channel hash still starts the client, in #general', async () => {
  const context = await ctx.browser.newContext(LAPTOP);
  const errors = [];
  try {
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(ctx.srv.url + '/#%E0%A4%A');
    await page.locator('#username').fill(uniqueName('hash'));
    await page.locator('#password').fill(PASSWORD);
    await page.locator('#register-btn').click();
    await waitConnState(page, 'connected');
    await until(page, () => document.querySelector('#channel-name')?.textContent === 'general', null, 'general open');
    assert.deepEqual(errors, [], 'page errors');
  } finally {
    await context.close();
  }
});

test('two people chat in #general: messages, order, presence, typing', { timeout: 120000 }, async () => {
  const alice = await person('alice', LAPTOP);
  const bob = await person('bob', PHONE);

  // #general is open by default on both; the phone has the sidebar collapsed.
  for (const p of [alice, bob]) {
    await until(p.page, () => document.querySelector('#channel-name')?.textContent === 'general', null, `${p.name} in #general`);
    assert.equal(await connState(p.page), 'connected');
  }
  assert.equal(await bob.page.locator('#sidebar').isVisible(), false, 'the sidebar is collapsed at 375 px');
  assert.equal(await alice.page.locator('#sidebar').isVisible(), true, 'the sidebar is shown at 1280 px');
  await openChannel(bob, 'general'); // through the menu, which closes again
  await bob.page.locator('#sidebar').waitFor({ state: 'hidden', timeout: 2000 }); // the menu closes after choosing

  // Presence: each sees the other online (the server announces who is online on connect).
  await until(alice.page, (n) => !!document.querySelector(`#online-users [data-username="${n}"]`), bob.name, `${alice.name} sees ${bob.name} online`);
  await until(bob.page, (n) => !!document.querySelector(`#online-users [data-username="${n}"]`), alice.name, `${bob.name} sees ${alice.name} online`);
  assert.ok((await onlineNames(alice)).includes(alice.name), 'one sees oneself online');

  // Messages both ways; user text is shown as text, never as markup.
  const t1 = `hello from ${alice.name} <b>not bold</b> <img src=x onerror="window.__xss=1">`;
  await sendText(alice, t1);
  await waitMessage(bob, t1);
  await waitMessage(alice, t1);
  const t2 = `hi ${alice.name}, ${bob.name} here on a phone`;
  await sendText(bob, t2);
  await waitMessage(alice, t2);
  await waitMessage(bob, t2);
  const t3 = 'a third one\nwith two lines';
  await alice.page.locator('#message-input').fill(t3);
  await alice.page.locator('#message-input').press('Enter'); // Enter sends
  await waitMessage(bob, t3);

  for (const p of [alice, bob]) {
    assert.equal(await p.page.evaluate(() => window.__xss), undefined, 'markup in a message ran');
    assert.equal(await p.page.locator('#messages .message .text b, #messages .message .text img').count(), 0, 'markup in a message was rendered');
    const list = await messages(p);
    assertOrdered(list, p.name);
    assert.equal(list.filter((m) => m.status !== 'sent').length, 0, `${p.name}: messages still pending`);
    const mine = list.filter((m) => [t1, t2, t3].includes(m.text));
    assert.deepEqual(mine.map((m) => m.text), [t1, t2, t3], `${p.name}: the three messages in send order`);
    assert.deepEqual(mine.map((m) => m.author), [alice.name, bob.name, alice.name], `${p.name}: authors`);
  }
  // Both show the same messages with the same ids.
  assert.deepEqual((await messages(alice)).map((m) => m.id), (await messages(bob)).map((m) => m.id));

  // Typing: bob types, alice sees it; it goes away by itself after ~3 s.
  await bob.page.locator('#message-input').pressSequentially('still typ', { delay: 30 });
  await until(alice.page, (n) => document.querySelector('#typing')?.textContent === `${n} is typing…`, bob.name, `${alice.name} sees "${bob.name} is typing…"`, 5000);
  assert.equal(await bob.page.locator('#typing').textContent(), '', 'one does not see oneself typing');
  await shot(alice.page, 'browser-chat.png');
  await shot(bob.page, 'browser-phone.png');
  await until(alice.page, () => document.querySelector('#typing')?.textContent === '', null, 'typing indicator expiry', 6000);
  await bob.page.locator('#message-input').fill('');

  await showSidebar(bob);
  await shot(bob.page, 'browser-phone-menu.png');
  await bob.page.locator('#sidebar-close').click();

  // Nothing wider than the phone's screen.
  const overflow = await bob.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone screen`);
});

test('channels: create, switch, unread counter, history with "load older"', { timeout: 120000 }, async () => {
  const [alice, bob] = ctx.people;
  // A channel with 60 messages, written by a third person over the stock socket.io-client.
  const carol = await register(ctx.srv.url, uniqueName('carol'), PASSWORD);
  const hist = await createChannel(ctx.srv.url, carol.token, uniqueName('history').toLowerCase());
  const s = await connect(ctx.srv.url, carol.token, { transports: ['websocket'] });
  assert.equal((await ack(s, 'channel:join', { channelId: hist.id })).ok, true);
  for (let i = 1; i <= 60; i += 1) {
    const nonce = randomUUID();
    for (let attempt = 1; ; attempt += 1) {
      const res = await ack(s, 'message:send', { channelId: hist.id, text: `history ${i}`, nonce });
      if (res && res.error && res.error.code === 'rate_limited' && attempt < 50) { await sleep(100 * attempt); continue; }
      assert.ok(res && res.id, `seed message ${i}: ${JSON.stringify(res)}`);
      break;
    }
  }
  s.disconnect();

  // Alice creates a channel through the form and lands in it.
  const fresh = uniqueName('room').toLowerCase();
  await alice.page.locator('#new-channel-name').fill(fresh);
  await alice.page.locator('#create-channel-btn').click();
  await until(alice.page, (n) => document.querySelector('#channel-name')?.textContent === n, fresh, 'the new channel open');
  await until(alice.page, () => !document.querySelector('#empty-state')?.hidden, null, 'empty state of a new channel');
  assert.equal(await alice.page.locator('#messages .message').count(), 0);

  // Bob writes in #general while alice is elsewhere: an unread counter appears.
  const t = `while you were away ${Date.now()}`;
  await sendText(bob, t);
  await waitMessage(bob, t);
  await until(alice.page, () => document.querySelector('#channel-list [data-channel-name="general"] .unread')?.textContent === '1',
    null, 'unread counter 1 on #general');
  await openChannel(alice, 'general');
  await waitMessage(alice, t);
  assert.equal(await alice.page.locator('#channel-list [data-channel-name="general"] .unread').count(), 0, 'unread cleared');

  // The seeded channel appears after a reload (the list is fetched at start); 50 + 10 older.
  await alice.page.reload();
  await waitConnState(alice.page, 'connected');
  await openChannel(alice, hist.name);
  await waitMessage(alice, 'history 60');
  await until(alice.page, () => document.querySelectorAll('#messages .message').length === 50, null, 'first page of 50');
  await alice.page.locator('#load-older').click();
  await waitMessage(alice, 'history 1');
  const list = await messages(alice);
  assert.equal(list.length, 60);
  assert.deepEqual(list.map((m) => m.text), Array.from({ length: 60 }, (_, i) => `history ${i + 1}`));
  assertOrdered(list, 'history');
  assert.equal(await alice.page.locator('#load-older').isVisible(), false, 'no more to load');
  await openChannel(alice, 'general');
});

test('a dropped connection is recovered and missed messages arrive', { timeout: 60000 }, async () => {
  const [alice, bob] = ctx.people;
  await alice.page.evaluate(() => window.quibly.socket.simulateDrop(2500));
  await waitConnState(alice.page, 'reconnecting', 3000);
  const missed = `sent while ${alice.name} was away ${Date.now()}`;
  await sendText(bob, missed);
  await waitMessage(bob, missed);
  await until(alice.page, () => document.querySelector('#conn-state')?.dataset.lastConnect === 'recovered', null,
    'the connection is recovered (same pid)', 15000);
  await waitMessage(alice, missed);
  assertOrdered(await messages(alice), 'after recovery');
  await waitConnState(alice.page, 'connected', 10000); // the "recovered" badge settles back
  // And the recovered connection still sends.
  const after = `back again ${Date.now()}`;
  await sendText(alice, after);
  await waitMessage(bob, after);
});

test('a message refused by the server shows as failed with a working retry', { timeout: 60000 }, async () => {
  const [alice, bob] = ctx.people;
  // Flood from the page until the server rate-limits; the refused ones must show failed.
  await alice.page.evaluate(async () => {
    const input = document.getElementById('message-input');
    const form = document.getElementById('composer');
    for (let i = 0; i < 150; i += 1) {
      input.value = `flood ${i}`;
      form.requestSubmit();
    }
  });
  await until(alice.page, () => document.querySelectorAll('#messages .message[data-status="pending"]').length === 0, null, 'all flood acks', 30000);
  const failed = alice.page.locator('#messages .message[data-status="failed"]');
  const nFailed = await failed.count();
  assert.ok(nFailed > 0, 'no flood message was refused (is there a rate limit?)');
  await alice.page.locator('#notice').waitFor({ state: 'visible' });
  assert.match(await alice.page.locator('#notice-text').textContent(), /too fast/i);
  assert.equal(await failed.first().locator('.retry-btn').count(), 1);
  await shot(alice.page, 'browser-failed.png');

  // Retry one (same nonce) after the limit has passed: it is sent and reaches bob.
  await sleep(2500);
  const text = await failed.first().locator('.text').textContent();
  await failed.first().locator('.retry-btn').click();
  await waitMessage(alice, text);
  await waitMessage(bob, text);
  // Discard the rest.
  while (await failed.count()) await failed.first().locator('.discard-btn').click();
  const list = await messages(alice);
  assertOrdered(list, 'after the flood');
  assert.equal(list.filter((m) => m.text === text).length, 1, 'the retried message appears once');
});

test('after a server restart both clients reconnect and chat again', { timeout: 90000 }, async () => {
  const [alice, bob] = ctx.people;
  const before = await messages(alice);
  const { port, dataDir } = ctx.srv;
  await ctx.srv.stop('SIGTERM');
  await waitConnState(alice.page, ['reconnecting', 'offline'], 35000);
  ctx.srv = await startServer({ name: `browser-${process.pid}-2`, env: ENV, port, dataDir });
  for (const p of [alice, bob]) await waitConnState(p.page, ['connected', 'recovered'], 30000);
  // History is reloaded: nothing acked before is lost, nothing doubled.
  await waitMessage(alice, before.filter((m) => m.id).at(-1).text);
  const t = `after the restart ${Date.now()}`;
  await sendText(bob, t);
  await waitMessage(alice, t);
  const list = await messages(alice);
  assertOrdered(list, 'after restart');
  for (const m of before.filter((x) => x.id)) assert.ok(list.some((x) => x.id === m.id), `message ${m.id} lost after restart`);
  await until(alice.page, (n) => !!document.querySelector(`#online-users [data-username="${n}"]`), bob.name, 'presence after restart');
});

test('log out and back in', { timeout: 30000 }, async () => {
  const [alice] = ctx.people;
  await showSidebar(alice);
  const oldToken = await alice.page.evaluate(() => localStorage.getItem('quibly.token'));
  await alice.page.locator('#logout-btn').click();
  await alice.page.locator('#auth-view').waitFor({ state: 'visible' });
  assert.equal(await alice.page.evaluate(() => localStorage.getItem('quibly.token')), null, 'token forgotten');
  // The server revoked it: a copy of it is refused.
  let status;
  for (let i = 0; i < 50 && status !== 401; i++) {
    status = (await fetch(`${ctx.srv.url}/api/channels`, { headers: { authorization: `Bearer ${oldToken}` } })).status;
    if (status !== 401) await sleep(100);
  }
  assert.equal(status, 401, 'the token used before logging out still works');
  await alice.page.locator('#username').fill(alice.name);
  await alice.page.locator('#password').fill(PASSWORD);
  await alice.page.locator('#login-btn').click();
  await waitConnState(alice.page, 'connected');
  await until(alice.page, () => document.querySelectorAll('#messages .message').length > 0, null, 'history after login');
});

test('a long channel list comes in pages, only the channels opened are joined, a logout elsewhere signs the page out', { timeout: 90000 }, async () => {
  const maker = await register(ctx.srv.url, uniqueName('maker'), PASSWORD);
  for (let i = 0; i < 110; i++) await createChannel(ctx.srv.url, maker.token, `zz-page-${String(i).padStart(3, '0')}`);
  const carol = await person('carol', LAPTOP);
  await showSidebar(carol);
  const listed = () => carol.page.evaluate(() => document.querySelectorAll('#channel-list [data-testid="channel"]').length);
  assert.ok(await listed() <= 100, 'the first page holds at most 100 channels');
  await carol.page.locator('[data-testid="more-channels"]').click();
  await until(carol.page, () => !!document.querySelector('#channel-list [data-channel-name="zz-page-109"]'), null, 'the next page listed');
  assert.equal(await carol.page.locator('[data-testid="more-channels"]').count(), 0, 'no more pages');
  // Joined on connect: only what she opened (general), not all 110 others.
  const joined = () => carol.page.evaluate(() => {
    const me = JSON.parse(localStorage.getItem('quibly.user')).id;
    return JSON.parse(localStorage.getItem(`quibly.joined.${me}`) || '[]').map((c) => c.name);
  });
  assert.deepEqual(await joined(), ['general']);
  await openChannel(carol, 'zz-page-109');
  assert.deepEqual((await joined()).sort(), ['general', 'zz-page-109']);
  await shot(carol.page, 'channel-pages.png');
  // Signed out on another device: this page's socket ends and it says why.
  const token = await carol.page.evaluate(() => localStorage.getItem('quibly.token'));
  const out = await fetch(`${ctx.srv.url}/api/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  assert.equal(out.status, 204);
  await carol.page.locator('#auth-view').waitFor({ state: 'visible', timeout: 10000 });
  assert.match(await carol.page.locator('#auth-error').textContent(), /^This account logged out everywhere; sign in again\.$/);
  await shot(carol.page, 'signed-out-elsewhere.png');
});

test('a private channel: listed with a lock for its members only, and gone from a removed member\'s page', { timeout: 60000 }, async () => {
  const [alice, bob] = ctx.people;
  const token = (p) => p.page.evaluate(() => localStorage.getItem('quibly.token'));
  const me = (p) => p.page.evaluate(() => JSON.parse(localStorage.getItem('quibly.user')).id);
  const call = async (p, method, path, body) => fetch(`${ctx.srv.url}${path}`, { method,
    headers: { authorization: `Bearer ${await token(p)}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  const name = `hush-${randomUUID().slice(0, 6)}`;
  const made = await (await call(alice, 'POST', '/api/channels', { name, private: true })).json();
  assert.equal((await call(alice, 'PUT', `/api/channels/${made.channel.id}/members/${await me(bob)}`, { role: 'member' })).status, 201);
  for (const p of [alice, bob]) {
    await p.page.reload();
    await waitConnState(p.page, 'connected');
    await openChannel(p, name);
    assert.equal(await p.page.locator(`#channel-list [data-channel-name="${name}"] .hash.lock`).count(), 1, 'a private channel is marked');
    assert.equal(await p.page.locator('#channel-title .hash.lock').count(), 1, 'the open private channel is marked');
  }
  // The join is in the channel's history, in its place before the first message.
  const systemLine = (p, text) => until(p.page, (t) => [...document.querySelectorAll('#messages .message.system')]
    .some((e) => e.textContent.includes(t)), text, `"${text}" shown to ${p.name}`);
  await systemLine(bob, `${alice.name} added ${bob.name}`);
  await sendText(alice, 'for members only');
  await waitMessage(bob, 'for members only');
  await shot(bob.page, 'private-channel.png');
  // Archived: read only on every member's page, until it is opened again.
  assert.equal((await call(alice, 'PATCH', `/api/channels/${made.channel.id}`, { archived: true })).status, 200);
  await until(bob.page, () => document.querySelector('#message-input').disabled, null, 'the composer read-only when archived');
  await systemLine(bob, `${alice.name} archived the channel`);
  assert.equal((await call(alice, 'PATCH', `/api/channels/${made.channel.id}`, { archived: false })).status, 200);
  await until(bob.page, () => !document.querySelector('#message-input').disabled, null, 'the composer open again');
  assert.equal((await call(alice, 'DELETE', `/api/channels/${made.channel.id}/members/${await me(bob)}`)).status, 204);
  await systemLine(alice, `${alice.name} removed ${bob.name}`);
  await until(bob.page, (n) => !document.querySelector(`#channel-list [data-channel-name="${n}"]`), name, 'the channel gone from the removed member\'s list');
  await until(bob.page, (n) => document.querySelector('#channel-name')?.textContent !== n, name, 'the removed member is moved out of it');
});

test('the channel panel: create a private channel, invite by name, change a role, rename, archive, delete', { timeout: 90000 }, async () => {
  const [alice, bob] = ctx.people;
  const name = `crew-${randomUUID().slice(0, 6)}`;
  await showSidebar(alice);
  await alice.page.locator('#new-channel-name').fill(name);
  await alice.page.locator('#new-channel-private').check();
  await alice.page.locator('#create-channel-btn').click();
  await until(alice.page, (n) => document.querySelector('#channel-name')?.textContent === n, name, 'the new private channel open');
  assert.equal(await alice.page.locator(`#channel-list [data-channel-name="${name}"] .hash.lock`).count(), 1);
  await alice.page.locator('#channel-panel-btn').click();
  await alice.page.locator('#invite-name').fill(bob.name);
  await alice.page.locator('[data-testid="invite-btn"]').click();
  await until(alice.page, (n) => !!document.querySelector(`#member-list [data-username="${n}"]`), bob.name, 'bob in the member list');
  await until(alice.page, (n) => [...document.querySelectorAll('#messages .message.system')].some((e) => e.textContent.includes(`added ${n}`)), bob.name, 'the join line');
  await alice.page.locator(`#member-list [data-username="${bob.name}"] select`).selectOption('admin');
  await until(alice.page, (n) => document.querySelector(`#member-list [data-username="${n}"]`)?.dataset.role === 'admin', bob.name, 'bob made admin');
  // bob's page lists the channel once it loads the list again (a reconnect or reload).
  await bob.page.reload();
  await waitConnState(bob.page, 'connected');
  await showSidebar(bob);
  await bob.page.locator(`#channel-list [data-channel-name="${name}"]`).waitFor();
  // Rename, archive, then delete (confirmed), from the panel.
  await alice.page.locator('#rename-name').fill(`${name}-v2`);
  await alice.page.locator('[data-testid="rename-btn"]').click();
  await until(alice.page, (n) => document.querySelector('#channel-name')?.textContent === n, `${name}-v2`, 'renamed in the header');
  await alice.page.locator('#archive-btn').click();
  await until(alice.page, () => document.querySelector('#message-input').disabled, null, 'archived: read only');
  await shot(alice.page, 'channel-panel.png');
  alice.page.once('dialog', (d) => d.accept());
  await alice.page.locator('#delete-btn').click();
  await until(alice.page, (n) => !document.querySelector(`#channel-list [data-channel-name="${n}"]`), `${name}-v2`, 'deleted from the owner\'s list');
  await until(bob.page, (n) => !document.querySelector(`#channel-list [data-channel-name="${n}"]`), `${name}-v2`, 'deleted from bob\'s list');
  await alice.page.locator('#channel-panel-btn').click(); // close it again
});

test('a direct message from the people list: listed apart under the other person\'s name, on both pages', { timeout: 60000 }, async () => {
  const [alice, bob] = ctx.people;
  await showSidebar(alice);
  await alice.page.locator(`#online-users [data-username="${bob.name}"] [data-testid="dm-btn"]`).click();
  await until(alice.page, (n) => document.querySelector('#channel-name')?.textContent === n, bob.name, 'the DM open under bob\'s name');
  assert.equal(await alice.page.locator('#channel-title .hash').textContent(), '@');
  await sendText(alice, 'just us two');
  await waitMessage(alice, 'just us two');
  // bob finds it in his list of DMs under alice's name after his next list load.
  await bob.page.reload();
  await waitConnState(bob.page, 'connected');
  await showSidebar(bob);
  await until(bob.page, (n) => !!document.querySelector(`#dm-list [data-peer="${n}"]`), alice.name, 'the DM listed under alice\'s name');
  assert.equal(await bob.page.locator(`#channel-list [data-channel-name^="@"]`).count(), 0, 'DMs are not among the channels');
  await bob.page.locator(`#dm-list [data-peer="${alice.name}"] button`).click();
  await waitMessage(bob, 'just us two');
  await shot(bob.page, 'direct-message.png');
});

test("a message's life on two pages: edit with the up arrow, react and toggle, delete with a confirmation; a reload agrees", { timeout: 90000 }, async () => {
  const carol = await person('carol', LAPTOP);
  const dan = await person('dan', LAPTOP);
  for (const p of [carol, dan]) await until(p.page, () => document.querySelector('#channel-name')?.textContent === 'general', null, `${p.name} in #general`);
  const text = `life of ${carol.name}: tpyo`;
  await sendText(carol, text);
  for (const p of [carol, dan]) await waitMessage(p, text);
  const id = (await messages(carol)).find((m) => m.text === text).id;
  const msg = (p) => p.page.locator(`#messages .message[data-id="${id}"]`);

  // Edit: the up arrow in the empty composer opens the user's last message.
  await carol.page.locator('#message-input').press('ArrowUp');
  const editor = msg(carol).locator('[data-testid="edit-input"]');
  await editor.waitFor({ state: 'visible', timeout: 5000 });
  await editor.fill(`life of ${carol.name}: typo`);
  await editor.press('Enter');
  for (const p of [carol, dan]) {
    await until(p.page, ([i, t]) => document.querySelector(`#messages .message[data-id="${i}"] .text`)?.textContent === t,
      [id, `life of ${carol.name}: typo`], `${p.name} sees the edit`);
    await msg(p).locator('[data-testid="edited"]').waitFor({ timeout: 5000 });
  }
  // dan may not edit or delete carol's message in #general (no role there).
  await msg(dan).hover();
  assert.equal(await msg(dan).locator('[data-testid="edit-btn"]').count(), 0, "an edit button on another's message");
  assert.equal(await msg(dan).locator('[data-testid="delete-btn"]').count(), 0, "a delete button on another's message");

  // React from the picker; the other toggles the chip on and off.
  await msg(dan).locator('[data-testid="react-btn"]').click();
  await msg(dan).locator('[data-testid="pick"][data-emoji="👍"]').click();
  const chip = (p) => msg(p).locator('[data-testid="reaction"][data-emoji="👍"]');
  const chipText = (p, want, label) => until(p.page, ([i, w]) => document.querySelector(`#messages .message[data-id="${i}"] [data-testid="reaction"][data-emoji="👍"]`)?.textContent === w,
    [id, want], label);
  await chipText(carol, '👍 1', `${carol.name} sees dan's 👍`);
  await chip(carol).click();
  for (const p of [carol, dan]) await chipText(p, '👍 2', `${p.name} sees two 👍`);
  assert.equal(await chip(carol).getAttribute('aria-pressed'), 'true');
  assert.equal(await chip(dan).getAttribute('aria-pressed'), 'true');
  await chip(dan).click();
  for (const p of [carol, dan]) await chipText(p, '👍 1', `${p.name} sees dan's 👍 taken back`);
  assert.equal(await chip(dan).getAttribute('aria-pressed'), 'false');
  await shot(carol.page, 'message-life.png');

  // A reload of both pages shows the same: the edit and one 👍, carol's.
  for (const p of [carol, dan]) {
    await p.page.reload();
    await waitConnState(p.page, 'connected');
    await chipText(p, '👍 1', `${p.name} after a reload`);
    await msg(p).locator('[data-testid="edited"]').waitFor({ timeout: 5000 });
  }

  // Delete, confirmed in place; both pages, and both after a reload, show the tombstone.
  await msg(carol).hover();
  await msg(carol).locator('[data-testid="delete-btn"]').click();
  await msg(carol).locator('[data-testid="delete-confirm"]').click();
  for (const p of [carol, dan]) {
    await until(p.page, (i) => document.querySelector(`#messages .message[data-id="${i}"]`)?.classList.contains('deleted'), id, `${p.name} sees the delete`);
    await p.page.reload();
    await waitConnState(p.page, 'connected');
    await until(p.page, (i) => document.querySelector(`#messages .message[data-id="${i}"] .text`)?.textContent === 'This message was deleted.', id, `${p.name} sees the tombstone after a reload`);
    assert.equal(await msg(p).locator('[data-testid="reaction"]').count(), 0, 'reactions on a deleted message');
  }
});

test('replies, a thread, mentions with autocomplete, unread badges, the "new messages" line and "seen by" in a DM; a reload agrees', { timeout: 120000 }, async () => {
  const erin = await person('erin', LAPTOP);
  const finn = await person('finn', LAPTOP);
  await until(erin.page, (n) => !!document.querySelector(`#online-users [data-username="${n}"]`), finn.name, 'erin sees finn online');
  await erin.page.locator(`#online-users [data-username="${finn.name}"] [data-testid="dm-btn"]`).click();
  await until(erin.page, (n) => document.querySelector('#channel-name')?.textContent === n, finn.name, 'the DM open');
  await sendText(erin, 'first of all');
  await waitMessage(erin, 'first of all');
  // finn, in #general, gets the DM listed with its unread count after a list load.
  await finn.page.reload();
  await waitConnState(finn.page, 'connected');
  const dmItem = `#dm-list [data-peer="${erin.name}"]`;
  await until(finn.page, (sel) => document.querySelector(`${sel} [data-testid="unread"]`)?.textContent === '1', dmItem, 'finn sees 1 unread in the DM');
  // Autocomplete on erin's side, then a mention of finn.
  await erin.page.locator('#message-input').pressSequentially(`look @${finn.name.slice(0, 3)}`, { delay: 20 });
  await until(erin.page, (n) => !!document.querySelector(`#mention-list [data-name="${n}"]`), finn.name, 'the autocomplete offers finn');
  await erin.page.locator('#message-input').press('Tab');
  assert.equal(await erin.page.locator('#message-input').inputValue(), `look @${finn.name} `);
  await erin.page.locator('#send-btn').click();
  await waitMessage(erin, `look @${finn.name} `.trimEnd());
  assert.equal(await erin.page.locator('#messages .message .text .mention').last().textContent(), `@${finn.name}`);
  await until(finn.page, (sel) => document.querySelector(`${sel} [data-testid="unread"]`)?.textContent === '2', dmItem, 'finn sees 2 unread');
  await until(finn.page, (sel) => !!document.querySelector(`${sel} .mention-badge`), dmItem, 'finn sees the mention badge');

  // finn opens the DM: the "new messages" line before the first unread, the badges
  // go, the mention is marked, and erin sees "seen by finn".
  await finn.page.locator(`${dmItem} button`).click();
  await waitMessage(finn, 'first of all');
  const order = await finn.page.$$eval('#messages > *', (els) => els.map((e) => (e.dataset.testid === 'new-divider' ? 'divider' : e.querySelector('.text')?.textContent)));
  assert.deepEqual(order.slice(-3), ['divider', 'first of all', `look @${finn.name}`]);
  assert.equal(await finn.page.locator('#messages .message.mentions-me').count(), 1);
  await until(finn.page, (sel) => !document.querySelector(`${sel} [data-testid="unread"]`) && !document.querySelector(`${sel} .mention-badge`), dmItem, 'finn\'s badges clear');
  await until(erin.page, (n) => document.querySelector('#messages [data-testid="seen-by"]')?.textContent === `Seen by ${n}`, finn.name, 'erin sees "Seen by finn"');

  // finn replies to the first message; erin sees the quote and opens the thread.
  const first = (await messages(finn)).find((m) => m.text === 'first of all').id;
  await finn.page.locator(`#messages .message[data-id="${first}"]`).hover();
  await finn.page.locator(`#messages .message[data-id="${first}"] [data-testid="reply-btn"]`).click();
  await until(finn.page, () => !document.querySelector('#reply-banner')?.hidden, null, 'the reply banner');
  await sendText(finn, 'an answer to that');
  await waitMessage(erin, 'an answer to that');
  const answer = (await messages(erin)).find((m) => m.text === 'an answer to that').id;
  const quote = erin.page.locator(`#messages .message[data-id="${answer}"] [data-testid="quote"]`);
  assert.match(await quote.textContent(), /first of all/);
  await quote.click();
  await until(erin.page, () => [...document.querySelectorAll('#thread-panel [data-testid="thread-reply"] .text')].some((e) => e.textContent === 'an answer to that'),
    null, 'the thread lists the answer');
  await sendText(finn, 'and one more'); // not a reply: stays out of the thread
  await waitMessage(erin, 'and one more');
  assert.equal(await erin.page.locator('#thread-panel [data-testid="thread-reply"]').count(), 1);
  await shot(erin.page, 'thread-and-seen.png');

  // After a reload finn's DM has nothing unread: the marker is the server's.
  await finn.page.locator('#message-input').fill('');
  await finn.page.reload();
  await waitConnState(finn.page, 'connected');
  await showSidebar(finn);
  await finn.page.locator(dmItem).waitFor();
  assert.equal(await finn.page.locator(`${dmItem} [data-testid="unread"]`).count(), 0, 'unread after a reload');
});

test('no script errors in any page', () => {
  assert.deepEqual(ctx.errors, []);
});
