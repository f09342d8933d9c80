// Small DOM and text helpers. Everything a visitor or an operator wrote reaches the page
// through `el(...)` children or `highlight(...)`, which only ever create text nodes and
// elements by name: no HTML string is parsed anywhere in the console.

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * Creates an element. `props`: `class`, `text`, `dataset`, `attrs` (setAttribute), `on`
 * (event listeners), and any other property assigned as is (`type`, `value`, `hidden`...).
 * Children: nodes, or strings (as text nodes); null and false are skipped.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'attrs') for (const [a, v] of Object.entries(value)) {
      if (v !== undefined && v !== null && v !== false) node.setAttribute(a, v === true ? '' : String(v));
    }
    else if (key === 'on') for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else node[key] = value;
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
}

/** Removes every child of `node`, then appends `children`. */
export function replaceChildren(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

// Icons: 24×24 stroked paths, drawn in the current text colour.
const ICONS = {
  web: ['M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z', 'M3.5 9h17M3.5 15h17', 'M12 3c-2.8 2.6-4 5.8-4 9s1.2 6.4 4 9M12 3c2.8 2.6 4 5.8 4 9s-1.2 6.4-4 9'],
  email: ['M3 5.5h18v13H3z', 'M3.5 6.5l8.5 6.5 8.5-6.5'],
  whatsapp: ['M4 20.5l1.3-4.2A8.5 8.5 0 1 1 8.2 19z', 'M9.2 8.3c-.4 2.8 3.4 6.8 6.4 6.6l.8-1.7-2-1.1-1 .9c-1-.4-2.2-1.6-2.6-2.6l.9-1-1-2z'],
  sms: ['M4 5h16v11H10l-5 4v-4H4z', 'M8.5 10.5h.01M12 10.5h.01M15.5 10.5h.01'],
  telegram: ['M21 4L2.5 11.2l6.2 2.1L18 7.5l-7.2 7.3 7.7 5.7z', 'M8.7 13.3l1 5.7 2.7-3.1'],
  other: ['M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z', 'M8 12h.01M12 12h.01M16 12h.01'],
  internal: ['M9 11a3 3 0 1 0 0-6a3 3 0 0 0 0 6z', 'M3 20c0-3.3 2.7-6 6-6s6 2.7 6 6', 'M15.5 5.2a3 3 0 0 1 0 5.6', 'M17.5 14.2c2 .8 3.5 3 3.5 5.8'],
  check: ['M5 12.5l4.5 4.5L19 7.5'],
  checks: ['M2.5 12.5L7 17l9.5-9.5', 'M11.5 15.5L13 17l9.5-9.5'],
  clock: ['M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z', 'M12 7v5.2l3.3 2'],
  cross: ['M6 6l12 12M18 6L6 18'],
  back: ['M15 5l-7 7 7 7'],
  dots: ['M5 12h.01M12 12h.01M19 12h.01'],
  quote: ['M9 14l-4-4 4-4', 'M5 10h9a5 5 0 0 1 5 5v4'],
  clip: ['M20.5 11.2l-8.3 8.3a5.3 5.3 0 0 1-7.5-7.5l8.6-8.6a3.6 3.6 0 0 1 5.1 5.1l-8.6 8.6a1.8 1.8 0 0 1-2.6-2.6l7.9-7.9'],
  merge: ['M6 4v5a5 5 0 0 0 5 5h7', 'M15 11l3 3-3 3', 'M6 20v-3'],
};

/** An inline SVG icon, hidden from assistive technology (the caller labels it). */
export function icon(name, className = '') {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', `icon icon-${name} ${className}`.trim());
  for (const d of ICONS[name] || ICONS.other) {
    const path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}

// ---------------------------------------------------------------------------------------
// Search highlighting (OC7)

/** Whether a character is a letter or a digit (the server's search terms are made of them). */
const WORD = /[\p{L}\p{N}]/u;

/**
 * Folds `text` for matching: lower case, accents removed. Returns the folded string and,
 * for each of its UTF-16 units, the index in `text` where it came from.
 */
function fold(text) {
  let folded = '';
  const origin = [];
  let i = 0;
  for (const ch of text) {
    const f = ch.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
    for (let k = 0; k < f.length; k++) origin.push(i);
    folded += f;
    i += ch.length;
  }
  origin.push(text.length);
  return { folded, origin };
}

/** The folded form of a search term. */
function foldTerm(term) {
  return term.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
}

/**
 * `[start, end)` ranges of `text` where a word starts with one of `terms` (prefix match,
 * as the server's full-text search), merged and in order.
 */
export function matchRanges(text, terms) {
  const wanted = (terms || []).map(foldTerm).filter(Boolean);
  if (!wanted.length || !text) return [];
  const { folded, origin } = fold(text);
  const ranges = [];
  for (const term of wanted) {
    let from = 0;
    for (;;) {
      const at = folded.indexOf(term, from);
      if (at < 0) break;
      from = at + 1;
      const before = at > 0 ? folded[at - 1] : '';
      if (before && WORD.test(before)) continue; // not at the start of a word
      ranges.push([origin[at], origin[at + term.length]]);
    }
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const merged = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else merged.push([...r]);
  }
  return merged;
}

/**
 * `text` as a fragment of text nodes, with the parts that match `terms` wrapped in `<mark>`
 * elements. Built with DOM calls only, so markup in `text` stays literal text.
 */
export function highlight(text, terms) {
  const frag = document.createDocumentFragment();
  let at = 0;
  for (const [start, end] of matchRanges(text, terms)) {
    if (start > at) frag.append(document.createTextNode(text.slice(at, start)));
    const mark = document.createElement('mark');
    mark.textContent = text.slice(start, end);
    frag.append(mark);
    at = end;
  }
  if (at < text.length) frag.append(document.createTextNode(text.slice(at)));
  return frag;
}

// ---------------------------------------------------------------------------------------
// Time, timers and ids

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** A short time: the hour today, else the day. */
export function shortTime(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const now = new Date();
  return d.toDateString() === now.toDateString() ? timeFormat.format(d) : dayFormat.format(d);
}

/** Date and time. */
export function fullTime(ms) {
  return ms ? fullFormat.format(new Date(ms)) : '';
}

/** A `<time>` element with the short time and the full one as its title. */
export function timeEl(ms, className = 'time') {
  return el('time', { class: className, dateTime: new Date(ms).toISOString(), title: fullTime(ms), text: shortTime(ms) });
}

/** `fn` called once `ms` have passed without another call; `.flush()` runs it now, `.cancel()` drops it. */
export function debounce(fn, ms) {
  let timer = null;
  let lastArgs = null;
  const run = () => {
    timer = null;
    const args = lastArgs;
    lastArgs = null;
    fn(...args);
  };
  const wrapped = (...args) => {
    lastArgs = args;
    clearTimeout(timer);
    timer = setTimeout(run, ms);
  };
  wrapped.flush = () => {
    if (timer !== null) {
      clearTimeout(timer);
      run();
    }
  };
  wrapped.cancel = () => {
    clearTimeout(timer);
    timer = null;
    lastArgs = null;
  };
  wrapped.pending = () => timer !== null;
  return wrapped;
}

/**
 * A fresh idempotency key (`client_id`, at most 64 bytes): the prefix, the time in 9
 * base-36 digits of milliseconds, then 64 random bits. Ids that start with the time land at
 * the end of the server's client-id index instead of anywhere in it (docs/PROTOCOL.md).
 */
export function newClientId(prefix = 'o') {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  const time = Date.now().toString(36).padStart(9, '0');
  return `${prefix}-${time}${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** The first `n` characters of a one-line version of `text`. */
export function snippet(text, n = 120) {
  const line = String(text || '').replace(/\s+/g, ' ').trim();
  return line.length > n ? `${line.slice(0, n - 1)}…` : line;
}
