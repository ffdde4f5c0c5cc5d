// The client's state (one object, S) and the message shape it accepts from the server.
export const S = {
  token: null,
  user: null, // {id, username}
  channels: [], // [{id, name}] sorted by name: the pages loaded, and every joined channel
  channelsNext: null, // the cursor of the next page of the channel list; null: no more
  joined: new Map(), // channel id -> name: the channels the user opened, joined on connect
  current: null, // channel id
  chans: new Map(), // channel id -> ChannelState
  outbox: new Map(), // nonce -> pending/failed local message
  online: new Map(), // userId -> username
  typing: new Map(), // channelId -> Map(userId -> {username, until})
  socket: null,
  lastTypingSent: 0,
  recoveredTimer: null,
  typingTimer: null,
  noticeTimer: null,
};

export function chanState(id) {
  let c = S.chans.get(id);
  if (!c) {
    c = { msgs: new Map(), ids: [], nextBefore: null, loaded: false, loading: null, stale: false, unread: 0, joined: false };
    S.chans.set(id, c);
  }
  return c;
}

/** A message as the server sends it, in history pages and `message` events:
 * {id, channelId, authorId, author, text, ts (ms), nonce?}; null for anything else,
 * which is not shown. */
export function normalizeMessage(m) {
  if (!m || typeof m !== 'object' || typeof m.id !== 'string' || typeof m.channelId !== 'string' ||
    typeof m.authorId !== 'string' || typeof m.author !== 'string' || typeof m.text !== 'string' ||
    typeof m.ts !== 'number') return null;
  return {
    id: m.id, channelId: m.channelId, authorId: m.authorId, author: m.author, text: m.text, ts: m.ts,
    nonce: typeof m.nonce === 'string' ? m.nonce : null,
    el: null,
  };
}

/** The messages of a history page ({messages, nextBefore}) that are messages. */
export function pageMessages(res) {
  const list = res && Array.isArray(res.messages) ? res.messages : [];
  return list.map(normalizeMessage).filter(Boolean);
}
