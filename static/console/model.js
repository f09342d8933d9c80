// The console's shared state: who is logged in, the directory (operators, channels, teams),
// the conversations the list knows with their unread counts and drafts, and the filters.
// Frames of the live feed update it here; views listen to `changed` events and redraw.

import { t } from './strings.js';

export const state = {
  /** The logged-in operator (GET /api/me, `ready`). */
  me: null,
  /** Every operator, with `online` (GET /api/operators). */
  operators: [],
  /** Channels by `name` (GET /api/channels): title and kind for the list's icons (OC9). */
  channels: new Map(),
  /** Teams (GET /api/teams). */
  teams: [],
  /** Conversations by id: the header (`ConversationView`) plus the list's fields. */
  convs: new Map(),
  /** The ids the list shows, as the server answered for the filters (then kept live). */
  listIds: new Set(),
  /** The list filters (OC11) and search (OC7). */
  filters: { status: 'open', channel: '', with: 'everyone', assignee: 'anyone', q: '' },
  /** The conversation on screen. */
  openId: null,
  /** Terms of the current search, marked in the list and the messages. */
  terms: [],
};

const bus = new EventTarget();

/** Listens to a state event: `changed` (detail: {id}) , `list`, `me`, `directory`. */
export function on(type, fn) {
  bus.addEventListener(type, (e) => fn(e.detail));
}

export function emit(type, detail = {}) {
  bus.dispatchEvent(new CustomEvent(type, { detail }));
}

// ---------------------------------------------------------------------------------------
// Names and labels

export function isInternal(c) {
  return !!c && c.kind !== 'visitor';
}

/** The customer's name (the CRM contact, else "Visitor #n"), or an internal chat's title. */
export function convName(c) {
  if (!c) return '';
  if (c.kind === 'team') return c.title || t('internal_chat');
  if (c.kind === 'direct') {
    const other = (c.members || []).find((m) => !state.me || m.id !== state.me.id);
    return other ? other.name : t('internal_chat');
  }
  return c.contact?.name || t('visitor_n', { number: c.number ?? c.id });
}

/** `{ title, kind }` of the conversation's channel; internal chats have their own. */
export function channelOf(c) {
  if (isInternal(c)) return { title: t('internal_chat'), kind: 'internal' };
  const ch = state.channels.get(c.channel);
  return ch ? { title: ch.title, kind: ch.kind } : { title: c.channel || '', kind: 'other' };
}

export function operatorName(id) {
  return state.operators.find((o) => o.id === id)?.name || '';
}

/** The name shown as a message's author: the visitor, the operator, or the bot. */
export function authorName(msg, c) {
  const a = msg.author || {};
  if (a.kind === 'operator') return a.name || operatorName(a.id) || '?';
  if (a.kind === 'visitor') return c?.contact?.name || t('author_visitor');
  return t('author_bot');
}

/** A message's text for previews and notifications: its body, or the file it carries. */
export function messageText(m) {
  if (m.body && m.body.trim()) return m.body;
  const file = m.meta?.attachment;
  return file ? t('attachment_label', { name: file.name }) : m.body || '';
}

/** Whether I may close, reopen or reassign (OC8): responsible, administrator, or nobody has it. */
export function mayManage(c) {
  if (!c || isInternal(c) || !state.me) return false;
  return state.me.is_admin || !c.assignee || c.assignee.id === state.me.id;
}

/** Whether I may write replies (not only notes) now. */
export function mayReply(c) {
  if (!c || !state.me) return false;
  if (isInternal(c)) return true;
  return c.status === 'open' && (!c.assignee || c.assignee.id === state.me.id);
}

// ---------------------------------------------------------------------------------------
// Bookkeeping from the HTTP list and the live feed

/**
 * Unread count: the server's count at the last list load (`base`, up to `baseSeq`), plus
 * the unread messages seen live since (`live`, their seqs), minus what read marks cleared.
 */
function unreadOf(c) {
  return c._base + c._live.length;
}

function prepare(item) {
  item._base = item.unread || 0;
  item._baseSeq = item.last_seq || 0;
  item._live = [];
  item._seen = item.last_seq || 0; // highest seq counted for the list
  item._draftAt = 0;
  return item;
}

/**
 * Merges the server's list answer: the fresher of local and server wins per conversation
 * (a frame may have arrived while the request was on its way), and drafts typed here after
 * the request started are kept.
 */
export function mergeList(items, startedAt) {
  const ids = new Set();
  for (const item of items) {
    ids.add(item.id);
    const local = state.convs.get(item.id);
    if (local && local._seen > (item.last_seq || 0)) continue; // the feed is ahead of this answer
    const fresh = prepare({ ...item });
    if (local) {
      // A header from the feed (a new name after a save, a reassignment) that arrived after
      // this request left is newer than the answer: keep it.
      if (local._headerAt >= startedAt) {
        for (const [k, v] of Object.entries(header(local))) if (!k.startsWith('_')) fresh[k] = v;
      }
      if (local._draftAt > startedAt) {
        fresh.draft = local.draft;
        fresh._draftAt = local._draftAt;
      }
      if (local._myRead) fresh._myRead = local._myRead;
    }
    state.convs.set(item.id, Object.assign(local || {}, fresh));
  }
  state.listIds = ids;
  emit('list');
}

