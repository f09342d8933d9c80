// The work-area overview shown under pop-up chats (OC2): who is online with their load and
// capacity, how many conversations wait in the queue (GET /api/routing), and my open
// conversations.

import { api } from './api.js';
import { state, convName, channelOf } from './model.js';
import { t } from './strings.js';
import { el, icon, timeEl, replaceChildren, debounce } from './util.js';

const $ = (id) => document.getElementById(id);

/** The overview refreshes this often while shown, and shortly after live changes. */
const REFRESH_MS = 20_000;

let timer = null;
let token = 0;

export const refreshOverviewSoon = debounce(() => refreshOverview(), 800);

/** Starts or stops refreshing, as the overview is shown or hidden. */
export function showOverview(shown) {
  $('overview').hidden = !shown;
  clearInterval(timer);
  timer = null;
  if (shown) {
    refreshOverview();
    timer = setInterval(refreshOverview, REFRESH_MS);
  }
}

export async function refreshOverview() {
  if ($('overview').hidden) return;
  const mine = ++token;
  try {
    const [routing, open] = await Promise.all([
      api.routing(),
      api.conversations({ status: 'open', assignee: 'me', limit: 50 }),
    ]);
    if (mine !== token) return;
    render(routing, open);
  } catch {
    // Try again at the next refresh.
  }
}

function render(routing, open) {
  $('overview-queue').textContent = t('queue_count', { count: routing.queue.length });
  replaceChildren($('overview-operators'), routing.online.length
    ? routing.online.map((o) => el('li', { class: 'overview-operator' },
      el('span', { class: 'op-name', text: o.name }),
      o.available ? null : el('span', { class: 'badge', text: t('away_badge') }),
      el('span', { class: 'load-meter', attrs: { role: 'img', 'aria-label': t('load_of', { load: o.load, capacity: o.capacity }) } },
        el('span', { class: 'load-text', text: t('load_capacity', { load: o.load, capacity: o.capacity }) }),
        meter(o.load, o.capacity))))
    : el('li', { class: 'hint', text: t('nobody_online') }));
  replaceChildren($('overview-mine'), open.length
    ? open.map((c) => {
      const known = state.convs.get(c.id) || c;
      const ch = channelOf(known);
      return el('li', {},
        el('a', { href: `#/c/${c.id}`, class: 'overview-conv' },
          el('span', { class: `chan-icon chan-${ch.kind}`, title: ch.title }, icon(ch.kind)),
          el('span', { class: 'conv-name', text: convName(known) }),
          known.unread ? el('span', { class: 'unread-badge', title: t('unread_label', { count: known.unread }) },
            el('span', { class: 'unread-count', attrs: { 'aria-hidden': 'true' }, text: String(known.unread) }),
            el('span', { class: 'visually-hidden', text: t('unread_label', { count: known.unread }) })) : null,
          timeEl(known.updated_at)));
    })
    : el('li', { class: 'hint', text: t('none') }));
}

function meter(load, capacity) {
  const bar = el('span', { class: 'meter' }, el('span', { class: 'meter-fill' }));
  const ratio = capacity > 0 ? Math.min(1, load / capacity) : 1;
  // CSSOM, not a style attribute: allowed under the page's strict CSP.
  bar.firstChild.style.width = `${Math.round(ratio * 100)}%`;
  bar.classList.toggle('is-full', ratio >= 1);
  return bar;
}
