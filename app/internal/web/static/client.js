// Quibly realtime client: a small Socket.IO v5 / Engine.IO v4 client over a plain
// WebSocket (websocket transport only, text packets only, default namespace "/").
//
// Engine.IO packet = one text frame: type digit + payload
//   0 open {sid, upgrades, pingInterval, pingTimeout, maxPayload}, 1 close,
//   2 ping (answer 3 pong), 4 message (carries a Socket.IO packet), 6 noop.
// Socket.IO packet = type digit [+ "/nsp,"] [+ ack id] [+ JSON]
//   0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR.
//
// Connection state recovery (Socket.IO 4.6+): the CONNECT reply carries a private
// id (pid); events carry an offset as their last argument. On reconnect the client
// sends {pid, offset} with its auth; a reply with the same pid means the session
// was recovered and the missed events follow.
'use strict';

(function (global) {
  const EIO_OPEN = '0';
  const EIO_CLOSE = '1';
  const EIO_PING = '2';
  const EIO_PONG = '3';
  const EIO_MESSAGE = '4';
  const EIO_NOOP = '6';

  const SIO = Object.freeze({ CONNECT: 0, DISCONNECT: 1, EVENT: 2, ACK: 3, CONNECT_ERROR: 4, BINARY_EVENT: 5, BINARY_ACK: 6 });

  /** Encodes a Socket.IO packet (without the Engine.IO "4" prefix). */
  function encodePacket(type, data, id, nsp) {
    let s = String(type);
    if (nsp && nsp !== '/') s += nsp + ',';
    if (id !== undefined && id !== null) s += String(id);
    if (data !== undefined) s += JSON.stringify(data);
    return s;
  }

  /** Decodes a Socket.IO packet string; throws on malformed input. */
  function decodePacket(str) {
    if (typeof str !== 'string' || str.length === 0) throw new Error('empty packet');
    const type = str.charCodeAt(0) - 48;
    if (type < 0 || type > 6) throw new Error('unknown packet type ' + str.charAt(0));
    if (type === SIO.BINARY_EVENT || type === SIO.BINARY_ACK) throw new Error('binary packets are not supported');
    let i = 1;
    let nsp = '/';
    if (str.charAt(i) === '/') {
      const start = i;
      while (i < str.length && str.charAt(i) !== ',') i++;
      nsp = str.substring(start, i);
      if (str.charAt(i) === ',') i++;
    }
    let id;
    const idStart = i;
    while (i < str.length) {
      const c = str.charCodeAt(i);
      if (c < 48 || c > 57) break;
      i++;
    }
    if (i > idStart) id = Number(str.substring(idStart, i));
    let data;
    if (i < str.length) data = JSON.parse(str.substring(i));
    if (type === SIO.EVENT && (!Array.isArray(data) || typeof data[0] !== 'string')) throw new Error('invalid event payload');
    if (type === SIO.ACK && !Array.isArray(data)) throw new Error('invalid ack payload');
    return { type, nsp, id, data };
  }

  /** Exponential backoff with jitter: min·2^attempt, capped at max, ±jitter. */
  function backoffDelay(attempt, min, max, jitter, rand) {
    const r = rand === undefined ? Math.random() : rand;
    const base = Math.min(max, min * Math.pow(2, Math.min(attempt, 30)));
    const delay = base * (1 - jitter + 2 * jitter * r);
    return Math.max(min * (1 - jitter), Math.min(max, Math.round(delay)));
  }

  function errorWithCode(code, message) {
    const e = new Error(message || code);
    e.code = code;
    return e;
  }

  /**
   * SocketClient keeps one logical Socket.IO connection alive.
   * Events emitted on the client (subscribe with on()):
   *   state(name)            connecting | connected | reconnecting | offline
   *   connect({recovered, sid, pid})
   *   disconnect(reason)
   *   connect_error(err)     err: {message, data?}; err.auth = true for rejected credentials
   *   event(name, args)      every server event; args include the offset, if any
   * Server events can also be subscribed by name with onEvent(name, fn).
   */
  class SocketClient {
    constructor(opts) {
      this.url = opts.url;
      this.auth = opts.auth || (() => ({}));
      this.minDelay = opts.minDelay ?? 500;
      this.maxDelay = opts.maxDelay ?? 10000;
      this.jitter = opts.jitter ?? 0.5;
      this.connectTimeout = opts.connectTimeout ?? 10000;
      this.WebSocket = opts.WebSocket || global.WebSocket;

      this.state = 'idle';
      this.connected = false;
      this.everConnected = false;
      this.recovered = false;
      this.sid = null;
      this.pid = null;
      this.lastOffset = null;
      this.maxPayload = 1e6;
      this.attempts = 0;
      this.nextRetryAt = 0;

      this._ws = null;
      this._closedByUser = true;
      this._ackId = 0;
      this._acks = new Map(); // id -> {resolve, reject, timer}
      this._listeners = new Map();
      this._eventHandlers = new Map();
      this._pingTimer = null;
      this._connectTimer = null;
      this._retryTimer = null;
      this._holdUntil = 0;
    }

    // --- tiny emitter ---
    on(name, fn) {
      if (!this._listeners.has(name)) this._listeners.set(name, new Set());
      this._listeners.get(name).add(fn);
      return () => this._listeners.get(name).delete(fn);
    }
    _fire(name, ...args) {
      const set = this._listeners.get(name);
      if (!set) return;
      for (const fn of [...set]) {
        try { fn(...args); } catch (e) { console.error('quibly: listener for', name, 'failed', e); }
      }
    }
    onEvent(name, fn) {
      if (!this._eventHandlers.has(name)) this._eventHandlers.set(name, new Set());
      this._eventHandlers.get(name).add(fn);
      return () => this._eventHandlers.get(name).delete(fn);
    }

    _setState(s) {
      if (this.state === s) return;
      this.state = s;
      this._fire('state', s);
    }

    /** Starts connecting (no-op when already started). */
    open() {
      if (!this._closedByUser) return;
      this._closedByUser = false;
      this.attempts = 0;
      this._connect();
    }

    /** Closes for good (logout): no reconnect; forgets the recovery session. */
    close() {
      this._closedByUser = true;
      clearTimeout(this._retryTimer);
      this._retryTimer = null;
      if (this._ws && this.connected) {
        try { this._send(EIO_MESSAGE + encodePacket(SIO.DISCONNECT)); } catch { /* closing anyway */ }
      }
      this._teardown('io client disconnect');
      this.pid = null;
      this.lastOffset = null;
      this.everConnected = false;
      this._setState('offline');
    }

    /** Reconnects at once if waiting for a retry (browser came back online, user asked). */
    reconnectNow() {
      if (this._closedByUser || this.connected || this._ws) return;
      clearTimeout(this._retryTimer);
      this._retryTimer = null;
      this._holdUntil = 0;
      this._connect();
    }

    /**
     * For tests and diagnostics: drops the transport as if the network failed and
     * waits holdMs before reconnecting (the server keeps the session for recovery).
     */
    simulateDrop(holdMs) {
      this._holdUntil = Date.now() + (holdMs || 0);
      if (this._ws) this._onTransportClose('transport close');
    }

    /** Emits an event without an ack. Returns false when not connected (dropped). */
    emit(event, ...args) {
      if (!this.connected) return false;
      return this._sendPacket(encodePacket(SIO.EVENT, [event, ...args]));
    }

    /**
     * Emits an event with an ack; resolves with the ack's first argument.
     * Rejects with code "disconnected" (not connected, or lost before the ack),
     * "timeout", or "too_large" (over the server's maxPayload).
     */
    request(event, data, timeoutMs) {
      return new Promise((resolve, reject) => {
        if (!this.connected) { reject(errorWithCode('disconnected', 'Not connected')); return; }
        const id = this._ackId++;
        const frame = encodePacket(SIO.EVENT, [event, data], id);
        if (frame.length + 1 > this.maxPayload) { reject(errorWithCode('too_large', 'Message is too large')); return; }
        const entry = { resolve, reject, timer: null };
        if (timeoutMs) {
          entry.timer = setTimeout(() => {
            this._acks.delete(id);
            reject(errorWithCode('timeout', 'The server did not answer in time'));
          }, timeoutMs);
        }
        this._acks.set(id, entry);
        if (!this._sendPacket(frame)) {
          this._acks.delete(id);
          clearTimeout(entry.timer);
          reject(errorWithCode('disconnected', 'Not connected'));
        }
      });
    }

    // --- internals ---
    _send(frame) {
      const ws = this._ws;
      if (!ws || ws.readyState !== 1) return false;
      ws.send(frame);
      return true;
    }
    _sendPacket(sio) {
      return this._send(EIO_MESSAGE + sio);
    }

    _connect() {
      this._teardown(null);
      this._setState(this.everConnected || this.attempts > 0 ? 'reconnecting' : 'connecting');
      let ws;
      try {
        ws = new this.WebSocket(this.url);
      } catch (e) {
        this._scheduleReconnect();
        return;
      }
      this._ws = ws;
      ws.onmessage = (ev) => { if (this._ws === ws) this._onFrame(ev.data); };
      ws.onclose = () => { if (this._ws === ws) this._onTransportClose('transport close'); };
      ws.onerror = () => { /* a close event follows */ };
      this._connectTimer = setTimeout(() => {
        if (this._ws === ws && !this.connected) this._onTransportClose('connect timeout');
      }, this.connectTimeout);
    }

    _onFrame(data) {
      if (typeof data !== 'string' || data.length === 0) return; // no binary support
      const type = data.charAt(0);
      switch (type) {
        case EIO_OPEN: {
          let hs;
          try { hs = JSON.parse(data.slice(1)); } catch { this._onTransportClose('parse error'); return; }
          this.pingInterval = hs.pingInterval || 25000;
          this.pingTimeout = hs.pingTimeout || 20000;
          if (hs.maxPayload) this.maxPayload = hs.maxPayload;
          this._resetPingTimer();
          const auth = Object.assign({}, this.auth() || {});
          if (this.pid) {
            auth.pid = this.pid;
            if (this.lastOffset !== null) auth.offset = this.lastOffset;
          }
          this._sendPacket(encodePacket(SIO.CONNECT, auth));
          break;
        }
        case EIO_CLOSE:
          this._onTransportClose('transport close');
          break;
        case EIO_PING:
          this._resetPingTimer();
          this._send(EIO_PONG + data.slice(1));
          break;
        case EIO_PONG:
        case EIO_NOOP:
          break;
        case EIO_MESSAGE: {
          let pkt;
          try { pkt = decodePacket(data.slice(1)); } catch (e) {
            console.warn('quibly: dropping malformed packet', e.message);
            return;
          }
          this._onPacket(pkt);
          break;
        }
        default:
          break;
      }
    }

    _onPacket(pkt) {
      if (pkt.nsp !== '/') return;
      switch (pkt.type) {
        case SIO.CONNECT: {
          const d = pkt.data || {};
          clearTimeout(this._connectTimer);
          const recovered = !!(d.pid && this.pid && d.pid === this.pid);
          this.sid = d.sid || null;
          this.pid = d.pid || null;
          this.recovered = recovered;
          this.connected = true;
          this.everConnected = true;
          this.attempts = 0;
          this._setState('connected');
          this._fire('connect', { recovered, sid: this.sid, pid: this.pid });
          break;
        }
        case SIO.CONNECT_ERROR: {
          const d = pkt.data && typeof pkt.data === 'object' ? pkt.data : { message: String(pkt.data) };
          const code = (d.data && d.data.code) || d.code || '';
          const err = { message: d.message || 'Connection refused', data: d.data, code };
          err.auth = code === 'unauthorized' || /unauthori[sz]ed|invalid token|token expired|jwt/i.test(err.message);
          this._fire('connect_error', err);
          if (err.auth) {
            // Retrying with the same credentials cannot help; the app decides.
            this._teardown('connect error');
            this._closedByUser = true;
            this._setState('offline');
            return;
          }
          this._onTransportClose('connect error');
          break;
        }
        case SIO.DISCONNECT:
          // The server asked us to go (for example, it is draining): reconnect,
          // normally through the load balancer to another node, and recover there.
          this._onTransportClose('io server disconnect');
          break;
        case SIO.EVENT: {
          const [name, ...args] = pkt.data;
          if (this.pid && args.length && typeof args[args.length - 1] === 'string') {
            this.lastOffset = args[args.length - 1];
          }
          if (pkt.id !== undefined) this._sendPacket(encodePacket(SIO.ACK, [], pkt.id));
          this._fire('event', name, args);
          const set = this._eventHandlers.get(name);
          if (set) {
            for (const fn of [...set]) {
              try { fn(...args); } catch (e) { console.error('quibly: handler for', name, 'failed', e); }
            }
          }
          break;
        }
        case SIO.ACK: {
          const entry = this._acks.get(pkt.id);
          if (!entry) return;
          this._acks.delete(pkt.id);
          clearTimeout(entry.timer);
          entry.resolve(pkt.data[0]);
          break;
        }
        default:
          break;
      }
    }

    _resetPingTimer() {
      clearTimeout(this._pingTimer);
      const ws = this._ws;
      this._pingTimer = setTimeout(() => {
        if (this._ws === ws) this._onTransportClose('ping timeout');
      }, (this.pingInterval || 25000) + (this.pingTimeout || 20000));
    }

    /** Drops the transport, fails pending acks; returns whether we were connected. */
    _teardown(reason) {
      clearTimeout(this._pingTimer);
      clearTimeout(this._connectTimer);
      this._pingTimer = this._connectTimer = null;
      const ws = this._ws;
      this._ws = null;
      if (ws) {
        ws.onmessage = ws.onclose = ws.onerror = ws.onopen = null;
        try { ws.close(); } catch { /* already closed */ }
      }
      const was = this.connected;
      this.connected = false;
      if (this._acks.size) {
        const acks = [...this._acks.values()];
        this._acks.clear();
        for (const a of acks) {
          clearTimeout(a.timer);
          a.reject(errorWithCode('disconnected', 'Connection lost before the server answered'));
        }
      }
      if (was && reason) this._fire('disconnect', reason);
      return was;
    }

    _onTransportClose(reason) {
      this._teardown(reason);
      if (this._closedByUser) { this._setState('offline'); return; }
      this._scheduleReconnect();
    }

    _scheduleReconnect() {
      clearTimeout(this._retryTimer);
      let delay = backoffDelay(this.attempts, this.minDelay, this.maxDelay, this.jitter);
      this.attempts++;
      const hold = this._holdUntil - Date.now();
      if (hold > delay) delay = hold;
      this.nextRetryAt = Date.now() + delay;
      const offline = global.navigator && global.navigator.onLine === false;
      this._setState(offline ? 'offline' : 'reconnecting');
      this._retryTimer = setTimeout(() => {
        this._retryTimer = null;
        if (!this._closedByUser) this._connect();
      }, delay);
    }
  }

  global.QuiblyIO = { SocketClient, encodePacket, decodePacket, backoffDelay, SIO };
})(typeof window !== 'undefined' ? window : globalThis);
