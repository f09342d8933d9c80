// Merge suggestions (XB11, ID3): an e-mail or phone typed by a visitor (or an operator) that
// another contact already has is never linked silently; the server raises a suggestion and an
// operator decides. The top bar counts the pending ones (GET /api/suggestions); the dialog
// lists them with Accept (POST …/accept: merges the contact into the candidate) and Reject
// (…/reject: kept apart for good). The customer card shows its own with the same controls.
// There is no feed frame for suggestions: the count is refreshed after forms and edits,
// after my decisions, on reconnect, and every minute.

import { api, ApiError } from './api.js';
import { state, emit } from './model.js';
import { toast } from './notify.js';
import { t } from './strings.js';
import { el, debounce, replaceChildren, timeEl } from './util.js';

const $ = (id) => document.getElementById(id);

const POLL_MS = 60_000;

let loadSeq = 0;
let timer = null;

export function initSuggestions() {
  state.suggestions = [];
  $('suggestions-button').addEventListener('click', openSuggestions);
  $('suggestions-list').addEventListener('click', onDecisionClick);
  renderCount();
}

/** Starts (or restarts) the minute poll; called once the console is logged in. */
export function startSuggestions() {
  clearInterval(timer);
  timer = setInterval(() => refreshSuggestions(), POLL_MS);
  refreshSuggestions();
}

export function stopSuggestions() {
  clearInterval(timer);
  timer = null;
  loadSeq++;
  state.suggestions = [];
  state.suggestionsLoaded = false;
  renderCount();
}

/** Loads the pending suggestions and redraws the count, the dialog and the cards. */
export async function refreshSuggestions() {
  const mine = ++loadSeq;
  try {
    const list = await api.suggestions();
    if (mine !== loadSeq) return;
    state.suggestions = list.filter((s) => s.status === 'pending');
    state.suggestionsLoaded = true;
  } catch (e) {
    // Without the chat permission (403) there is nothing to decide; other failures keep
    // what we had until the next refresh.
    if (e instanceof ApiError && e.status === 403) state.suggestions = [];
    else return;
  }
  renderCount();
  if ($('suggestions-dialog').open) renderDialog();
  emit('suggestions');
}

/** A refresh a moment later: several causes in a row make one request. */
export const refreshSuggestionsSoon = debounce(() => refreshSuggestions(), 400);

function renderCount() {
  const n = state.suggestions?.length || 0;
  const badge = $('suggestions-count');
  badge.textContent = n ? String(n) : '';
  badge.hidden = !n;
  const button = $('suggestions-button');
  button.classList.toggle('has-pending', n > 0);
  button.setAttribute('aria-label', n ? `${t('suggestions')}: ${t('suggestions_count', { count: n })}` : t('suggestions'));
}

function openSuggestions() {
  const dialog = $('suggestions-dialog');
  dialog.querySelector('.form-error').textContent = '';
  renderDialog();
  dialog.showModal();
  refreshSuggestions();
}

function renderDialog() {
  const list = $('suggestions-list');
  const all = state.suggestions || [];
  replaceChildren(list, all.length ? all.map((s) => suggestionItem(s)) : el('li', { class: 'hint', text: t('suggestions_empty') }));
}

/** The sentence of a suggestion, as text: who typed what, and who already has it. */
export function suggestionText(s) {
  return t('suggestion_line', {
    contact: s.contact?.name || `#${s.contact?.id}`,
    candidate: s.candidate?.name || `#${s.candidate?.id}`,
    kind: t(`suggestion_kind_${s.kind}`) === `suggestion_kind_${s.kind}` ? s.kind : t(`suggestion_kind_${s.kind}`),
    value: s.value,
  });
}

/** One suggestion with its Accept and Reject buttons (the dialog's and the card's). */
export function suggestionItem(s) {
  const names = { contact: s.contact?.name || '', candidate: s.candidate?.name || '' };
  return el('li', { class: 'suggestion', dataset: { suggestionId: String(s.id) } },
    el('p', { class: 'suggestion-text', text: suggestionText(s) }),
    el('div', { class: 'suggestion-foot' },
      timeEl(s.created_at),
      el('button', {
        type: 'button', class: 'small primary suggestion-accept', dataset: { decide: 'accept' },
        title: t('accept_title', names), text: t('accept'),
      }),
      el('button', {
        type: 'button', class: 'small suggestion-reject', dataset: { decide: 'reject' },
        title: t('reject_title', names), text: t('reject'),
      })),
    el('p', { class: 'form-error suggestion-error', attrs: { role: 'alert' } }));
}

function onDecisionClick(e) {
  const button = e.target.closest('button[data-decide]');
  if (button) decide(button);
}

/**
 * Accepts or rejects the suggestion of `button`'s item; errors (409: decided already) show
 * in the item. Used by the dialog and the card.
 */
export async function decide(button) {
  const item = button.closest('.suggestion');
  const id = Number(item.dataset.suggestionId);
  const s = (state.suggestions || []).find((x) => x.id === id);
  const names = { contact: s?.contact?.name || '', candidate: s?.candidate?.name || '' };
  const accept = button.dataset.decide === 'accept';
  const error = item.querySelector('.suggestion-error');
  error.textContent = '';
  for (const b of item.querySelectorAll('button')) b.disabled = true;
  try {
    if (accept) await api.acceptSuggestion(id);
    else await api.rejectSuggestion(id);
    state.suggestions = (state.suggestions || []).filter((x) => x.id !== id);
    toast({ title: t(accept ? 'suggestion_accepted' : 'suggestion_rejected', names) });
    // Merged conversations whose actors are asleep send no `conversation` frame: reload.
    emit('crm', { contacts: [s?.contact?.id, s?.candidate?.id].filter(Boolean), merged: accept });
    refreshSuggestions();
  } catch (err) {
    // Shown where the operator clicked; a suggestion decided elsewhere (409) goes at the
    // next refresh.
    error.textContent = err.message;
    for (const b of item.querySelectorAll('button')) b.disabled = false;
  }
}
