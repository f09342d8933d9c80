// The details panel of the open conversation: the customer (crm.js: the card, or save and
// link a visitor), the conversation's facts, the e-mails sent to the visitor (EC3, CF8) and
// the assignment audit trail (XB12); for an internal chat, its members. Each section is
// redrawn on its own, so a form being typed in one survives changes to another.

import { api } from './api.js';
import { state, channelOf, isInternal } from './model.js';
import { renderCustomer } from './crm.js';
import { t } from './strings.js';
import { el, icon, fullTime, timeEl, replaceChildren, debounce } from './util.js';

const $ = (id) => document.getElementById(id);

/** While an e-mail is pending, its state is fetched again this often (no frame says so). */
const EMAILS_POLL_MS = 15_000;

/** The audit trail of the conversation shown, as last loaded. */
let trail = { id: null, entries: null };
let trailToken = 0;
/** The e-mails of the conversation shown, as last loaded. */
let emails = { id: null, list: null, error: null };
let emailsToken = 0;
let emailsTimer = null;

/** The conversation the panel shows, and its sections. */
let shownId = null;
let boxes = null;

export function initDetails() {
  $('act-details').addEventListener('click', () => {
    const open = !document.body.classList.contains('show-details');
    document.body.classList.toggle('show-details', open);
    $('act-details').setAttribute('aria-expanded', String(open));
  });
  // Where the details open over the conversation, they close from inside too.
  $('details-close').append(icon('cross'));
  $('details-close').addEventListener('click', () => {
    document.body.classList.remove('show-details');
    $('act-details').setAttribute('aria-expanded', 'false');
    $('act-details').focus();
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
    if (shownId === id && boxes) renderTrail(boxes.trail, state.convs.get(id));
  } catch {
    // The panel keeps what it had; the next assignment event loads it again.
  }
}

/** Loads what was e-mailed to the visitor of conversation `id` (GET …/emails). */
export async function loadEmails(id) {
  const c = state.convs.get(id);
  if (c && isInternal(c)) return;
  const mine = ++emailsToken;
  clearTimeout(emailsTimer);
  try {
    const list = await api.emails(id);
    if (mine !== emailsToken) return;
    emails = { id, list, error: null };
  } catch (e) {
    if (mine !== emailsToken) return;
    emails = { id, list: emails.id === id ? emails.list : null, error: e.message };
  }
  if (shownId === id && boxes) renderEmails(boxes.emails, state.convs.get(id));
  if (shownId === id && emails.list?.some((m) => m.status === 'pending')) {
    emailsTimer = setTimeout(() => {
      if (shownId === id) loadEmails(id);
    }, EMAILS_POLL_MS);
  }
}

const reloadEmailsSoonOnce = debounce((id) => {
  if (shownId === id) loadEmails(id);
}, 1000);
const reloadEmailsLater = debounce((id) => {
  if (shownId === id) loadEmails(id);
}, 3500);

/**
 * The e-mails again in a moment (an e-mail card was answered, a transcript asked for): the
 * server's timers fire every second, so once soon and once a little later.
 */
export function reloadEmailsSoon(id) {
  reloadEmailsSoonOnce(id);
  reloadEmailsLater(id);
}

function fact(term, value) {
  return [el('dt', { text: term }), el('dd', {}, value)];
}

function section(id, title) {
  return el('section', { class: 'details-section', id: `${id}-section`, attrs: { 'aria-labelledby': `${id}-heading` } },
    el('h3', { id: `${id}-heading`, text: title }));
}

/** Redraws the panel for conversation `c`. */
export function renderDetails(c) {
  const body = $('details-body');
  if (!c) {
    body.replaceChildren();
    shownId = null;
    boxes = null;
    clearTimeout(emailsTimer);
    return;
  }
  if (isInternal(c)) {
    shownId = c.id;
    boxes = null;
    replaceChildren(body,
      el('section', { class: 'details-section' },
        el('h3', { text: t('internal_chat') }),
        el('ul', { class: 'member-list' }, (c.members || []).map((m) => el('li', { text: m.name })))));
    return;
  }
  if (shownId !== c.id || !boxes) {
    shownId = c.id;
    boxes = {
      customer: el('section', { class: 'details-section customer-section', attrs: { 'aria-labelledby': 'customer-heading' } }),
      facts: section('facts', t('conversation_info')),
      emails: section('emails', t('emails')),
      trail: section('trail', t('assignment_trail')),
    };
    replaceChildren(body, boxes.customer, boxes.facts, boxes.emails, boxes.trail);
    if (emails.id !== c.id) emails = { id: c.id, list: null, error: null };
    loadEmails(c.id);
  }
  renderCustomer(boxes.customer, c);
  renderFacts(boxes.facts, c);
  renderEmails(boxes.emails, c);
  renderTrail(boxes.trail, c);
}

function renderFacts(box, c) {
  const ch = channelOf(c);
  replaceChildren(box,
    el('h3', { id: 'facts-heading', text: t('conversation_info') }),
    el('dl', { class: 'facts' },
      fact(t('number_label'), t('number', { number: c.number ?? c.id })),
      fact(t('channel'), ch.title),
      fact(t('status'), c.status === 'closed' ? t('status_closed') : t('status_open')),
      fact(t('started'), fullTime(c.created_at))));
}

/** The e-mails to the visitor (CF8, CF5, EC3): subject, state with the last error, time. */
function renderEmails(box, c) {
  const list = emails.id === c.id ? emails.list : null;
  const refresh = el('button', { type: 'button', class: 'small ghost emails-refresh', text: t('emails_refresh') });
  refresh.addEventListener('click', () => loadEmails(c.id));
  let content;
  if (list === null) content = el('p', { class: 'hint', text: emails.error ? t('error_prefix', { message: emails.error }) : t('loading') });
  else if (!list.length) content = el('p', { class: 'hint', text: t('emails_empty') });
  else {
    content = el('ul', { class: 'email-list' }, list.map((m) => el('li', { class: `email email-${m.status}`, dataset: { emailId: String(m.id), status: m.status } },
      el('p', { class: 'email-subject', text: m.subject }),
      el('p', { class: 'email-meta' },
        el('span', { class: `badge email-status status-${m.status}`, text: t(`email_status_${m.status}`) === `email_status_${m.status}` ? m.status : t(`email_status_${m.status}`) }),
        ' ',
        el('span', { class: 'email-to', text: t('email_to', { address: m.to_address }) }),
        ' ',
        timeEl(m.sent_at || m.created_at)),
      m.last_error && (m.status === 'pending' || m.status === 'failed') ? el('p', { class: 'email-error', text: t('email_error', { message: m.last_error }) }) : null)));
  }
  const focused = box.contains(document.activeElement) && document.activeElement.classList.contains('emails-refresh');
  replaceChildren(box,
    el('div', { class: 'section-head' }, el('h3', { id: 'emails-heading', text: t('emails') }), refresh),
    content,
    emails.error && list !== null ? el('p', { class: 'form-error', text: emails.error }) : null);
  if (focused) refresh.focus();
}

function renderTrail(box, c) {
  const entries = trail.id === c.id ? trail.entries : null;
  replaceChildren(box,
    el('h3', { id: 'trail-heading', text: t('assignment_trail') }),
    el('p', { class: 'trail-owner', text: c.assignee ? t('responsible', { name: c.assignee.name }) : t('nobody_responsible') }),
    entries === null ? el('p', { class: 'hint', text: t('loading') })
      : entries.length === 0 ? el('p', { class: 'hint', text: t('trail_empty') })
        : el('ol', { class: 'trail' }, entries.map((e) => el('li', { class: 'trail-entry' },
          el('span', { class: 'trail-move', text: t('trail_entry', { from: e.from ? e.from.name : t('trail_nobody'), to: e.to ? e.to.name : t('trail_queue') }) }),
          el('span', { class: 'trail-by', text: e.by ? t('trail_by', { name: e.by.name }) : t('trail_by_system', { reason: e.reason || '' }) }),
          e.by && e.reason ? el('span', { class: 'trail-reason', text: e.reason }) : null,
          timeEl(e.at)))));
}
