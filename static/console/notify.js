// Notifications (OC6, XB15): an in-page toast in an aria-live region, and a browser
// Notification when the operator allowed them. Texts are set as text, never as markup.

import { el, icon } from './util.js';
import { t } from './strings.js';

const TOAST_MS = 8000;
const MAX_TOASTS = 4;

let region = null;
let openConversation = () => {};

/** `toasts`: the live region; `open(id)`: what clicking a toast does. */
export function initNotify(toasts, open) {
  region = toasts;
  openConversation = open;
}

/**
 * Shows a toast. `title` and `body` are text (a sender and what they wrote); `id` a
 * conversation the toast opens when clicked; `tone` `info` | `error`.
 */
export function toast({ title = '', body = '', id = null, tone = 'info' }) {
  if (!region) return null;
  const close = el('button', { type: 'button', class: 'toast-close', attrs: { 'aria-label': t('dismiss') } }, icon('cross'));
  const content = el('div', { class: 'toast-content' },
    title ? el('strong', { class: 'toast-title', text: title }) : null,
    body ? el('p', { class: 'toast-body', text: body }) : null);
  const node = el('div', { class: `toast toast-${tone}`, dataset: id ? { conversationId: String(id) } : {} }, content, close);
  if (tone === 'error') node.setAttribute('role', 'alert');
  const remove = () => node.remove();
  close.addEventListener('click', (e) => {
    e.stopPropagation();
    remove();
  });
  if (id !== null) {
    content.classList.add('toast-link');
    content.tabIndex = 0;
    content.setAttribute('role', 'link');
    const go = () => {
      remove();
      openConversation(id);
    };
    content.addEventListener('click', go);
    content.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        go();
      }
    });
  }
  region.append(node);
  while (region.children.length > MAX_TOASTS) region.firstElementChild.remove();
  setTimeout(remove, tone === 'error' ? TOAST_MS * 1.5 : TOAST_MS);
  return node;
}

/** An error toast with the server's message. */
export function errorToast(message) {
  return toast({ title: t('error_prefix', { message }), tone: 'error' });
}

export function notificationsSupported() {
  return typeof Notification !== 'undefined';
}

export function notificationPermission() {
  return notificationsSupported() ? Notification.permission : 'unsupported';
}

export async function askNotificationPermission() {
  if (!notificationsSupported()) return 'unsupported';
  try {
    return await Notification.requestPermission();
  } catch {
    return Notification.permission;
  }
}

/** A toast, plus a browser notification when they are allowed. */
export function notify({ title, body, id }) {
  toast({ title, body, id });
  if (notificationPermission() !== 'granted') return;
  try {
    const n = new Notification(title, { body, tag: id ? `charla-${id}` : undefined });
    n.onclick = () => {
      window.focus();
      if (id !== null && id !== undefined) openConversation(id);
      n.close();
    };
  } catch {
    // Some browsers only allow notifications from a service worker: the toast is enough.
  }
}
