// The notice bar.
import { NOTICE_MS } from './constants.js';
import { $ } from './helpers.js';
import { S } from './state.js';

export function showNotice(text) {
  clearTimeout(S.noticeTimer);
  $('notice-text').textContent = text;
  $('notice').hidden = false;
  S.noticeTimer = setTimeout(hideNotice, NOTICE_MS);
}

export function hideNotice() {
  clearTimeout(S.noticeTimer);
  $('notice').hidden = true;
}
