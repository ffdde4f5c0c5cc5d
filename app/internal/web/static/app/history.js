// Message history over REST, and older pages.
import { api } from './api.js';
import { HISTORY_PAGE } from './constants.js';
import { $, describeError } from './helpers.js';
import { addMessage, isNearBottom, renderEmptyState, renderMessages, renderOlderButton, scrollToBottom } from './messages.js';
import { markRead, renderSeen } from './reads.js';
import { showNotice } from './notice.js';
import { S, chanState, pageMessages } from './state.js';

/** Loads the newest page; merges it, or replaces the cache when there is a gap. */
export function loadLatest(id) {
  const st = chanState(id);
  if (st.loading) return st.loading;
  st.loading = (async () => {
    try {
      const res = await api('GET', `/api/channels/${encodeURIComponent(id)}/messages?limit=${HISTORY_PAGE}`);
      const page = pageMessages(res);
      const nextBefore = (res && res.nextBefore) ?? null;
      const newestKnown = st.ids.length ? st.ids[st.ids.length - 1] : null;
      const oldestInPage = page.length ? page.reduce((a, m) => (m.id < a ? m.id : a), page[0].id) : null;
      const gap = st.loaded && newestKnown && nextBefore && oldestInPage && oldestInPage > newestKnown;
      if (!st.loaded || gap) {
        // Keep live messages newer than the page; anything older comes from "load older".
        for (const [mid, m] of st.msgs) {
          if (oldestInPage && mid < oldestInPage) { st.msgs.delete(mid); if (m.el) m.el.remove(); }
        }
        st.ids = [...st.msgs.keys()].sort();
        st.nextBefore = nextBefore;
      }
      st.loaded = true;
      st.stale = false;
      const atBottom = isNearBottom();
      for (const m of page) addMessage(m, { fromHistory: true });
      if (id === S.current) {
        if (st.divider !== null) renderMessages(); // the "new messages" line goes in its place
        renderOlderButton();
        renderEmptyState();
        if (atBottom || !st.ids.length) scrollToBottom();
        markRead();
        renderSeen();
      }
    } catch (e) {
      if (S.token && id === S.current && e.code !== 'unauthorized') showNotice(`Cannot load messages: ${describeError(e)}`);
    } finally {
      st.loading = null;
    }
  })();
  return st.loading;
}

export async function loadOlder() {
  const id = S.current;
  const st = chanState(id);
  if (!st.nextBefore || st.loadingOlder) return;
  st.loadingOlder = true;
  const btn = $('load-older');
  btn.disabled = true;
  btn.textContent = 'Loading…';
  try {
    const res = await api('GET', `/api/channels/${encodeURIComponent(id)}/messages?before=${encodeURIComponent(st.nextBefore)}&limit=${HISTORY_PAGE}`);
    const page = pageMessages(res);
    st.nextBefore = (res && res.nextBefore) ?? null;
    if (!page.length) st.nextBefore = null;
    const scroller = $('scroller');
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    for (const m of page) addMessage(m, { fromHistory: true });
    if (id === S.current) scroller.scrollTop = scroller.scrollHeight - fromBottom;
  } catch (e) {
    if (S.token) showNotice(`Cannot load older messages: ${describeError(e)}`);
  } finally {
    st.loadingOlder = false;
    btn.disabled = false;
    btn.textContent = 'Load older messages';
    if (id === S.current) renderOlderButton();
  }
}
