// DOM, id, time and text helpers.
export const $ = (id) => document.getElementById(id);

/** Creates an element. props: className, text, dataset, attrs, on (events). */
export function h(tag, props, ...children) {
  const e = document.createElement(tag);
  if (props) {
    if (props.className) e.className = props.className;
    if (props.text !== undefined) e.textContent = props.text;
    if (props.dataset) for (const [k, v] of Object.entries(props.dataset)) e.dataset[k] = v;
    if (props.attrs) for (const [k, v] of Object.entries(props.attrs)) e.setAttribute(k, v);
    if (props.on) for (const [k, v] of Object.entries(props.on)) e.addEventListener(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

export function uuid() {
  if (window.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // crypto.randomUUID needs a secure context; getRandomValues does not.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

export function hueOf(name) {
  let n = 0;
  for (const ch of String(name)) n = (n * 31 + ch.codePointAt(0)) >>> 0;
  return n % 360;
}

export function avatar(name, extraClass) {
  const initial = [...String(name || '?').trim()][0] || '?';
  const a = h('span', { className: 'avatar' + (extraClass ? ' ' + extraClass : ''), text: initial.toUpperCase(), attrs: { 'aria-hidden': 'true' } });
  a.style.setProperty('--hue', String(hueOf(name)));
  return a;
}

export function toDate(ts) {
  if (ts === undefined || ts === null || ts === '') return new Date();
  if (typeof ts === 'number') return new Date(ts < 1e12 ? ts * 1000 : ts);
  const n = Number(ts);
  if (Number.isFinite(n)) return new Date(n < 1e12 ? n * 1000 : n);
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? new Date() : d;
}

export const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
export const dateTimeFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
export const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

export function shortTime(d) {
  const now = new Date();
  return d.toDateString() === now.toDateString() ? timeFmt.format(d) : dateTimeFmt.format(d);
}

export const ERROR_TEXT = {
  rate_limited: 'You are sending messages too fast. Wait a moment and try again.',
  too_large: 'That message is too long.',
  forbidden: 'You are not allowed to do that here.',
  not_found: 'That channel does not exist any more.',
  invalid: 'That was not accepted.',
  unavailable: 'The server cannot take messages right now. Try again shortly.',
  unauthorized: 'Your session has expired. Please log in again.',
  timeout: 'The server did not answer in time.',
  disconnected: 'Connection lost.',
  network: 'Cannot reach the server.',
};

export const SHORT_ERROR = {
  rate_limited: 'sending too fast',
  too_large: 'message too long',
  forbidden: 'not allowed in this channel',
  not_found: 'channel not found',
  unavailable: 'server busy',
  timeout: 'no answer from the server',
  unauthorized: 'session expired',
};

/** A readable sentence for an error object {code, message}. */
export function describeError(err) {
  if (!err) return 'Something went wrong.';
  const code = err.code || '';
  const base = ERROR_TEXT[code];
  const msg = err.message && err.message !== code ? err.message : '';
  if (base && msg && code !== 'rate_limited' && code !== 'unavailable') return `${base} (${msg})`;
  return base || msg || code || 'Something went wrong.';
}

export const URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]}]/gi;

/** Fills el with text, turning http(s) URLs into links and @names into highlighted
 * spans (me: the user's own name); no HTML parsing. */
export function fillText(el, text, me = '') {
  el.textContent = '';
  const plain = (s) => {
    let at = 0;
    for (const m of s.matchAll(/(^|[^A-Za-z0-9_.@-])@([A-Za-z0-9_.-]{3,32})/g)) {
      const start = m.index + m[1].length;
      if (start > at) el.append(s.slice(at, start));
      const name = m[2].replace(/[.-]+$/, '');
      el.append(h('span', { className: 'mention' + (me && name.toLowerCase() === me.toLowerCase() ? ' me' : ''), text: `@${name}` }));
      at = start + 1 + name.length;
    }
    if (at < s.length) el.append(s.slice(at));
  };
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    let href;
    try {
      const u = new URL(m[0]);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') continue;
      href = u.href;
    } catch { continue; }
    if (m.index > last) plain(text.slice(last, m.index));
    el.append(h('a', { text: m[0], attrs: { href, target: '_blank', rel: 'noopener noreferrer nofollow' } }));
    last = m.index + m[0].length;
  }
  if (last < text.length) plain(text.slice(last));
}
