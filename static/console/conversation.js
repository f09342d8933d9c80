// The open conversation (OC12, OC10, OC15, XB5, OC8, OC14): the history with every
// message's author, events as centred lines, notes set apart, quotes above replies, a
// per-message menu (reply, copy), the delivery state of operator messages, the typing
// indicator, read marks, and the ownership buttons in the header.

import { api } from './api.js';
import { sendFrame } from './feed.js';
import {
  state, on, applyHeader, convName, channelOf, isInternal, authorName, mayManage,
} from './model.js';
import { pendingFor, retry, claim } from './outbox.js';
import { composeFor, restoreDraft, leaveComposer, setReplyTo, renderComposer } from './composer.js';
import { renderDetails, loadTrail, reloadEmailsSoon } from './details.js';
import { setAsFromMessage, canSetAs, hideSetAs } from './selection.js';
import { openReassign } from './dialogs.js';
import { toast, errorToast } from './notify.js';
import { t } from './strings.js';
import { el, icon, highlight, timeEl, newClientId, snippet, replaceChildren } from './util.js';

const $ = (id) => document.getElementById(id);

/** Remote typing indicators fade after this long without news. */
const TYPING_TTL_MS = 8000;
/** How close to the bottom (px) counts as "reading the latest". */
const NEAR_BOTTOM_PX = 80;

/** The conversation on screen. */
const view = {
  id: null,
  /** Committed messages by seq, and their list items. */
  messages: new Map(),
  nodes: new Map(),
  /** Outbox items on screen by client_id. */
  pending: new Map(),
  loadToken: 0,
  loaded: false,
  /** The message to bring into view once loaded (a search hit). */
  target: null,
  /** The highest read mark sent, so a mark goes once. */
  readSent: 0,
};

/** Who is typing where: conversation id → Map(key → {name, timer}). */
const typingNow = new Map();

/** The message `seq` of the open conversation, if on screen. */
export function messageOnScreen(seq) {
  return view.messages.get(seq) || null;
}

export function openId() {
  return view.id;
}

export function initConversation() {
  $('act-take').addEventListener('click', () => act('take'));
  $('act-close').addEventListener('click', () => act('close'));
  $('act-reopen').addEventListener('click', () => act('reopen'));
  $('act-reassign').addEventListener('click', () => {
    const c = state.convs.get(view.id);
    if (c) openReassign(c);
  });
  $('conv-back').append(icon('back'));
  $('popup-close').append(icon('cross'));
  $('messages').addEventListener('click', onMessagesClick);
  document.addEventListener('click', (e) => {
    if (!e.target.closest('.msg-menu, .msg-menu-button')) closeMenus();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') closeMenus(true);
  });
  document.addEventListener('visibilitychange', markRead);
  $('messages-scroll').addEventListener('scroll', () => {
    if (nearBottom()) markRead();
  });
  on('changed', ({ id, header, read, delivered }) => {
    if (id !== view.id) return;
    if (header) {
      renderHeader();
      renderDetails(state.convs.get(id));
    }
    if (header || read || delivered) refreshStates();
  });
  on('terms', () => {
    // The search changed: mark its terms in the messages on screen (OC7).
    for (const [seq, node] of view.nodes) {
      const body = node.querySelector('.msg-body');
      if (body) body.replaceChildren(highlight(view.messages.get(seq).body, state.terms));
    }
  });
  on('outbox', ({ item, committed }) => {
    if (item.conversation_id !== view.id) return;
    if (committed) {
      removePending(item.client_id);
      addMessage(committed, { mine: true });
    } else {
      showPending(item);
    }
  });
}

// ---------------------------------------------------------------------------------------
// Opening and loading

/** Shows conversation `id`; `seq` brings that message into view (a search hit). */
export async function openConversation(id, seq = null) {
  if (view.id === id) {
    if (seq) {
      view.target = seq;
      if (view.loaded) revealTarget();
    }
    markRead();
    return;
  }
  leaveComposer();
  view.id = id;
  view.messages.clear();
  view.nodes.clear();
  view.pending.clear();
  view.loaded = false;
  view.target = seq;
  view.readSent = 0;
  $('messages').replaceChildren();
  $('messages').classList.toggle('is-internal', isInternal(state.convs.get(id)));
  $('typing').textContent = '';
  setStatus(t('loading'));
  renderHeader();
  composeFor(id);
  renderDetails(state.convs.get(id));
  for (const item of pendingFor(id)) showPending(item);
  await load(id, 0);
}

