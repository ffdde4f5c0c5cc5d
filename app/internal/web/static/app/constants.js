// Settings of the client and the Socket.IO client class (client.js).
export const { SocketClient } = window.QuiblyIO;

export const HISTORY_PAGE = 50;
export const SEND_TIMEOUT_MS = 15000;
export const JOIN_TIMEOUT_MS = 10000;
export const TYPING_SEND_EVERY_MS = 2000;
export const TYPING_SHOW_MS = 3000;
export const RECOVERED_BADGE_MS = 4000;
export const NOTICE_MS = 7000;
export const LS_TOKEN = 'quibly.token';
export const LS_USER = 'quibly.user';
export const LS_CHANNEL = 'quibly.channel';
// The channels a user opened, joined on every connect (not every channel there is);
// the key is followed by the user's id.
export const LS_JOINED = 'quibly.joined';
export const MAX_JOINED = 200; // the server's limit per connection
export const CHANNEL_PAGE = 100;
