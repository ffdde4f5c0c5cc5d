// The client's state (one object, S) and the message shape it accepts from the server.
export const S = {
  token: null,
  user: null, // {id, username}
  channels: [], // [{id, name}] sorted by name: the pages loaded, and every joined channel
  channelsNext: null, // the cursor of the next page of the channel list; null: no more
  joined: new Map(), // channel id -> name: the channels the user opened, joined on connect
  dmNames: new Map(), // DM channel id -> the other user's name (one's own for notes to self)
  current: null, // channel id
  chans: new Map(), // channel id -> ChannelState
  outbox: new Map(), // nonce -> pending/failed local message
  online: new Map(), // userId -> username
  typing: new Map(), // channelId -> Map(userId -> {username, until})
  socket: null,
  replyTo: null, // the message the composer answers
  thread: null, // the open thread: {channelId, parentId, parent, msgs}
  lastTypingSent: 0,
  recoveredTimer: null,
  typingTimer: null,
  noticeTimer: null,
};

export function chanState(id) {
  let c = S.chans.get(id);
  if (!c) {
    // marker: how far the user read (the server's); mentions: unread mentions;
    // divider: the marker when the channel was opened (the "new messages" line);
    // reads: other members' markers (receipts), user id -> {username, messageId}.
    c = { msgs: new Map(), ids: [], nextBefore: null, loaded: false, loading: null, stale: false, unread: 0, joined: false,
      marker: null, mentions: 0, divider: null, reads: new Map() };
    S.chans.set(id, c);
  }
  return c;
}

/** A message as the server sends it, in history pages and `message` events:
 * {id, channelId, authorId, author, text, ts (ms), nonce?, editedAt?, deleted?,
 * reactions? [{emoji, count, me}]}, or a change of the
 * channel's state {…, kind: 'member:join' | 'member:update' | 'member:leave', data};
 * null for anything else, which is not shown. */
export function normalizeMessage(m) {
  if (!m || typeof m !== 'object' || typeof m.id !== 'string' || typeof m.channelId !== 'string' ||
    typeof m.authorId !== 'string' || typeof m.author !== 'string' || typeof m.text !== 'string' ||
    typeof m.ts !== 'number') return null;
  const kind = typeof m.kind === 'string' && m.kind ? m.kind : null;
  if (kind && (!m.data || typeof m.data !== 'object')) return null;
  return {
    id: m.id, channelId: m.channelId, authorId: m.authorId, author: m.author, text: m.text, ts: m.ts,
    nonce: typeof m.nonce === 'string' ? m.nonce : null,
    kind, data: kind ? m.data : null,
    editedAt: typeof m.editedAt === 'number' ? m.editedAt : null,
    replyTo: typeof m.replyTo === 'string' && m.replyTo ? m.replyTo : null,
    mentions: Array.isArray(m.mentions) ? m.mentions.filter((x) => typeof x === 'string') : [],
    deleted: m.deleted === true,
    reactions: Array.isArray(m.reactions)
      ? m.reactions.filter((r) => r && typeof r.emoji === 'string' && typeof r.count === 'number').map((r) => ({ emoji: r.emoji, count: r.count, me: r.me === true }))
      : [],
    el: null,
  };
}

/** A live member:* or channel:* event as a message of its channel, so that it
 * shows in its place among them (history has the same id). */
export function memberChangeMessage(kind, e) {
  if (!e || typeof e.id !== 'string' || typeof e.channelId !== 'string' || typeof e.ts !== 'number') return null;
  return normalizeMessage({ id: e.id, channelId: e.channelId, authorId: String(e.by || ''), author: String(e.byName || ''),
    text: '', ts: e.ts, kind, data: e });
}

/** The messages of a history page ({messages, nextBefore}) that are messages. */
export function pageMessages(res) {
  const list = res && Array.isArray(res.messages) ? res.messages : [];
  return list.map(normalizeMessage).filter(Boolean);
}