/** Loads (or, after a reconnect that could not resume, completes) the open conversation's history. */
async function load(id, afterSeq) {
  const token = ++view.loadToken;
  let data;
  try {
    data = await api.conversation(id, afterSeq);
  } catch (e) {
    if (token === view.loadToken && view.id === id) setStatus(t('load_failed', { message: e.message }));
    return;
  }
  if (token !== view.loadToken || view.id !== id) return;
  const c = applyHeader(data.conversation);
  $('messages').classList.toggle('is-internal', isInternal(c));
  for (const m of data.messages) {
    claim(m);
    addMessage(m, { quiet: true });
  }
  view.loaded = true;
  setStatus('');
  renderHeader();
  renderComposer();
  renderDetails(c);
  if (afterSeq === 0) {
    restoreDraft(id, data.draft);
    loadTrail(id);
  }
  if (view.target) revealTarget();
  else if (afterSeq === 0) scrollToBottom();
  markRead();
}

/** Loads the open conversation again from scratch (its texts were erased, XB6). */
export function reloadOpen() {
  if (view.id === null) return;
  view.messages.clear();
  view.nodes.clear();
  $('messages').replaceChildren();
  for (const item of pendingFor(view.id)) showPending(item);
  load(view.id, 0);
}

/** Leaves the conversation (back to the list or the work area). */
export function closeConversation() {
  leaveComposer();
  view.id = null;
  view.loadToken++;
  view.loaded = false;
  view.messages.clear();
  view.nodes.clear();
  view.pending.clear();
  $('messages').replaceChildren();
}

/** After a reconnect that could not resume: fetch what the open conversation missed. */
export function catchUp() {
  if (view.id === null) return;
  if (!view.loaded) {
    load(view.id, 0);
    return;
  }
  let max = 0;
  for (const seq of view.messages.keys()) max = Math.max(max, seq);
  load(view.id, max);
  loadTrail(view.id);
}

function setStatus(text) {
  const s = $('conv-status');
  s.textContent = text;
  s.hidden = !text;
}

// ---------------------------------------------------------------------------------------
// Live frames

/** A `message` frame: for the list (model) and, when it is the open conversation, the screen. */
export function handleMessage(m) {
  claim(m);
  if (m.conversation_id === view.id) {
    addMessage(m);
    if (m.author?.kind === 'visitor') stopTyping(m.conversation_id, 'visitor');
    if (m.author?.kind === 'operator') stopTyping(m.conversation_id, `op:${m.author.name}`);
    if (m.kind === 'event' && m.body === 'assigned') loadTrail(view.id);
    // An e-mail card answered, a transcript asked for, a close (which offers one): the
    // e-mails section may have news (EC3, CF5).
    if (m.kind === 'event' && ['form', 'offer', 'closed'].includes(m.body)) reloadEmailsSoon(view.id);
    markRead();
  }
}

/** A `typing` frame (XB5). */
export function handleTyping(f) {
  const key = f.from === 'visitor' ? 'visitor' : `op:${f.name || ''}`;
  if (!f.on) {
    stopTyping(f.conversation_id, key);
    return;
  }
  let map = typingNow.get(f.conversation_id);
  if (!map) typingNow.set(f.conversation_id, (map = new Map()));
  clearTimeout(map.get(key)?.timer);
  map.set(key, { name: f.from === 'visitor' ? null : f.name, timer: setTimeout(() => stopTyping(f.conversation_id, key), TYPING_TTL_MS) });
  renderTyping();
}

function stopTyping(id, key) {
  const map = typingNow.get(id);
  if (!map || !map.has(key)) return;
  clearTimeout(map.get(key).timer);
  map.delete(key);
  renderTyping();
}

