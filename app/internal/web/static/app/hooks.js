// The few functions a module needs from a module above it (one that imports it, or
// imports what imports it), set once by app.js at start. Calling them through here
// keeps the imports one-way: no module imports another that imports it back.
export const hooks = {
  logout: null, // auth.js: sign out, with a reason (api.js on 401, connection.js on session:end)
  renderChannels: null, // chat.js: redraw the channel and DM lists (badges)
  forgetChannel: null, // chat.js: drop a channel the user lost
  openDM: null, // chat.js: open the DM with a user
  joinChannel: null, // chat.js
  loadChannels: null, // chat.js
  onChannelUpdate: null, // chat.js
  channelsToJoin: null, // chat.js
  rerender: null, // messages.js: draw a changed message again
  retry: null, // sending.js: send a failed message again
  discard: null, // sending.js: drop a failed message
};
