// The customer in the details panel (OC16, OC19, OC20, XB2, XB6, XB11, ID3).
//
// - A visitor not in the CRM yet: **Save as customer** (a name) or **Link to an existing
//   customer** (search, then POST /api/conversations/{id}/contact).
// - A customer: the card (GET /api/contacts/{id}) with first and last name, address, the
//   phones and e-mails with a *verified* badge, new phone and e-mail (added as identifiers),
//   VIP and BAD toggles (PATCH /api/contacts/{id}), the pending merge suggestions, every
//   conversation of the customer, **Merge into…** (POST …/merge), and for administrators
//   **Export** (GET …/export, downloaded as JSON) and **Erase** (DELETE, confirmed by typing).
// - Text selected in a message fills a card field (`fillField`, see selection.js).
//
// The card is rebuilt only when what it shows changes (another load, the suggestions), and
// what the operator was typing in it survives the rebuild. Every text is set as text.

import { api } from './api.js';
import { state, on, emit, channelOf } from './model.js';
import { decide, suggestionItem, refreshSuggestionsSoon } from './suggestions.js';
import { toast } from './notify.js';
import { t } from './strings.js';
import { el, fullTime, replaceChildren, debounce } from './util.js';

const $ = (id) => document.getElementById(id);

/** Cards by contact id, as last loaded: `{ card, rev }` (a merged id maps to the survivor's). */
const cards = new Map();
/** Why a card could not be loaded, by contact id. */
const failures = new Map();
let revision = 0;

/** What the customer section shows. */
const view = {
  box: null,
  convId: null,
  /** The key the section was built from: rebuilt when it changes. */
  key: null,
  /** Conversation, contact and name the card was last loaded for. */
  loadedFor: null,
  /** A message the cards built for this contact show for a few seconds: `{ contactId, text, until }`. */
  flash: null,
};

/** Fields a selection may fill (OC16): card fields, or the forms of a visitor. */
const CARD_FIELDS = ['first_name', 'last_name', 'phone', 'email', 'address'];

export function initCrm() {
  on('suggestions', rerender);
  on('crm', ({ contacts = [], merged = false, erased = false }) => {
    // A form, a merge, an erasure or a decision: reload the cards involved.
    const open = state.convs.get(view.convId)?.contact?.id;
    for (const id of new Set(contacts)) if (cards.has(id) || id === open) loadCard(id);
    if ((merged || erased) && open && !contacts.includes(open)) loadCard(open);
  });
  on('me', rerender);
  initMergeDialog();
  initEraseDialog();
}

function rerender() {
  const c = state.convs.get(view.convId);
  if (c && view.box?.isConnected) renderCustomer(view.box, c);
}

/** Loads the card of contact `id`, then redraws. Concurrent loads of one id make one request. */
const inflight = new Map();
function loadCard(id) {
  if (inflight.has(id)) {
    inflight.get(id).again = true;
    return inflight.get(id).promise;
  }
  const entry = { again: false, promise: null };
  entry.promise = (async () => {
    try {
      do {
        entry.again = false;
        try {
          const card = await api.contact(id);
          const value = { card, rev: ++revision };
          cards.set(id, value);
          if (card.id !== id) cards.set(card.id, value);
          failures.delete(id);
        } catch (e) {
          failures.set(id, e.message);
        }
      } while (entry.again);
    } finally {
      inflight.delete(id);
    }
    rerender();
  })();
  inflight.set(id, entry);
  return entry.promise;
}

// ---------------------------------------------------------------------------------------
// The section

/**
 * Draws the customer part of the details panel for conversation `c` into `box`. Called on
 * every header change; rebuilds only what changed.
 */