function renderTyping() {
  const map = typingNow.get(view.id);
  const texts = map ? [...map.values()].map((v) => (v.name === null ? t('visitor_typing') : t('someone_typing', { name: v.name }))) : [];
  $('typing').textContent = texts.join(' ');
}

/** Sends a read mark when I am looking at new messages of the open conversation. */
export function markRead() {
  if (view.id === null || !view.loaded || !conversationVisible()) return;
  const c = state.convs.get(view.id);
  if (!c) return;
  let max = 0;
  for (const seq of view.messages.keys()) max = Math.max(max, seq);
  const mark = isInternal(c) ? c._myRead || 0 : c.operator_read_seq || 0;
  if (max > mark && max > view.readSent && sendFrame({ type: 'read', conversation_id: c.id, seq: max })) view.readSent = max;
}

/** Whether the open conversation is on screen for the operator (tab visible, pane shown). */
export function conversationVisible() {
  return view.id !== null && document.visibilityState === 'visible' && !$('chat').hidden && $('conv-pane').getClientRects().length > 0;
}

// ---------------------------------------------------------------------------------------
// Ownership (OC8, OC14, XB12)

async function act(what) {
  const c = state.convs.get(view.id);
  if (!c) return;
  const id = c.id;
  const button = $(`act-${what}`);
  button.disabled = true;
  try {
    if (what === 'take') await api.take(id, newClientId('take'));
    if (what === 'close') await api.close(id, newClientId('close'));
    if (what === 'reopen') await api.reopen(id, newClientId('reopen'));
  } catch (e) {
    errorToast(e.message);
  } finally {
    button.disabled = false;
  }
}

function renderHeader() {
  const c = state.convs.get(view.id);
  if (!c) {
    $('conv-title').textContent = t('loading');
    $('conv-sub').textContent = '';
    $('conv-owner').textContent = '';
    for (const b of ['act-take', 'act-reassign', 'act-close', 'act-reopen']) $(b).hidden = true;
    return;
  }
  const internal = isInternal(c);
  const ch = channelOf(c);
  $('conv-title').textContent = convName(c);
  replaceChildren($('conv-sub'),
    el('span', { class: `chan-icon chan-${ch.kind}` }, icon(ch.kind)),
    el('span', { text: ch.title }),
    internal ? null : el('span', { class: 'conv-number', text: t('number', { number: c.number ?? c.id }) }),
    internal ? null : el('span', { class: `conv-state state-${c.status}`, text: c.status === 'closed' ? t('status_closed') : t('status_open') }),
    !internal && c.visitor_online ? el('span', { class: 'visitor-presence', text: t('visitor_online') }) : null,
    c.queued ? el('span', { class: 'badge badge-waiting', text: t('waiting') }) : null);
  const owner = $('conv-owner');
  if (internal) owner.textContent = t('members', { names: (c.members || []).map((m) => m.name).join(', ') });
  else owner.textContent = c.assignee ? t('responsible', { name: c.assignee.name }) : t('nobody_responsible');
  const me = state.me;
  $('act-take').hidden = internal || !!c.assignee;
  $('act-reassign').hidden = internal || !(me?.is_admin || (c.assignee && c.assignee.id === me?.id));
  $('act-close').hidden = internal || c.status !== 'open' || !mayManage(c);
  $('act-reopen').hidden = internal || c.status !== 'closed' || !mayManage(c);
  document.title = `${convName(c)} — ${t('app_title')}`;
}

// ---------------------------------------------------------------------------------------
// Messages

function nearBottom() {
  const s = $('messages-scroll');
  return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  const s = $('messages-scroll');
  s.scrollTop = s.scrollHeight;
}

/** Inserts a committed message in seq order; a seq already on screen is never shown twice. */
function addMessage(m, { quiet = false, mine = false } = {}) {
  if (m.conversation_id !== view.id || view.messages.has(m.seq)) return;
  const stick = !quiet && (nearBottom() || mine);
  view.messages.set(m.seq, m);
  const node = renderMessage(m);
  view.nodes.set(m.seq, node);
  const list = $('messages');
  // Walk back from the end, past pending items and later messages.
  let after = list.lastElementChild;
  while (after && (after.dataset.seq === undefined || Number(after.dataset.seq) > m.seq)) after = after.previousElementSibling;
  list.insertBefore(node, after ? after.nextElementSibling : list.firstElementChild);
  if (stick) scrollToBottom();
}

