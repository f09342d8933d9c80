// The conversation list (OC9, OC13): the customer's name, unread badge, channel icon and
// title, the last message or my draft, assignee and a waiting badge; the filters (OC11);
// and search (OC7) over the list and over message texts, with the terms marked.

import { api, ApiError } from './api.js';
import { state, on, emit, convName, channelOf, isInternal, mergeList, fitsFilters } from './model.js';
import { t } from './strings.js';
import { el, icon, highlight, timeEl, debounce, snippet, replaceChildren } from './util.js';

const $ = (id) => document.getElementById(id);

/** List items by conversation id, kept across redraws so focus and scroll stay put. */
const items = new Map();
let loadSeq = 0;

/** Reloads the list a moment later; several causes in a row make one request. */
export const scheduleReload = debounce(() => reloadList(), 250);

/** Loads the list for the current filters (and the message hits when searching). */
export async function reloadList() {
  scheduleReload.cancel();
  const mine = ++loadSeq;
  const startedAt = Date.now();
  const f = state.filters;
  const params = { status: f.status, channel: f.channel, with: f.with, assignee: f.assignee, q: f.q.trim(), limit: 200 };
  try {
    const [list, hits] = await Promise.all([
      api.conversations(params),
      f.q.trim() ? api.search(f.q.trim()) : Promise.resolve(null),
    ]);
    if (mine !== loadSeq) return; // a newer request is on its way
    const terms = hits ? hits.terms : [];
    if (terms.join(' ') !== state.terms.join(' ')) {
      state.terms = terms;
      emit('terms');
    }
    mergeList(list, startedAt);
    renderHits(hits);
    $('list-empty').textContent = t('list_empty');
  } catch (e) {
    if (mine !== loadSeq || (e instanceof ApiError && e.status === 401)) return;
    $('list-empty').textContent = t('list_error', { message: e.message });
    $('list-empty').hidden = false;
  }
}

export function initList() {
  const search = $('search');
  const runSearch = debounce(() => {
    state.filters.q = search.value;
    reloadList();
  }, 300);
  search.addEventListener('input', runSearch);
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      runSearch.flush();
    }
  });
  for (const [id, key] of [['filter-channel', 'channel'], ['filter-status', 'status'], ['filter-with', 'with'], ['filter-assignee', 'assignee']]) {
    $(id).addEventListener('change', (e) => {
      state.filters[key] = e.target.value;
      reloadList();
    });
  }
  on('list', renderList);
  on('directory', renderChannelFilter);
  on('changed', ({ id, header, message }) => {
    const c = state.convs.get(id);
    if (!c) return;
    const simple = !state.filters.q.trim() && state.filters.with !== 'mine';
    if (header || message) {
      if (!state.listIds.has(id)) {
        // A new conversation, or one that may now fit the filters.
        if (simple && fitsFilters(c)) state.listIds.add(id);
        else scheduleReload();
      } else if (!fitsFilters(c)) {
        state.listIds.delete(id);
      } else if (!simple && header) {
        scheduleReload();
      }
    }
    renderList();
  });
}

/** Fills the channel filter from the channel directory. */
function renderChannelFilter() {
  const select = $('filter-channel');
  const current = select.value || state.filters.channel;
  replaceChildren(select, el('option', { value: '', text: t('filter_channel_all') }),
    [...state.channels.values()].map((ch) => el('option', { value: ch.name, text: ch.title })));
  select.value = current;
}

/** Redraws the list from the state, reusing the items already on the page. */
export function renderList() {
  const list = $('conv-list');
  const convs = [...state.listIds].map((id) => state.convs.get(id)).filter(Boolean);
  convs.sort((a, b) => (b.updated_at || 0) - (a.updated_at || 0) || b.id - a.id);
  const keep = new Set(convs.map((c) => c.id));
  for (const [id, node] of items) {
    if (!keep.has(id)) {
      node.remove();
      items.delete(id);
    }
  }
  let prev = null;
  for (const c of convs) {
    let node = items.get(c.id);
    if (!node) {
      node = el('li', { class: 'conv-item', dataset: { conversationId: String(c.id) } });
      items.set(c.id, node);
    }
    fillItem(node, c);
    // Move only what is out of place, so a focused link keeps its focus.
    const want = prev ? prev.nextElementSibling : list.firstElementChild;
    if (want !== node) list.insertBefore(node, want);
    prev = node;
  }
  $('list-empty').hidden = convs.length > 0;
}

