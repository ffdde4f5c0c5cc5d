// The sidebar on small screens.
import { $ } from './helpers.js';

export function openSidebar() {
  document.body.classList.add('sidebar-open');
  $('sidebar-backdrop').hidden = false;
  $('sidebar-toggle').setAttribute('aria-expanded', 'true');
}

export function closeSidebar() {
  document.body.classList.remove('sidebar-open');
  $('sidebar-backdrop').hidden = true;
  $('sidebar-toggle').setAttribute('aria-expanded', 'false');
}

export function autosize() {
  const t = $('message-input');
  t.style.height = 'auto';
  t.style.height = Math.min(t.scrollHeight, 160) + 'px';
}