function showPending(item) {
  const old = view.pending.get(item.client_id);
  const node = renderPending(item);
  view.pending.set(item.client_id, node);
  if (old) old.replaceWith(node);
  else {
    $('messages').append(node);
    scrollToBottom();
  }
}

function removePending(clientId) {
  const node = view.pending.get(clientId);
  if (node) node.remove();
  view.pending.delete(clientId);
}

/** The text of an event line (OC12). */
export function eventText(m) {
  const meta = m.meta || {};
  const by = m.author?.kind === 'operator' ? m.author.name || '' : null;
  switch (m.body) {
    case 'opened':
      return t('ev_opened');
    case 'closed':
      if (meta.reason === 'inactivity') return t('ev_closed_inactivity');
      return by ? t('ev_closed_by', { name: by }) : t('ev_closed');
    case 'reopened':
      if (m.author?.kind === 'visitor') return t('ev_reopened_visitor');
      return by ? t('ev_reopened_by', { name: by }) : t('ev_reopened');
    case 'assigned': {
      const { from, to } = meta;
      if (!to) return by ? t('ev_to_queue_from', { name: by }) : t('ev_to_queue');
      if (from && from.id !== to.id) return t('ev_reassigned', { from: from.name, to: to.name });
      if (by && m.author.id === to.id) return t('ev_took', { name: to.name });
      if (by) return t('ev_assigned_by', { by, name: to.name });
      return t('ev_assigned_to', { name: to.name });
    }
    case 'form':
      if (meta.form === 'email' || meta.form === 'transcript') return t(`ev_form_${meta.form}`, { email: meta.fields?.email || '' });
      return t(`ev_form_${['name', 'prechat', 'offline'].includes(meta.form) ? meta.form : 'other'}`);
    case 'offer':
      // A card the widget shows: the e-mail request (EC3) or the transcript offer (CF5).
      if (meta.form === 'email') return by ? t('ev_offer_email_by', { name: by }) : t('ev_offer_email');
      if (meta.form === 'transcript') return t('ev_offer_transcript');
      return t('ev_other', { name: m.body });
    default:
      return t('ev_other', { name: m.body });
  }
}

/** The delivery state of a committed message (OC15), or null when it has none. */
function deliveryState(m, c) {
  if (m.kind !== 'text' || m.author?.kind !== 'operator' || !c) return null;
  if (isInternal(c)) return m.author.id === state.me?.id ? 'sent' : null;
  if (m.seq <= (c.visitor_read_seq || 0)) return 'read';
  // While the widget is connected, whatever is committed reaches it at once (no frame says so).
  if (c.visitor_online || m.seq <= (c.visitor_delivered_seq || 0)) return 'delivered';
  return 'sent';
}

const STATE_ICON = { queued: 'clock', sent: 'check', delivered: 'checks', read: 'checks', failed: 'cross' };

function statusNode(stateName, error, clientId) {
  const label = t(`st_${stateName}`);
  const node = el('span', { class: `status status-${stateName}`, dataset: { state: stateName }, title: label },
    icon(STATE_ICON[stateName]),
    el('span', { class: 'visually-hidden', text: label }));
  if (stateName === 'failed') {
    const reason = error ? (S_ERR[error.code] ? t(S_ERR[error.code]) : t('err_other', { code: error.code })) : '';
    node.append(el('span', { class: 'failure-reason', text: reason, title: error?.message || '' }),
      el('button', { type: 'button', class: 'small retry', dataset: { clientId }, text: t('retry') }));
  }
  return node;
}

const S_ERR = {
  not_assigned: 'err_not_assigned',
  conversation_closed: 'err_conversation_closed',
  forbidden: 'err_forbidden',
  too_large: 'err_too_large',
  bad_request: 'err_bad_request',
  not_found: 'err_not_found',
  busy: 'err_busy',
  storage_unavailable: 'err_storage_unavailable',
};

