// The JSON HTTP API.
import { hooks } from './hooks.js';
import { $ } from './helpers.js';
import { S } from './state.js';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (S.token) headers.authorization = `Bearer ${S.token}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'network', 'Cannot reach the server');
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    const code = e.code || (res.status === 401 ? 'unauthorized' : res.status === 429 ? 'rate_limited' : res.status >= 500 ? 'unavailable' : 'invalid');
    const err = new ApiError(res.status, code, e.message || `${res.status} ${res.statusText}`);
    if (res.status === 401 && S.token && !path.startsWith('/api/auth/')) {
      hooks.logout('Your session has expired. Please log in again.');
    }
    throw err;
  }
  return data;
}