export function renderCustomer(box, c) {
  if (view.box !== box || view.convId !== c.id) {
    view.box = box;
    view.convId = c.id;
    view.key = null;
    view.loadedFor = null;
  }
  if (!c.contact) {
    view.loadedFor = null;
    const key = `visitor:${c.id}`;
    if (view.key === key) return;
    view.key = key;
    replaceChildren(box, heading(), saveForm(c), linkForm(c));
    return;
  }
  const id = c.contact.id;
  // Fresh on opening, and whenever the header's contact or its name changes (OC19).
  const want = `${c.id}:${id}:${c.contact.name}`;
  if (view.loadedFor !== want) {
    view.loadedFor = want;
    loadCard(id);
  }
  const entry = cards.get(id);
  const failed = failures.get(id);
  let key;
  let node;
  if (entry) {
    const card = entry.card;
    const pending = cardSuggestions(card);
    key = `card:${id}:${entry.rev}:${pending.map((s) => s.id).join(',')}:${state.me?.is_admin ? 1 : 0}`;
    if (view.key !== key) node = cardNode(c, card, pending);
  } else {
    key = `pending:${id}:${c.contact.name}:${failed || ''}`;
    if (view.key !== key) {
      node = el('div', { class: 'customer-card', dataset: { contactId: String(id) } },
        el('p', { class: 'contact-name' }, c.contact.name),
        el('p', { class: 'hint', text: failed ? t('card_failed', { message: failed }) : t('card_loading') }));
    }
  }
  if (view.key === key) return;
  view.key = key;
  swapCard(box, node);
}

function heading() {
  return el('h3', { id: 'customer-heading', text: t('customer') });
}

/** Puts a new card in place, keeping what the operator typed (same contact) and the focus. */
function swapCard(box, node) {
  const old = box.querySelector('.customer-card');
  const same = old && old.dataset.contactId === node.dataset.contactId;
  const dirty = same ? [...old.querySelectorAll('[data-field].is-dirty')].map((i) => [i.dataset.field, i.value]) : [];
  const active = old && old.contains(document.activeElement) ? document.activeElement : null;
  const focused = active?.id || null;
  let caret = null;
  try {
    caret = active && typeof active.selectionStart === 'number' ? [active.selectionStart, active.selectionEnd] : null;
  } catch {
    caret = null; // type=email inputs have no selection API
  }
  const scroll = $('details-pane')?.scrollTop;
  replaceChildren(box, heading(), node);
  for (const [field, value] of dirty) {
    const input = node.querySelector(`[data-field="${field}"]`);
    if (input) {
      input.value = value;
      markDirty(input);
    }
  }
  if (dirty.length) updateDirtyState(node.querySelector('.card-form'));
  if (focused && $(focused) && node.contains($(focused))) {
    const again = $(focused);
    again.focus({ preventScroll: true });
    try {
      if (caret && same) again.setSelectionRange(...caret);
    } catch {
      // No selection API on this kind of input.
    }
  }
  if (scroll !== undefined) $('details-pane').scrollTop = scroll;
}

/** The pending suggestions that involve the card's contact. */
function cardSuggestions(card) {
  const mine = (s) => s.contact?.id === card.id || s.candidate?.id === card.id;
  if (Array.isArray(state.suggestions) && state.suggestionsLoaded) return state.suggestions.filter(mine);
  return (card.suggestions || []).filter((s) => s.status === 'pending' && mine(s));
}

// ---------------------------------------------------------------------------------------
// The card (OC16, OC20)