/** Re-reads every operator message's state (after `read`, `delivered` or a header). */
function refreshStates() {
  const c = state.convs.get(view.id);
  for (const [seq, node] of view.nodes) {
    const m = view.messages.get(seq);
    const st = deliveryState(m, c);
    const old = node.querySelector('.status');
    if (!st || !old || old.dataset.state === st) continue;
    old.replaceWith(statusNode(st));
  }
}

function quoteNode(seq, c) {
  const q = view.messages.get(seq);
  return el('blockquote', { class: 'quote', dataset: { quotedSeq: String(seq) } },
    el('span', { class: 'quote-author', text: q ? authorName(q, c) : t('quoted_unknown', { seq }) }),
    q ? el('span', { class: 'quote-text', text: snippet(q.body, 160) }) : null);
}

function bubble(m, c, { pendingItem = null } = {}) {
  const mine = m.author?.kind === 'operator' && m.author?.id === state.me?.id;
  const kindClass = m.kind === 'note' ? 'msg-note' : m.author?.kind === 'visitor' ? 'msg-visitor' : m.author?.kind === 'system' ? 'msg-system' : 'msg-operator';
  const st = pendingItem ? pendingItem.state : deliveryState(m, c);
  const replyTo = m.meta?.reply_to;
  const menuButton = m.seq
    ? el('button', {
      type: 'button',
      class: 'icon-button msg-menu-button',
      attrs: { 'aria-label': t('actions'), 'aria-haspopup': 'menu', 'aria-expanded': 'false' },
    }, icon('dots'))
    : null;
  return el('li', {
    class: `msg ${kindClass}${mine ? ' msg-mine' : ''}${pendingItem ? ' is-pending' : ''}`,
    dataset: m.seq ? { seq: String(m.seq), kind: m.kind } : { clientId: pendingItem.client_id, kind: m.kind },
  },
  el('article', { class: 'bubble' },
    el('header', { class: 'msg-head' },
      el('span', { class: 'author', text: authorName(m, c) }),
      m.created_at ? timeEl(m.created_at) : null,
      menuButton),
    m.kind === 'note' ? el('p', { class: 'note-label', text: t('note_label') }) : null,
    replyTo ? quoteNode(replyTo, c) : null,
    m.meta?.attachment ? attachmentNode(m.meta.attachment) : null,
    m.body ? el('p', { class: 'msg-body' }, highlight(m.body, state.terms))
      : !m.meta?.attachment && m.seq ? el('p', { class: 'msg-erased', text: t('message_erased') }) : null,
    st ? el('footer', { class: 'msg-foot' }, statusNode(st, pendingItem?.error, pendingItem?.client_id)) : null));
}

/** A file a message carries (XB1): images inline, other files as a download link. */
function attachmentNode(file) {
  const url = `/files/${encodeURIComponent(file.id)}/${encodeURIComponent(file.name)}`;
  const image = /^image\//.test(file.type || '');
  return el('a', { class: `attachment${image ? ' is-image' : ''}`, href: url, target: '_blank', rel: 'noopener noreferrer' },
    image ? el('img', { src: url, alt: file.name, loading: 'lazy' }) : null,
    el('span', { class: 'attachment-name', text: file.name }),
    file.size ? el('span', { class: 'attachment-size', text: t('file_size_kb', { size: Math.max(1, Math.round(file.size / 1024)) }) }) : null);
}

/** The data of a `form` event (CF3): what the visitor typed, shown as text. */
function formNode(meta) {
  const fields = Object.entries(meta.fields || {}).filter(([, v]) => v);
  const labels = { name: t('field_name'), email: t('field_email'), phone: t('field_phone') };
  return el('div', { class: 'form-card' },
    fields.length ? el('dl', { class: 'facts' }, fields.map(([k, v]) => [el('dt', { text: labels[k] || k }), el('dd', { text: String(v) })])) : null,
    meta.suggestions ? el('p', { class: 'hint', text: t('form_suggestions', { count: meta.suggestions }) }) : null);
}

