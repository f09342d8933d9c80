// Select text in a message to fill a customer field (OC16). Selecting text inside one
// message (its text, or a value of a form card) shows a small menu next to it: "Set as:
// First name / Last name / Phone / E-mail / Address" for a customer, or "Customer name /
// Search customers" for a visitor not in the CRM yet. Picking one puts the text in that
// field of the details panel, marked as changed and focused: the operator checks it and
// saves. From the keyboard, the message's actions menu has "Set as customer field…", which
// selects the message's text and opens the same menu with the focus on its first item
// (arrow keys, Home, End; Escape closes and returns to the message).

import { fillField, selectionFields } from './crm.js';
import { t } from './strings.js';
import { el, snippet, debounce } from './util.js';

const $ = (id) => document.getElementById(id);

/** Where a selection may start and end: one message's text, or one value of a form card. */
const SOURCES = '.msg-body, .form-card dd';

const menuState = { node: null, text: '', returnFocus: null };

export function initSelection() {
  const messages = $('messages');
  messages.addEventListener('mouseup', (e) => {
    // Not the message's own actions menu (its "Set as customer field…" opens this one).
    if (e.target.closest('.msg-menu, .msg-menu-button')) return;
    setTimeout(fromSelection, 0);
  });
  messages.addEventListener('keyup', (e) => {
    if (e.shiftKey) fromSelection();
  });
  // On touch screens a selection is made and adjusted with handles: no mouseup, so the menu
  // follows the selection once it rests.
  let touch = false;
  messages.addEventListener('pointerdown', (e) => {
    touch = e.pointerType === 'touch' || e.pointerType === 'pen';
  });
  const settled = debounce(() => {
    if (touch) fromSelection(true);
  }, 500);
  document.addEventListener('selectionchange', () => {
    settled();
    if (!menuState.node || menuState.node.contains(document.activeElement)) return;
    if (!currentSelection()) hideSetAs();
  });
  document.addEventListener('mousedown', (e) => {
    if (menuState.node && !menuState.node.contains(e.target)) hideSetAs();
  }, true);
  $('messages-scroll').addEventListener('scroll', () => {
    if (!menuState.node?.contains(document.activeElement)) hideSetAs();
  });
  window.addEventListener('resize', () => hideSetAs());
  window.addEventListener('hashchange', () => hideSetAs());
}

/** The selected text, when it lies inside one message: `{ text, rect }`, else null. */
function currentSelection() {
  const sel = window.getSelection();
  if (!sel || sel.isCollapsed || !sel.rangeCount) return null;
  const range = sel.getRangeAt(0);
  const host = (node) => (node?.nodeType === Node.ELEMENT_NODE ? node : node?.parentElement)?.closest(SOURCES);
  const start = host(range.startContainer);
  if (!start || start !== host(range.endContainer) || !$('messages').contains(start)) return null;
  const text = sel.toString().trim();
  if (!text) return null;
  return { text, rect: range.getBoundingClientRect() };
}

function fromSelection(again = false) {
  const s = currentSelection();
  if (!s) return;
  // The same selection (a click inside it) keeps the menu it has; a changed one moves it.
  if (menuState.node && menuState.text === s.text && !again) return;
  showSetAs(s, { focus: false });
}

/** The actions menu's "Set as customer field…": the whole text of message `li`, by keyboard. */
export function setAsFromMessage(li, returnFocus) {
  const body = li.querySelector('.msg-body');
  if (!body || !body.textContent.trim()) return;
  const range = document.createRange();
  range.selectNodeContents(body);
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
  const s = currentSelection();
  if (!s) return;
  showSetAs(s, { focus: true, returnFocus });
}

/** Whether "Set as" has anything to offer in the open conversation. */
export function canSetAs() {
  return selectionFields().length > 0;
}

function showSetAs({ text, rect }, { focus, returnFocus = null }) {
  const fields = selectionFields();
  hideSetAs();
  if (!fields.length) return;
  menuState.text = text;
  menuState.returnFocus = returnFocus;
  const node = el('div', { id: 'set-as-menu', class: 'set-as-menu', attrs: { role: 'menu', 'aria-label': t('set_as_label') } },
    el('p', { class: 'set-as-title', attrs: { 'aria-hidden': 'true' } },
      el('span', { text: t('set_as') }), ' ',
      el('span', { class: 'set-as-preview', text: `“${snippet(text, 60)}”` })),
    fields.map((f) => el('button', { type: 'button', class: 'set-as-item', attrs: { role: 'menuitem' }, dataset: { field: f.field }, text: f.label })));
  // Clicking keeps the selection where it is.
  node.addEventListener('mousedown', (e) => e.preventDefault());
  node.addEventListener('click', (e) => {
    const item = e.target.closest('[role=menuitem]');
    if (!item) return;
    const value = menuState.text;
    hideSetAs();
    window.getSelection()?.removeAllRanges();
    fillField(item.dataset.field, value);
  });
  node.addEventListener('keydown', onMenuKey);
  document.body.append(node);
  menuState.node = node;
  // Below the selection, or above it when there is no room; inside the window.
  const w = node.offsetWidth;
  const h = node.offsetHeight;
  const left = Math.max(8, Math.min(rect.left, window.innerWidth - w - 8));
  const below = rect.bottom + 6;
  const top = below + h > window.innerHeight - 8 ? Math.max(8, rect.top - h - 6) : below;
  node.style.left = `${Math.round(left)}px`;
  node.style.top = `${Math.round(top)}px`;
  if (focus) node.querySelector('[role=menuitem]').focus();
}

function onMenuKey(e) {
  const items = [...menuState.node.querySelectorAll('[role=menuitem]')];
  const i = items.indexOf(document.activeElement);
  if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
    e.preventDefault();
    const next = i < 0 ? 0 : (i + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
    items[next].focus();
  } else if (e.key === 'Home' || e.key === 'End') {
    e.preventDefault();
    items[e.key === 'Home' ? 0 : items.length - 1].focus();
  } else if (e.key === 'Escape') {
    e.preventDefault();
    e.stopPropagation();
    const back = menuState.returnFocus;
    hideSetAs();
    back?.focus();
  } else if (e.key === 'Tab') {
    hideSetAs();
  }
}

export function hideSetAs() {
  menuState.node?.remove();
  menuState.node = null;
  menuState.returnFocus = null;
}