function cardNode(c, card, pending) {
  const node = el('div', { class: 'customer-card', dataset: { contactId: String(card.id) } });
  if (card.erased_at) {
    node.classList.add('is-erased');
    node.append(
      el('p', { class: 'contact-name', text: t('erased_contact') }),
      el('p', { class: 'hint erased-note', text: t('erased_note', { date: fullTime(card.erased_at) }) }),
      conversationsNode(c, card));
    return node;
  }
  node.append(el('p', { class: 'contact-name' }, card.name,
    card.vip ? el('span', { class: 'badge badge-vip', text: t('vip') }) : null,
    card.bad ? el('span', { class: 'badge badge-bad', text: t('bad') }) : null));
  if (c.contact && card.id !== c.contact.id) node.append(el('p', { class: 'hint', text: t('merged_note', { name: card.name }) }));

  const error = el('p', { class: 'form-error card-error', attrs: { role: 'alert' } });
  const ok = el('p', { class: 'form-ok card-ok', attrs: { role: 'status' } });
  if (view.flash && view.flash.contactId === card.id && Date.now() < view.flash.until) ok.textContent = view.flash.text;

  // VIP and BAD are the customer's, not the conversation's; each press saves at once.
  const tags = el('div', { class: 'tag-toggles', attrs: { role: 'group', 'aria-label': t('tags_label') } },
    tagButton(card, 'vip', error, ok),
    tagButton(card, 'bad', error, ok));

  const form = el('form', { class: 'stack card-form', noValidate: true },
    field('card-first-name', t('first_name'), el('input', { id: 'card-first-name', autocomplete: 'off', maxLength: 120 }), 'first_name', card.first_name),
    field('card-last-name', t('last_name'), el('input', { id: 'card-last-name', autocomplete: 'off', maxLength: 120 }), 'last_name', card.last_name),
    field('card-address', t('address'), el('textarea', { id: 'card-address', rows: 2, maxLength: 500 }), 'address', card.address),
    el('h4', { class: 'card-subhead', text: t('identifiers') }),
    identifiersNode(card),
    field('card-phone', t('add_phone'), el('input', { id: 'card-phone', type: 'tel', autocomplete: 'off' }), 'phone', ''),
    field('card-email', t('add_email'), el('input', { id: 'card-email', type: 'email', autocomplete: 'off' }), 'email', ''),
    el('p', { class: 'unsaved-note', hidden: true, text: t('unsaved') }),
    error,
    ok,
    el('button', { type: 'submit', class: 'small card-save', text: t('save_card') }));
  form.addEventListener('input', (e) => {
    if (!e.target.dataset.field) return;
    markDirty(e.target);
    updateDirtyState(form);
    ok.textContent = '';
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    saveCard(form, card, error, ok);
  });

  node.append(tags, form);
  if (pending.length) {
    const list = el('ul', { class: 'suggestion-list card-suggestions' }, pending.map((s) => suggestionItem(s)));
    list.addEventListener('click', (e) => {
      const button = e.target.closest('button[data-decide]');
      if (button) decide(button);
    });
    node.append(el('div', { class: 'card-block' },
      el('h4', { class: 'card-subhead', text: t('card_suggestions', { count: pending.length }) }),
      el('p', { class: 'hint', text: t('suggestions_why') }),
      list));
  }
  node.append(conversationsNode(c, card), actionsNode(card));
  return node;
}

function field(id, label, input, name, value) {
  input.dataset.field = name;
  input.dataset.original = value || '';
  input.value = value || '';
  return el('div', { class: 'card-field' }, el('label', { htmlFor: id, text: label }), input);
}

function markDirty(input) {
  input.classList.toggle('is-dirty', input.value.trim() !== (input.dataset.original || ''));
}

function updateDirtyState(form) {
  if (!form) return;
  const dirty = !!form.querySelector('[data-field].is-dirty');
  form.classList.toggle('has-changes', dirty);
  form.querySelector('.unsaved-note').hidden = !dirty;
  const save = form.querySelector('.card-save');
  save.classList.toggle('primary', dirty);
  save.textContent = dirty ? t('save_changes') : t('save_card');
}