function renderMessage(m) {
  const c = state.convs.get(m.conversation_id);
  if (m.kind === 'event') {
    return el('li', { class: `msg msg-event${m.body === 'form' ? ' msg-form' : ''}`, dataset: { seq: String(m.seq), kind: 'event', event: m.body } },
      el('p', { class: 'event-line' }, el('span', { class: 'event-text', text: eventText(m) }), ' ', timeEl(m.created_at)),
      m.body === 'form' ? formNode(m.meta || {}) : null);
  }
  return bubble(m, c);
}

function renderPending(item) {
  const c = state.convs.get(item.conversation_id);
  const m = {
    conversation_id: item.conversation_id,
    kind: item.kind,
    author: { kind: 'operator', id: state.me?.id, name: state.me?.name },
    body: item.body,
    created_at: item.created_at,
    meta: item.reply_to || item.attachment ? { reply_to: item.reply_to || undefined, attachment: item.attachment || undefined } : undefined,
  };
  return bubble(m, c, { pendingItem: item });
}

function revealTarget() {
  const node = view.nodes.get(view.target);
  view.target = null;
  if (!node) return;
  node.scrollIntoView({ block: 'center' });
  node.classList.remove('is-target');
  // Restart the highlight animation.
  void node.offsetWidth;
  node.classList.add('is-target');
}

// ---------------------------------------------------------------------------------------
// The per-message menu (OC10): reply, copy

function closeMenus(refocus = false) {
  for (const menu of document.querySelectorAll('.msg-menu')) {
    const button = menu.parentElement.querySelector('.msg-menu-button');
    button?.setAttribute('aria-expanded', 'false');
    menu.remove();
    if (refocus) button?.focus();
  }
}

function onMessagesClick(e) {
  const retryButton = e.target.closest('button.retry');
  if (retryButton) {
    retry(retryButton.dataset.clientId);
    return;
  }
  const menuButton = e.target.closest('.msg-menu-button');
  if (menuButton) {
    const open = menuButton.getAttribute('aria-expanded') === 'true';
    closeMenus();
    if (!open) openMenu(menuButton);
    return;
  }
  const item = e.target.closest('[role=menuitem]');
  if (item) {
    const seq = Number(item.closest('li.msg').dataset.seq);
    closeMenus();
    if (item.dataset.action === 'reply') {
      setReplyTo(seq);
      $('composer-input').focus();
    } else if (item.dataset.action === 'copy') {
      copyText(view.messages.get(seq)?.body || '');
    } else if (item.dataset.action === 'set-as') {
      const li = view.nodes.get(seq);
      if (li) setAsFromMessage(li, li.querySelector('.msg-menu-button'));
    }
  }
}

function openMenu(button) {
  hideSetAs();
  const hasText = !!button.closest('li.msg')?.querySelector('.msg-body')?.textContent.trim();
  const menu = el('div', { class: 'msg-menu', attrs: { role: 'menu' } },
    el('button', { type: 'button', attrs: { role: 'menuitem' }, dataset: { action: 'reply' } }, icon('quote'), t('action_reply')),
    el('button', { type: 'button', attrs: { role: 'menuitem' }, dataset: { action: 'copy' }, text: t('action_copy') }),
    hasText && canSetAs() ? el('button', { type: 'button', attrs: { role: 'menuitem' }, dataset: { action: 'set-as' }, text: t('action_set_as') }) : null);
  menu.addEventListener('keydown', (e) => {
    const items = [...menu.querySelectorAll('[role=menuitem]')];
    const i = items.indexOf(document.activeElement);
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      items[(i + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length].focus();
    }
  });
  button.setAttribute('aria-expanded', 'true');
  button.parentElement.append(menu);
  menu.querySelector('[role=menuitem]').focus();
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast({ title: t('copied') });
    return;
  } catch {
    // No clipboard permission: fall back to a selection and the copy command.
  }
  const area = el('textarea', { value: text, class: 'offscreen', attrs: { 'aria-hidden': 'true' } });
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  area.remove();
  toast({ title: ok ? t('copied') : t('copy_failed') });
}