/** The preview line: my draft first (OC13), else the last message. */
function preview(c) {
  if (c.draft) return { text: t('draft_prefix') + snippet(c.draft), draft: true };
  const m = c.last_message;
  if (!m) return { text: t('no_messages_yet'), draft: false, empty: true };
  // The list's `last_message` names no operator; a message seen live here does.
  const mine = m.author_kind === 'operator' && m.author_id !== undefined && m.author_id === state.me?.id;
  return { text: snippet(m.body) || t('file_only'), prefix: mine ? t('you_prefix') : '', draft: false };
}

function fillItem(node, c) {
  const ch = channelOf(c);
  const p = preview(c);
  const unread = c.unread || 0;
  const open = state.openId === c.id;
  const link = node.firstElementChild || node.appendChild(el('a', { class: 'conv-link' }));
  link.href = `#/c/${c.id}`;
  if (open) link.setAttribute('aria-current', 'true');
  else link.removeAttribute('aria-current');
  node.classList.toggle('is-unread', unread > 0);
  node.classList.toggle('is-closed', c.status === 'closed');
  const previewNode = el('span', { class: `conv-preview${p.draft ? ' is-draft' : ''}${p.empty ? ' is-empty' : ''}` });
  if (p.prefix) previewNode.append(p.prefix);
  if (p.draft) previewNode.append(p.text);
  else previewNode.append(highlight(p.text, state.terms));
  const badges = [];
  if (c.queued) badges.push(el('span', { class: 'badge badge-waiting', text: t('waiting') }));
  if (c.status === 'closed') badges.push(el('span', { class: 'badge badge-closed', text: t('closed_badge') }));
  replaceChildren(link,
    el('span', { class: `chan-icon chan-${ch.kind}`, title: ch.title }, icon(ch.kind)),
    el('span', { class: 'conv-main' },
      el('span', { class: 'conv-top' },
        el('span', { class: 'conv-name' }, highlight(convName(c), state.terms)),
        c.updated_at ? timeEl(c.updated_at) : null),
      previewNode,
      el('span', { class: 'conv-meta' },
        c.visitor_online && !isInternal(c) ? el('span', { class: 'visitor-presence', title: t('visitor_online') }, el('span', { class: 'visually-hidden', text: t('visitor_online') })) : null,
        el('span', { class: 'chan-title', text: ch.title }),
        isInternal(c) ? null : el('span', { class: 'conv-assignee', text: c.assignee ? c.assignee.name : t('unassigned') }),
        badges)),
    unread > 0 ? el('span', { class: 'unread-badge', title: t('unread_label', { count: unread }) },
      el('span', { class: 'unread-count', attrs: { 'aria-hidden': 'true' }, text: String(unread) }),
      el('span', { class: 'visually-hidden', text: t('unread_label', { count: unread }) })) : null);
}

/** The message hits of a search: click opens the conversation at that message. */
function renderHits(hits) {
  const section = $('search-hits');
  const ol = section.querySelector('.hit-list');
  if (!hits) {
    section.hidden = true;
    ol.replaceChildren();
    return;
  }
  section.hidden = false;
  if (!hits.hits.length) {
    replaceChildren(ol, el('li', { class: 'hit-empty', text: t('no_hits') }));
    return;
  }
  replaceChildren(ol, hits.hits.map((h) => {
    const c = state.convs.get(h.conversation_id);
    const name = c ? convName(c) : t('visitor_n', { number: h.conversation_id });
    return el('li', { class: 'hit', dataset: { conversationId: String(h.conversation_id), seq: String(h.seq) } },
      el('a', { href: `#/c/${h.conversation_id}/m/${h.seq}`, class: 'hit-link' },
        el('span', { class: 'hit-top' }, el('span', { class: 'hit-name', text: name }), timeEl(h.created_at)),
        el('span', { class: `hit-body${h.kind === 'note' ? ' is-note' : ''}` }, highlight(h.body, hits.terms))));
  }));
}