function tagButton(card, tag, error, ok) {
  const on = !!card[tag];
  const button = el('button', {
    type: 'button',
    id: `card-${tag}`,
    class: `small tag-toggle tag-${tag}`,
    attrs: { 'aria-pressed': String(on) },
    title: t(`${tag}_title`),
    text: t(`${tag}_toggle`),
  });
  button.addEventListener('click', async () => {
    error.textContent = '';
    ok.textContent = '';
    button.disabled = true;
    try {
      await api.updateContact(card.id, { [tag]: !on });
      view.flash = { contactId: card.id, text: t('card_saved'), until: Date.now() + 5000 };
      await loadCard(card.id);
    } catch (err) {
      error.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

const SOURCES = { form: 'source_form', operator: 'source_operator', widget_identity: 'source_widget_identity', email_reply: 'source_email_reply' };

function identifiersNode(card) {
  const ids = card.identifiers || [];
  if (!ids.length) return el('p', { class: 'hint identifiers-empty', text: t('no_identifiers') });
  return el('ul', { class: 'identifiers' }, ids.map((i) => el('li', {
    class: `identifier${i.verified ? ' is-verified' : ''}`,
    dataset: { kind: i.kind, value: i.value },
  },
  el('span', { class: 'id-kind', text: t(`kind_${i.kind === 'external_id' ? 'external' : i.kind}_id`) }),
  el('span', { class: 'id-value', text: i.value }),
  el('span', { class: 'id-meta' },
    i.verified
      ? el('span', { class: 'badge badge-verified', text: t('verified') })
      : el('span', { class: 'id-unverified', text: t('not_verified') }),
    SOURCES[i.source] ? el('span', { class: 'id-source', text: t(SOURCES[i.source]) }) : null))));
}

/** The customer's conversations (OC20): number, channel, status, messages, start; each a link. */
function conversationsNode(c, card) {
  const convs = card.conversations || [];
  if (!convs.length) return el('div', { class: 'card-block' });
  return el('div', { class: 'card-block' },
    el('p', { class: 'hint card-conv-count', text: t('customer_conversations', { count: convs.length }) }),
    el('ul', { class: 'customer-convs' }, convs.map((x) => el('li', { dataset: { conversationId: String(x.id) } },
      el('a', { href: `#/c/${x.id}`, attrs: x.id === c.id ? { 'aria-current': 'true' } : {} },
        t('customer_conversation', {
          id: x.id,
          channel: channelOf({ kind: 'visitor', channel: x.channel }).title,
          status: x.status === 'closed' ? t('status_closed') : t('status_open'),
          messages: x.messages === 1 ? t('messages_one') : t('messages_many', { count: x.messages }),
        })),
      ' ',
      el('time', { class: 'time', dateTime: new Date(x.created_at).toISOString(), text: t('started_on', { date: fullTime(x.created_at) }) })))));
}

function actionsNode(card) {
  const error = el('p', { class: 'form-error', attrs: { role: 'alert' } });
  const status = el('p', { class: 'form-ok', attrs: { role: 'status' } });
  const merge = el('button', { type: 'button', class: 'small merge-into', text: t('merge_into') });
  merge.addEventListener('click', () => openMerge(card));
  const buttons = [merge];
  if (state.me?.is_admin) {
    const exportButton = el('button', { type: 'button', class: 'small export-contact', text: t('export_contact') });
    exportButton.addEventListener('click', () => exportContact(card, exportButton, error, status));
    const erase = el('button', { type: 'button', class: 'small danger erase-contact', text: t('erase_contact') });
    erase.addEventListener('click', () => openErase(card));
    buttons.push(exportButton, erase);
  }
  return el('div', { class: 'card-block card-actions' },
    el('div', { class: 'button-row' }, buttons),
    error,
    status);
}

async function saveCard(form, card, error, ok) {
  error.textContent = '';
  ok.textContent = '';
  const change = {};
  for (const input of form.querySelectorAll('[data-field]')) {
    const name = input.dataset.field;
    const value = input.value.trim();
    if (name === 'phone' || name === 'email') {
      if (value) change[name] = value;
    } else if (value !== (input.dataset.original || '')) {
      change[name] = value;
    }
  }
  if (!Object.keys(change).length) {
    ok.textContent = t('nothing_to_save');
    return;
  }
  const button = form.querySelector('.card-save');
  button.disabled = true;
  try {
    await api.updateContact(card.id, change);
    // Saved: what was typed is the card now, not something to carry into the new one.
    for (const input of form.querySelectorAll('[data-field]')) input.classList.remove('is-dirty');
    view.flash = { contactId: card.id, text: t('card_saved'), until: Date.now() + 5000 };
    // A new e-mail or phone another contact has raises a suggestion (XB11).
    if (change.email || change.phone) refreshSuggestionsSoon();
    await loadCard(card.id);
  } catch (err) {
    error.textContent = err.message;
    // Point at the field the message is about, when it says.
    const about = /phone/i.test(err.message) ? 'phone' : /e-?mail/i.test(err.message) ? 'email' : /address/i.test(err.message) ? 'address' : null;
    if (about) form.querySelector(`[data-field="${about}"]`)?.focus();
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// A visitor not in the CRM yet (OC16 first step, XB2)

function saveForm(c) {
  const input = el('input', { id: 'customer-name', name: 'name', required: true, maxLength: 200, autocomplete: 'off' });
  const error = el('p', { class: 'form-error', attrs: { role: 'alert' } });
  const form = el('form', { class: 'stack customer-form', noValidate: true },
    el('label', { htmlFor: 'customer-name', text: t('customer_name') }),
    input,
    error,
    el('button', { type: 'submit', class: 'small primary', text: t('save_customer') }));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = input.value.trim();
    if (!name) {
      input.focus();
      return;
    }
    error.textContent = '';
    try {
      await api.saveContact(c.id, name);
      // The header's new contact arrives live in a `conversation` frame.
    } catch (err) {
      error.textContent = err.message;
    }
  });
  return form;
}

/**
 * A search box over the CRM (2 characters or more) listing buttons made by `choice(contact)`;
 * `exclude` (an id, or a function answering one) is left out.
 */
function contactSearch(input, results, error, choice, exclude = null) {
  const search = debounce(async () => {
    const q = input.value.trim();
    if (q.length < 2) {
      results.replaceChildren();
      return;
    }
    try {
      const skip = typeof exclude === 'function' ? exclude() : exclude;
      const found = (await api.contacts(q)).filter((k) => k.id !== skip);
      if (input.value.trim() !== q) return;
      error.textContent = '';
      replaceChildren(results, found.length ? found.map((k) => el('li', {}, choice(k)))
        : el('li', { class: 'hint', text: t('no_customers') }));
    } catch (err) {
      error.textContent = err.message;
    }
  }, 300);
  input.addEventListener('input', search);
  return search;
}

/** Links the visitor to a customer already in the CRM (XB2), found by search. */
function linkForm(c) {
  const input = el('input', { id: 'link-search', type: 'search', autocomplete: 'off' });
  const results = el('ul', { class: 'link-results', attrs: { 'aria-live': 'polite' } });
  const error = el('p', { class: 'form-error', attrs: { role: 'alert' } });
  contactSearch(input, results, error, (k) => el('button', {
    type: 'button', class: 'small link-choice', dataset: { contactId: String(k.id) }, text: t('link_to', { name: k.name }),
  }));
  results.addEventListener('click', async (e) => {
    const button = e.target.closest('.link-choice');
    if (!button) return;
    error.textContent = '';
    button.disabled = true;
    try {
      await api.linkContact(c.id, Number(button.dataset.contactId));
      // The header's contact arrives live in a `conversation` frame.
    } catch (err) {
      error.textContent = err.message;
      button.disabled = false;
    }
  });
  return el('div', { class: 'stack link-form' },
    el('label', { htmlFor: 'link-search', text: t('link_customer') }),
    input,
    el('p', { class: 'hint', text: t('link_search') }),
    results,
    error);
}

// ---------------------------------------------------------------------------------------
// Select text to fill a field (OC16; the menu is selection.js)

/** The fields a selection in the open conversation may fill: `[{ field, label }]`. */
export function selectionFields() {
  const c = state.convs.get(view.convId);
  if (!c || c.kind !== 'visitor' || !view.box?.isConnected || c.id !== state.openId) return [];
  if (!c.contact) return [{ field: 'customer_name', label: t('set_customer_name') }, { field: 'link_search', label: t('set_link_search') }];
  const entry = cards.get(c.contact.id);
  if (!entry || entry.card.erased_at) return [];
  return CARD_FIELDS.map((f) => ({ field: f, label: t(`set_${f}`) }));
}

/**
 * Puts `text` in the card field `name` (or the visitor's name or customer search), marks it
 * changed and focuses it, so the operator checks it and saves. Returns whether it did.
 */
export function fillField(name, text) {
  const box = view.box;
  if (!box?.isConnected) return false;
  const selector = name === 'customer_name' ? '#customer-name' : name === 'link_search' ? '#link-search' : `.card-form [data-field="${name}"]`;
  const input = box.querySelector(selector);
  if (!input) return false;
  const clean = name === 'address' ? text.trim() : text.replace(/\s+/g, ' ').trim();
  input.value = input.maxLength > 0 ? clean.slice(0, input.maxLength) : clean;
  input.dispatchEvent(new Event('input', { bubbles: true }));
  // Between 760 and 1100 px the details open over the conversation.
  if (!document.body.classList.contains('show-details')) {
    document.body.classList.add('show-details');
    $('act-details')?.setAttribute('aria-expanded', 'true');
  }
  const form = input.closest('form');
  const ok = form?.querySelector('.card-ok');
  if (ok) ok.textContent = t('filled_field');
  input.classList.remove('is-filled');
  void input.offsetWidth;
  input.classList.add('is-filled');
  input.scrollIntoView({ block: 'center' });
  input.focus({ preventScroll: true });
  const end = input.value.length;
  try {
    input.setSelectionRange(end, end);
  } catch {
    // type=email inputs have no selection API.
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Merge into another customer (ID3, OC19)

let merging = null;

function initMergeDialog() {
  const dialog = $('merge-dialog');
  const input = $('merge-search');
  const results = $('merge-results');
  const error = dialog.querySelector('.form-error');
  merging = { from: null, into: null, search: null };
  merging.search = contactSearch(input, results, error, (k) => el('button', {
    type: 'button', class: 'small merge-choice', dataset: { contactId: String(k.id), name: k.name },
    attrs: { 'aria-pressed': 'false' }, text: t('merge_pick', { name: k.name }),
  }), () => merging.from?.id);
  input.addEventListener('input', () => pickMerge(null));
  results.addEventListener('click', (e) => {
    const button = e.target.closest('.merge-choice');
    if (!button || Number(button.dataset.contactId) === merging.from?.id) return;
    for (const b of results.querySelectorAll('.merge-choice')) b.setAttribute('aria-pressed', String(b === button));
    pickMerge({ id: Number(button.dataset.contactId), name: button.dataset.name });
  });
  dialog.querySelector('form').addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!merging.from || !merging.into) return;
    const { from, into } = merging;
    const submit = $('merge-submit');
    submit.disabled = true;
    error.textContent = '';
    try {
      const merged = await api.mergeContact(from.id, into.id);
      dialog.close();
      toast({ title: t('merged_toast', { name: merged?.name || into.name }) });
      emit('crm', { contacts: [from.id, into.id], merged: true });
      refreshSuggestionsSoon();
    } catch (err) {
      error.textContent = err.message;
      submit.disabled = false;
    }
  });
}

function pickMerge(into) {
  merging.into = into;
  const confirm = $('merge-confirm');
  confirm.hidden = !into;
  confirm.textContent = into ? t('merge_confirm', { from: merging.from?.name || '', into: into.name }) : '';
  $('merge-submit').disabled = !into;
}

function openMerge(card) {
  const dialog = $('merge-dialog');
  merging.from = { id: card.id, name: card.name };
  $('merge-heading').textContent = t('merge_title', { name: card.name });
  $('merge-search').value = '';
  $('merge-results').replaceChildren();
  dialog.querySelector('.form-error').textContent = '';
  pickMerge(null);
  dialog.showModal();
  $('merge-search').focus();
}

// ---------------------------------------------------------------------------------------
// Privacy (XB6), administrators only

async function exportContact(card, button, error, status) {
  error.textContent = '';
  status.textContent = '';
  button.disabled = true;
  try {
    const doc = await api.exportContact(card.id);
    const file = `contact-${card.id}.json`;
    const url = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)], { type: 'application/json' }));
    const link = el('a', { href: url, download: file, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30_000);
    status.textContent = t('exported', { file });
  } catch (err) {
    error.textContent = err.message;
  } finally {
    button.disabled = false;
  }
}