/** Only the header fields of a list item or frame (not the list's counters). */
function header(view) {
  const { unread, last_message, draft, ...rest } = view;
  return rest;
}

/** A `conversation` frame, or the header of GET /api/conversations/{id}. */
export function applyHeader(view) {
  let c = state.convs.get(view.id);
  if (!c) {
    c = prepare({ ...view, unread: 0, last_message: null, draft: null });
    state.convs.set(view.id, c);
  } else {
    // Sequence numbers and marks only move forward, whatever order answers arrive in.
    const marks = ['last_seq', 'visitor_read_seq', 'operator_read_seq', 'visitor_delivered_seq'];
    const kept = Object.fromEntries(marks.map((k) => [k, Math.max(c[k] || 0, view[k] || 0)]));
    Object.assign(c, header(view), kept);
  }
  c._headerAt = Date.now();
  emit('changed', { id: view.id, header: true });
  return c;
}

/** A `message` frame (or a committed message of mine): list preview, order, unread. */
export function applyMessage(m) {
  const c = state.convs.get(m.conversation_id);
  if (!c) return null;
  if (m.seq <= c._seen) return c; // counted already (list answer or an earlier frame)
  c._seen = m.seq;
  c.last_seq = Math.max(c.last_seq || 0, m.seq);
  c.updated_at = Math.max(c.updated_at || 0, m.created_at || 0);
  if (m.kind === 'text') {
    c.last_message = { body: messageText(m), author_kind: m.author?.kind, author_id: m.author?.id, created_at: m.created_at };
    const mine = m.author?.kind === 'operator' && m.author?.id === state.me?.id;
    const counts = isInternal(c) ? !mine : m.author?.kind === 'visitor';
    // What arrives in the conversation on screen is read at once (its read mark follows).
    const watching = state.openId === c.id && document.visibilityState === 'visible';
    if (counts && !watching && m.seq > (isInternal(c) ? c._myRead || 0 : c.operator_read_seq || 0)) c._live.push(m.seq);
    c.unread = unreadOf(c);
  }
  emit('changed', { id: c.id, message: m });
  return c;
}

/** A `read` frame: the visitor's mark (delivery state) or the operators' (unread). */
export function applyRead(f) {
  const c = state.convs.get(f.conversation_id);
  if (!c) return;
  if (f.by === 'visitor') {
    c.visitor_read_seq = Math.max(c.visitor_read_seq || 0, f.seq);
    c.visitor_delivered_seq = Math.max(c.visitor_delivered_seq || 0, f.seq);
  } else {
    if (f.operator_id !== undefined && f.operator_id !== null) {
      if (f.operator_id !== state.me?.id) return; // a colleague's own mark in an internal chat
      c._myRead = Math.max(c._myRead || 0, f.seq);
    } else {
      c.operator_read_seq = Math.max(c.operator_read_seq || 0, f.seq);
    }
    c._live = c._live.filter((s) => s > f.seq);
    if (f.seq >= c._baseSeq) c._base = 0;
    c.unread = unreadOf(c);
  }
  emit('changed', { id: c.id, read: f });
}

/** A `delivered` frame (OC15). */
export function applyDelivered(f) {
  const c = state.convs.get(f.conversation_id);
  if (!c) return;
  c.visitor_delivered_seq = Math.max(c.visitor_delivered_seq || 0, f.seq);
  emit('changed', { id: c.id, delivered: f });
}

/** My draft of a conversation changed (typed here, or a `draft` frame from my other consoles). */
export function applyDraft(conversationId, body, local = false) {
  const c = state.convs.get(conversationId);
  if (!c) return;
  const text = body && body.trim() ? body : null;
  if (c.draft === text) return;
  c.draft = text;
  if (local) c._draftAt = Date.now();
  emit('changed', { id: c.id, draft: true });
}

/** Whether a conversation fits the list's filters, as far as the console can tell. */
export function fitsFilters(c) {
  const f = state.filters;
  if (f.status !== 'all' && c.status !== f.status) return false;
  if (f.channel && c.channel !== f.channel) return false;
  if (f.with === 'colleagues' && !isInternal(c)) return false;
  if ((f.with === 'customers' || f.with === 'mine') && (isInternal(c) || !c.contact)) return false;
  if (f.assignee === 'me' && c.assignee?.id !== state.me?.id) return false;
  if (f.assignee === 'unassigned' && (isInternal(c) || c.assignee)) return false;
  return true;
}
