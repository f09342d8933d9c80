// The details panel of the open conversation: the customer (save the visitor as a CRM
// contact, OC16 first step, XB2), the conversation's facts, and the assignment audit trail
// (XB12); for an internal chat, its members.

import { api } from './api.js';
import { state, channelOf, isInternal } from './model.js';
import { t } from './strings.js';
import { el, fullTime, timeEl, replaceChildren, debounce } from './util.js';

const $ = (id) => document.getElementById(id);

/** Customer cards (GET /api/contacts/{id}) by contact id, as last loaded. */
const cards = new Map();
let cardToken = 0;

/** Loads the customer card of contact `contactId` and redraws the panel. */
async function loadCard(contactId, c) {
  const mine = ++cardToken;
  try {
    const card = await api.contact(contactId);
    cards.set(contactId, card);
    if (mine === cardToken && shownId === c.id) renderDetails(state.convs.get(c.id));
  } catch {
    // The name from the header is enough to go on with.
  }
}

/** The audit trail of the conversation shown, as last loaded. */
let trail = { id: null, entries: null };
let shownId = null;
let shownContact = null;
let trailToken = 0;

export function initDetails() {
  $('act-details').addEventListener('click', () => {
    const open = !document.body.classList.contains('show-details');
    document.body.classList.toggle('show-details', open);
    $('act-details').setAttribute('aria-expanded', String(open));
  });
}

/** Loads the audit trail of conversation `id` (GET …/assignments). */
export async function loadTrail(id) {
  const c = state.convs.get(id);
  if (c && isInternal(c)) return;
  const mine = ++trailToken;
  try {
    const entries = await api.assignments(id);
    if (mine !== trailToken) return;
    trail = { id, entries };
    renderDetails(state.convs.get(id));
  } catch {
    // The panel keeps what it had; the next assignment event loads it again.
  }
}

/** The customer card (OC16, OC20): name, tags, identifiers, and their conversations. */
function customerCard(c, card) {
  const node = el('div', { class: 'customer-card' },
    el('p', { class: 'contact-name' }, c.contact.name,
      card?.vip ? el('span', { class: 'badge badge-vip', text: t('vip') }) : null,
      card?.bad ? el('span', { class: 'badge badge-bad', text: t('bad') }) : null));
  if (!card) return node;
  const facts = [];
  if (card.email) facts.push(fact(t('field_email'), card.email));
  if (card.phone) facts.push(fact(t('field_phone'), card.phone));
  if (facts.length) node.append(el('dl', { class: 'facts' }, facts));
  const convs = card.conversations || [];
  if (convs.length) {
    node.append(el('p', { class: 'hint', text: t('customer_conversations', { count: convs.length }) }),
      el('ul', { class: 'customer-convs' }, convs.map((x) => el('li', {},
        el('a', { href: `#/c/${x.id}`, attrs: x.id === c.id ? { 'aria-current': 'true' } : {} },
          t('customer_conversation', {
            id: x.id,
            channel: state.channels.get(x.channel)?.title || x.channel,
            status: x.status === 'closed' ? t('status_closed') : t('status_open'),
            messages: x.messages,
          })),
        ' ', timeEl(x.created_at)))));
  }
  return node;
}

/** Links the visitor to a customer already in the CRM (XB2), found by search. */
function linkForm(c, typed) {
  const input = el('input', { id: 'link-search', type: 'search', autocomplete: 'off', value: typed || '' });
  const results = el('ul', { class: 'link-results', attrs: { 'aria-live': 'polite' } });
  const error = el('p', { class: 'form-error', attrs: { role: 'alert' } });
  const search = debounce(async () => {
    const q = input.value.trim();
    if (q.length < 2) {
      results.replaceChildren();
      return;
    }
    try {
      const found = await api.contacts(q);
      if (input.value.trim() !== q) return;
      replaceChildren(results, found.length ? found.map((k) => el('li', {},
        el('button', { type: 'button', class: 'small link-choice', dataset: { contactId: String(k.id) }, text: t('link_to', { name: k.name }) })))
        : el('li', { class: 'hint', text: t('no_customers') }));
    } catch (err) {
      error.textContent = err.message;
    }
  }, 300);
  input.addEventListener('input', search);
  results.addEventListener('click', async (e) => {
    const button = e.target.closest('.link-choice');
    if (!button) return;
    error.textContent = '';
    try {
      await api.linkContact(c.id, Number(button.dataset.contactId));
      // The header's contact arrives live in a `conversation` frame.
    } catch (err) {
      error.textContent = err.message;
    }
  });
  if (typed) search();
  return el('div', { class: 'stack link-form' },
    el('label', { htmlFor: 'link-search', text: t('link_customer') }),
    input,
    el('p', { class: 'hint', text: t('link_search') }),
    results,
    error);
}