let erasing = null;

function initEraseDialog() {
  const dialog = $('erase-dialog');
  const input = $('erase-confirm');
  const submit = $('erase-submit');
  input.addEventListener('input', () => {
    const typed = input.value.trim();
    submit.disabled = !erasing || !(typed === t('erase_word') || (typed && typed === erasing.name.trim()));
  });
  dialog.querySelector('form').addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!erasing || submit.disabled) return;
    const { id } = erasing;
    const error = dialog.querySelector('.form-error');
    error.textContent = '';
    submit.disabled = true;
    try {
      const done = await api.eraseContact(id);
      dialog.close();
      toast({ title: t('erased_toast') });
      emit('crm', { contacts: [id], erased: true, conversations: done?.conversations || [] });
      refreshSuggestionsSoon();
    } catch (err) {
      error.textContent = err.message;
      submit.disabled = false;
    }
  });
}

function openErase(card) {
  erasing = { id: card.id, name: card.name };
  const dialog = $('erase-dialog');
  $('erase-heading').textContent = t('erase_title', { name: card.name });
  $('erase-label').textContent = t('erase_confirm_label', { name: card.name });
  $('erase-confirm').value = '';
  $('erase-submit').disabled = true;
  dialog.querySelector('.form-error').textContent = '';
  dialog.showModal();
  $('erase-confirm').focus();
}