function fact(term, value) {
  return [el('dt', { text: term }), el('dd', {}, value)];
}

/** Redraws the panel for conversation `c`. Forms being typed in are kept. */
export function renderDetails(c) {
  const body = $('details-body');
  if (!c) {
    body.replaceChildren();
    shownId = null;
    return;
  }
  const sameConversation = shownId === c.id;
  shownId = c.id;
  if (isInternal(c)) {
    replaceChildren(body,
      el('section', { class: 'details-section' },
        el('h3', { text: t('internal_chat') }),
        el('ul', { class: 'member-list' }, (c.members || []).map((m) => el('li', { text: m.name })))));
    return;
  }
  // Keep a half-typed customer name across redraws of the same conversation.
  const typed = sameConversation ? body.querySelector('#customer-name')?.value : '';
  const ch = channelOf(c);
  const customer = el('section', { class: 'details-section', attrs: { 'aria-labelledby': 'customer-heading' } },
    el('h3', { id: 'customer-heading', text: t('customer') }));
  if (c.contact) {
    const card = cards.get(c.contact.id);
    // Fresh on opening, and when this conversation's customer changes (linked, merged).
    if (!card || !sameConversation || shownContact !== c.contact.id) loadCard(c.contact.id, c);
    shownContact = c.contact.id;
    customer.append(customerCard(c, card));
  } else {
    shownContact = null;
    const input = el('input', { id: 'customer-name', name: 'name', required: true, maxLength: 200, autocomplete: 'off', value: typed || '' });
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
    customer.append(form, linkForm(c, sameConversation ? body.querySelector('#link-search')?.value : ''));
  }
  const facts = el('section', { class: 'details-section' },
    el('h3', { text: t('conversation_info') }),
    el('dl', { class: 'facts' },
      fact(t('number_label'), t('number', { number: c.number ?? c.id })),
      fact(t('channel'), ch.title),
      fact(t('status'), c.status === 'closed' ? t('status_closed') : t('status_open')),
      fact(t('started'), fullTime(c.created_at))));
  const entries = trail.id === c.id ? trail.entries : null;
  const history = el('section', { class: 'details-section', attrs: { 'aria-labelledby': 'trail-heading' } },
    el('h3', { id: 'trail-heading', text: t('assignment_trail') }),
    el('p', { class: 'trail-owner', text: c.assignee ? t('responsible', { name: c.assignee.name }) : t('nobody_responsible') }),
    entries === null ? el('p', { class: 'hint', text: t('loading') })
      : entries.length === 0 ? el('p', { class: 'hint', text: t('trail_empty') })
        : el('ol', { class: 'trail' }, entries.map((e) => el('li', { class: 'trail-entry' },
          el('span', { class: 'trail-move', text: t('trail_entry', { from: e.from ? e.from.name : t('trail_nobody'), to: e.to ? e.to.name : t('trail_queue') }) }),
          el('span', { class: 'trail-by', text: e.by ? t('trail_by', { name: e.by.name }) : t('trail_by_system', { reason: e.reason || '' }) }),
          e.by && e.reason ? el('span', { class: 'trail-reason', text: e.reason }) : null,
          timeEl(e.at)))));
  const focused = document.activeElement && body.contains(document.activeElement) ? document.activeElement.id : null;
  replaceChildren(body, customer, facts, history);
  if (focused && $(focused)) $(focused).focus();
}
