/*! Charla visitor widget. Embed with
 *    <script src="https://HOST/widget/charla.js" data-channel="web" async></script>
 *  See docs/WIDGET.md. No framework, no build step, no globals: everything lives in this
 *  closure and renders inside a shadow root attached to one <div data-charla-widget>.
 *
 *  One file on purpose: a widget on another site cannot load ES modules from the Charla
 *  server without CORS headers on static files, and a second classic script could only
 *  talk to this one through a global. Sections, in order: boot, strings, storage, DOM
 *  helpers, the view, the conversation model, the socket, forms, uploads, start.
 *
 *  Rules kept throughout: text from visitors, operators and settings is only ever put in
 *  the page with textContent / createTextNode (never innerHTML); no eval, no inline handlers,
 *  no style attributes (CSP-friendly); storage keys are namespaced
 *  `charla:<server origin>:<channel>:<key>`.
 */
(() => {
  'use strict';

  // =====================================================================================
  // Boot: who embedded us, and with what
  // =====================================================================================

  const SCRIPT_PATH = '/widget/charla.js';

  /** This script's element: `document.currentScript`, else the last one with our src. */
  function ownScript() {
    if (document.currentScript && document.currentScript.src) return document.currentScript;
    const all = Array.from(document.getElementsByTagName('script')).filter((s) => {
      try {
        return new URL(s.src, location.href).pathname.endsWith(SCRIPT_PATH);
      } catch {
        return false;
      }
    });
    return all[all.length - 1] || null;
  }

  const script = ownScript();
  if (!script) return;
  const SRC = new URL(script.src, location.href);
  /** The Charla server: where this script came from, not the page's origin. */
  const ORIGIN = SRC.origin;
  const WS_URL = `${ORIGIN.replace(/^http/, 'ws')}/ws/visitor`;
  const attr = (name) => {
    const v = script.getAttribute(`data-${name}`);
    return v === null ? null : v.trim();
  };
  const CHANNEL = attr('channel') || 'web';
  const FORCED_LANG = ['es', 'en'].includes(attr('lang')) ? attr('lang') : null;
  const OPEN_AT_START = attr('open') === 'true';
  /** A logged-in user of the site, vouched for by the site's server (ID8). */
  const IDENTITY = attr('user-id')
    ? {
        user_id: attr('user-id'),
        signature: attr('user-signature') || '',
        name: attr('user-name') || null,
        email: attr('user-email') || null,
      }
    : null;

  // One widget per channel and page, however often the script is included.
  for (const el of document.querySelectorAll('[data-charla-widget]')) {
    if (el.getAttribute('data-channel') === CHANNEL) return;
  }

  /**
   * The code of a "continue the conversation" link from an e-mail (CF8, XB10), if the page
   * was opened by one: the server's `/continue` page passes it as `data-continue`, a
   * customer's site (the channel's `site_url`) gets it in the address as
   * `#charla-continue=<code>`, which is taken out of the address bar at once so it is not
   * bookmarked or shared.
   */
  function continueFromHash() {
    const hash = location.hash || '';
    const m = /(?:^#|&)charla-continue=([^&]*)/.exec(hash);
    if (!m) return null;
    let code = m[1];
    try {
      code = decodeURIComponent(code);
    } catch {}
    const rest = hash
      .slice(1)
      .split('&')
      .filter((part) => !part.startsWith('charla-continue='))
      .join('&');
    try {
      history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
    } catch {}
    return code.trim() || null;
  }

  /** Reconnection delays in ms: 1 s, 2 s, 5 s, then every 10 s. */
  const BACKOFF_MS = [1000, 2000, 5000, 10000];
  /** Keep-alive: a JSON ping this often while connected... */
  const PING_EVERY_MS = 20000;
  /** ...and a socket that has said nothing this long after it is treated as dead. */
  const PONG_TIMEOUT_MS = 10000;
  /** Typing stops being announced this long after the last keystroke. */
  const TYPING_IDLE_MS = 3000;
  /** An operator's "typing" hides by itself after this long without news. */
  const TYPING_SHOW_MS = 8000;
  /** Messages kept in localStorage to show the history again after a reload. */
  const HISTORY_MAX = 300;

  // =====================================================================================
  // Strings: one table per language (CF10)
  // =====================================================================================

  // This file is kept pure ASCII (accents written as \u escapes): the server sends it as
  // `text/javascript` without a charset, and a page in another encoding would otherwise
  // turn "Conversaci\u00f3n" into mojibake. tests/browser/widget.test.mjs checks it.

  const STRINGS = {
    en: {
      open: 'Open chat',
      close: 'Minimise chat',
      unread: (n) => `${n} unread`,
      conversation: (n) => `Conversation #${n}`,
      online: 'We are online',
      offline: 'We are away right now',
      connecting: 'Connecting\u2026',
      reconnecting: 'Connection lost. Reconnecting\u2026',
      offlineNotice: 'You are offline. Messages will be sent when you are back online.',
      greeting: 'Hi! How can we help you?',
      placeholder: 'Write a message\u2026',
      placeholderClosed: 'Write to start the conversation again\u2026',
      send: 'Send',
      attach: 'Send a file',
      pending: 'Sending\u2026',
      waiting: 'Waiting for connection',
      failed: (why) => `Not sent: ${why}`,
      seen: 'Seen',
      you: 'You',
      typing: (name) => (name ? `${name} is typing\u2026` : 'Someone is typing\u2026'),
      queue: (n) => `You are number ${n} in the queue`,
      joined: (name) => `${name} joined the conversation`,
      closed: 'Conversation closed',
      closedInactivity: 'Conversation closed after a period of inactivity',
      reopened: 'Conversation reopened',
      formEvent: (parts) => `You shared your details: ${parts}`,
      closedNotice: 'This conversation is closed. Write a message to open it again.',
      name: 'Name',
      email: 'E-mail',
      phone: 'Phone',
      optional: '(optional)',
      submit: 'Send',
      start: 'Start chat',
      dismiss: 'Not now',
      dismissError: 'Close',
      nameFormText: 'Please type your name so we know how to address you.',
      offlineText: 'Nobody can answer right now. Leave your e-mail to be notified when you get a reply.',
      prechatText: 'Before we start, please tell us a little about yourself.',
      required: (field) => `Please fill in: ${field}.`,
      refused: (why) => `The form was not accepted: ${why}`,
      thanksName: (name) => `Thank you, ${name}!`,
      thanksOffline: (email) => `Thank you! We will write to you at ${email}.`,
      identityError: 'We could not verify your account, so the chat cannot start. Please reload the page or sign in again.',
      identityRequired: 'Please sign in to the site to chat with us.',
      channelError: (why) => `The chat is not available: ${why}`,
      uploading: (name) => `Uploading ${name}\u2026`,
      uploadFailed: (name, why) => `Could not send \u201c${name}\u201d: ${why}`,
      uploadOffline: 'You are offline: try again when you are connected.',
      networkError: 'the connection failed',
      file: 'File',
      poweredBy: 'Chat by Charla',
      // Replies (OC10)
      reply: 'Reply',
      replyTo: (name) => `Reply to ${name}`,
      replyingTo: (name) => `Replying to ${name}`,
      cancelReply: 'Cancel reply',
      previousMessage: 'a previous message',
      // Offers in the conversation (CF5, EC3)
      transcriptOffer: 'Send a copy of this conversation to your e-mail?',
      emailOffer: 'Leave your e-mail so we can answer you by e-mail.',
      noThanks: 'No thanks',
      transcriptDone: (email) => (email ? `We will e-mail you a copy at ${email}.` : 'We will e-mail you a copy.'),
      emailDone: (email) => (email ? `Thanks, we will write to you at ${email}.` : 'Thanks, we will write to you.'),
      // Continue links (CF8)
      continueFailed: (why) => `This conversation link cannot be used: ${why}`,
    },
    es: {
      open: 'Abrir el chat',
      close: 'Minimizar el chat',
      unread: (n) => `${n} sin leer`,
      conversation: (n) => `Conversaci\u00f3n #${n}`,
      online: 'Estamos en l\u00ednea',
      offline: 'Ahora no estamos disponibles',
      connecting: 'Conectando\u2026',
      reconnecting: 'Se ha perdido la conexi\u00f3n. Reconectando\u2026',
      offlineNotice: 'No tiene conexi\u00f3n. Los mensajes se enviar\u00e1n cuando vuelva a estar en l\u00ednea.',
      greeting: '\u00a1Hola! \u00bfEn qu\u00e9 podemos ayudarle?',
      placeholder: 'Escriba un mensaje\u2026',
      placeholderClosed: 'Escriba para reanudar la conversaci\u00f3n\u2026',
      send: 'Enviar',
      attach: 'Enviar un archivo',
      pending: 'Enviando\u2026',
      waiting: 'Esperando conexi\u00f3n',
      failed: (why) => `No enviado: ${why}`,
      seen: 'Visto',
      you: 'Usted',
      typing: (name) => (name ? `${name} est\u00e1 escribiendo\u2026` : 'Alguien est\u00e1 escribiendo\u2026'),
      queue: (n) => `Usted es el n\u00famero ${n} en la cola`,
      joined: (name) => `${name} se ha unido a la conversaci\u00f3n`,
      closed: 'Conversaci\u00f3n cerrada',
      closedInactivity: 'Conversaci\u00f3n cerrada por inactividad',
      reopened: 'Conversaci\u00f3n reabierta',
      formEvent: (parts) => `Ha compartido sus datos: ${parts}`,
      closedNotice: 'Esta conversaci\u00f3n est\u00e1 cerrada. Escriba un mensaje para reabrirla.',
      name: 'Nombre',
      email: 'E-mail',
      phone: 'Tel\u00e9fono',
      optional: '(opcional)',
      submit: 'Enviar',
      start: 'Empezar el chat',
      dismiss: 'Ahora no',
      dismissError: 'Cerrar',
      nameFormText: 'Por favor, escriba su nombre para saber c\u00f3mo dirigirnos a usted.',
      offlineText: 'Ahora nadie puede responder. Deje por favor su e-mail para ser notificado cuando reciba una contestaci\u00f3n.',
      prechatText: 'Antes de empezar, cu\u00e9ntenos un poco sobre usted.',
      required: (field) => `Por favor, rellene: ${field}.`,
      refused: (why) => `El formulario no se ha aceptado: ${why}`,
      thanksName: (name) => `\u00a1Gracias, ${name}!`,
      thanksOffline: (email) => `\u00a1Gracias! Le escribiremos a ${email}.`,
      identityError: 'No hemos podido verificar su cuenta, as\u00ed que el chat no puede empezar. Recargue la p\u00e1gina o vuelva a iniciar sesi\u00f3n.',
      identityRequired: 'Inicie sesi\u00f3n en el sitio para hablar con nosotros.',
      channelError: (why) => `El chat no est\u00e1 disponible: ${why}`,
      uploading: (name) => `Subiendo ${name}\u2026`,
      uploadFailed: (name, why) => `No se pudo enviar \u00ab${name}\u00bb: ${why}`,
      uploadOffline: 'No tiene conexi\u00f3n: int\u00e9ntelo de nuevo cuando est\u00e9 en l\u00ednea.',
      networkError: 'fall\u00f3 la conexi\u00f3n',
      file: 'Archivo',
      poweredBy: 'Chat de Charla',
      reply: 'Responder',
      replyTo: (name) => `Responder a ${name}`,
      replyingTo: (name) => `Respondiendo a ${name}`,
      cancelReply: 'Cancelar la respuesta',
      previousMessage: 'un mensaje anterior',
      transcriptOffer: '\u00bfQuiere recibir una copia de esta conversaci\u00f3n en su e-mail?',
      emailOffer: 'D\u00e9jenos su e-mail para que podamos responderle por e-mail.',
      noThanks: 'No, gracias',
      transcriptDone: (email) => (email ? `Le enviaremos una copia a ${email}.` : 'Le enviaremos una copia.'),
      emailDone: (email) => (email ? `Gracias, le escribiremos a ${email}.` : 'Gracias, le escribiremos.'),
      continueFailed: (why) => `No se puede usar este enlace de la conversaci\u00f3n: ${why}`,
    },
  };

  /** es or en: `data-lang`, else the channel's `language`, else the browser's. */
  function pickLanguage(channelLanguage) {
    if (FORCED_LANG) return FORCED_LANG;
    if (channelLanguage === 'es' || channelLanguage === 'en') return channelLanguage;
    const browser = (navigator.languages && navigator.languages[0]) || navigator.language || 'en';
    return /^es\b/i.test(browser) ? 'es' : 'en';
  }

  let lang = pickLanguage(null);
  let t = STRINGS[lang];

  // =====================================================================================
  // Storage: localStorage under `charla:<server origin>:<channel>:`, memory when refused
  // =====================================================================================

  const NS = `charla:${ORIGIN}:${CHANNEL}:`;
  const memory = new Map();
  const store = {
    get(key, fallback = null) {
      let raw;
      try {
        raw = window.localStorage.getItem(NS + key);
      } catch {
        raw = memory.has(key) ? memory.get(key) : null;
      }
      if (raw === null || raw === undefined) return fallback;
      try {
        return JSON.parse(raw);
      } catch {
        return fallback;
      }
    },
    set(key, value) {
      const raw = JSON.stringify(value);
      try {
        window.localStorage.setItem(NS + key, raw);
      } catch {
        memory.set(key, raw);
      }
    },
    remove(key) {
      try {
        window.localStorage.removeItem(NS + key);
      } catch {}
      memory.delete(key);
    },
  };

  /** A random id (crypto.randomUUID needs a secure context; getRandomValues does not). */
  // A fresh idempotency key (`client_id`): the prefix, the time in 9 base-36 digits of
  // milliseconds, then 64 random bits. Ids that start with the time land at the end of the
  // server's client-id index instead of anywhere in it (docs/PROTOCOL.md).
  function randomId(prefix) {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    const time = Date.now().toString(36).padStart(9, '0');
    return prefix + time + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // =====================================================================================
  // DOM helpers: elements are built node by node; text goes in as text nodes only
  // =====================================================================================

  /**
   * `h('div', {class: 'x', attrs: {...}, text: '...', on: {click: fn}}, child, ...)`.
   * Strings among the children become text nodes; attributes named on* are refused.
   */
  function h(tag, props = {}, ...children) {
    const el = document.createElement(tag);
    if (props.class) el.className = props.class;
    if (props.attrs) {
      for (const [k, v] of Object.entries(props.attrs)) {
        if (/^on/i.test(k) || v === null || v === undefined || v === false) continue;
        el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    if (props.text !== undefined) el.textContent = props.text;
    if (props.on) for (const [type, fn] of Object.entries(props.on)) el.addEventListener(type, fn);
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return el;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  /** Icon outlines (24 by 24, stroked). */
  const ICONS = {
    chat: ['M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.9A8 8 0 1 1 21 12z'],
    minimise: ['M6 9l6 6 6-6'],
    close: ['M6 6l12 12', 'M18 6L6 18'],
    send: ['M4 12l16-8-6 16-2.5-6.5z', 'M11.5 13.5L20 4'],
    clip: ['M21 11.5l-8.6 8.6a5 5 0 0 1-7.1-7.1l8.6-8.6a3.5 3.5 0 0 1 5 5l-8.6 8.6a2 2 0 0 1-2.9-2.9l7.9-7.9'],
    file: ['M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8z', 'M14 3v5h5'],
  };

  function icon(name) {
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('class', 'icon');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    for (const d of ICONS[name]) {
      const path = document.createElementNS(SVG_NS, 'path');
      path.setAttribute('d', d);
      svg.appendChild(path);
    }
    return svg;
  }

  /** Text with http(s) links made clickable; every piece is a text node or a safe <a>. */
  function linkified(text) {
    const frag = document.createDocumentFragment();
    const re = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/gi;
    let last = 0;
    for (let m; (m = re.exec(text)); ) {
      if (m.index > last) frag.appendChild(document.createTextNode(text.slice(last, m.index)));
      frag.appendChild(
        h('a', { attrs: { href: m[0], target: '_blank', rel: 'noopener noreferrer nofollow' }, text: m[0] }),
      );
      last = m.index + m[0].length;
    }
    if (last < text.length) frag.appendChild(document.createTextNode(text.slice(last)));
    return frag;
  }

  function fileUrl(attachment) {
    return `${ORIGIN}/files/${encodeURIComponent(attachment.id)}/${encodeURIComponent(attachment.name)}`;
  }

  function clockTime(ms) {
    try {
      return new Intl.DateTimeFormat(lang, { hour: '2-digit', minute: '2-digit' }).format(new Date(ms));
    } catch {
      return '';
    }
  }

  // =====================================================================================
  // State
  // =====================================================================================

  /** The DOM pieces, once built (see buildView). */
  let view = null;

  const state = {
    /** `GET /api/widget/{channel}`, once loaded. */
    config: null,
    token: store.get('token'),
    conversationId: store.get('conversation'),
    number: store.get('number'),
    status: 'open',
    /** Committed messages and events by seq (the history cache). */
    history: new Map(),
    /** Forms submitted or dismissed, so they are not asked again. */
    forms: store.get('forms', {}),
    open: false,
    /** Highest seq the operators have read (XB5). */
    operatorRead: 0,
    /** Highest seq this visitor has told the server it read. */
    visitorRead: 0,
    queuePosition: null,
    /** Terminal problem that stops the widget (identity refused, unknown channel). */
    fatal: null,
    /** The last attempt to read the settings failed (a retry is scheduled). */
    configFailed: false,
    /** A continue code (CF8) the next `hello` presents instead of the stored token. */
    continueCode: null,
    /** Offer cards answered or dismissed here, by `<conversation>:<seq>` (CF5, EC3). */
    offers: store.get('offers', {}),
    /** The message the composer replies to: `{seq}` (OC10), or null. */
    replyTo: null,
  };

  // The history cache goes with the seq it reaches: both or neither.
  {
    const cached = store.get('history', []);
    const seq = store.get('seq', 0);
    if (Array.isArray(cached) && typeof seq === 'number') {
      for (const m of cached) if (m && typeof m.seq === 'number' && m.seq <= seq) state.history.set(m.seq, m);
    }
    if (typeof state.forms !== 'object' || state.forms === null) state.forms = {};
    if (typeof state.offers !== 'object' || state.offers === null) state.offers = {};
  }

  // Timers and times the code below (and `forgetVisitor`, which may run right away) uses.
  /** The pending save of the history cache (see `saveHistory`). */
  let saveTimer = null;
  /** The pending name form (CF2), until its delay has passed. */
  let nameFormTimer = null;
  /**
   * When this visitor first saw the greeting (ms since the epoch). Kept in storage so the
   * name form's delay (CF2) runs once per visitor, not again on every page of the site: a
   * visitor who leaves before it falls due gets the form as soon as they are back (XB9).
   */
  let greetingShownAt = (() => {
    const at = store.get('greeted', null);
    return Number.isFinite(at) && at <= Date.now() ? at : null;
  })();

  // A token issued for one signed user (or for an anonymous visitor) is not reused for
  // another: on a shared computer, the next person must not see the last one's chat.
  if (state.token && (store.get('user') || null) !== (IDENTITY ? IDENTITY.user_id : null)) {
    forgetVisitor();
  }

  function lastSeq() {
    let max = 0;
    for (const seq of state.history.keys()) if (seq > max) max = seq;
    return max;
  }

  /** Saves the history cache soon (once per burst of frames, and before the page goes). */
  function saveHistory() {
    if (saveTimer) return;
    saveTimer = setTimeout(saveHistoryNow, 0);
  }

  function saveHistoryNow() {
    clearTimeout(saveTimer);
    saveTimer = null;
    const list = Array.from(state.history.values()).sort((a, b) => a.seq - b.seq);
    const kept = list.slice(-HISTORY_MAX);
    store.set('history', kept);
    store.set('seq', lastSeq());
  }

  /**
   * Writes not acknowledged yet, in order: messages and forms (XB4). Kept in localStorage
   * only, read and written back on every change, so two tabs of the site never overwrite
   * each other's entries.
   */
  const outbox = {
    list() {
      const list = store.get('outbox', []);
      return Array.isArray(list) ? list.filter((e) => e && typeof e.client_id === 'string') : [];
    },
    add(entry) {
      const list = this.list();
      list.push(entry);
      store.set('outbox', list);
    },
    find(clientId) {
      return this.list().find((e) => e.client_id === clientId) || null;
    },
    /** Removes and returns the entry (null when another tab already did). */
    take(clientId) {
      const list = this.list();
      const i = list.findIndex((e) => e.client_id === clientId);
      if (i < 0) return null;
      const [entry] = list.splice(i, 1);
      store.set('outbox', list);
      return entry;
    },
  };

  function saveForms() {
    store.set('forms', state.forms);
  }

  function saveOffers() {
    store.set('offers', state.offers);
  }

  /** Drops the visitor's identity and conversation (a refused or replaced token). */
  function forgetVisitor() {
    state.token = null;
    state.conversationId = null;
    state.number = null;
    state.status = 'open';
    state.history.clear();
    state.operatorRead = 0;
    state.visitorRead = 0;
    state.forms = {};
    state.offers = {};
    clearTimeout(saveTimer);
    saveTimer = null;
    for (const k of ['token', 'conversation', 'number', 'history', 'seq', 'forms', 'offers', 'user', 'continued', 'greeted']) store.remove(k);
    greetingShownAt = null;
    clearTimeout(nameFormTimer);
    nameFormTimer = null;
    if (view) {
      cancelReply();
      view.resetConversation();
    }
  }

  /** Whether the visitor told us a name (any form, here or in the conversation's history),
   *  or the site did. */
  function hasName() {
    if (state.forms.named || (IDENTITY && IDENTITY.name)) return true;
    for (const m of state.history.values()) {
      if (m.kind === 'event' && m.body === 'form' && m.author && m.author.kind === 'visitor' && m.meta && m.meta.fields && m.meta.fields.name) return true;
    }
    return false;
  }

  /** The conversation id a continue code names (its first part). */
  function continueConversation(code) {
    const id = Number(String(code).split('.')[0]);
    return Number.isSafeInteger(id) && id > 0 ? id : null;
  }

  // =====================================================================================
  // The view: a host element, a shadow root, the launcher and the panel
  // =====================================================================================

  function buildView() {
    const host = document.createElement('div');
    host.setAttribute('data-charla-widget', '');
    host.setAttribute('data-channel', CHANNEL);
    // Hidden until the stylesheet is in, so the page never sees an unstyled widget.
    host.style.setProperty('display', 'none', 'important');
    const root = host.attachShadow({ mode: 'open' });

    const sheet = h('link', { attrs: { rel: 'stylesheet', href: `${ORIGIN}/widget/charla.css` } });
    const reveal = () => host.style.removeProperty('display');
    sheet.addEventListener('load', reveal);
    sheet.addEventListener('error', reveal);

    const v = {};
    v.host = host;
    v.root = root;

    v.badge = h('span', { class: 'badge', attrs: { hidden: true } });
    v.launcher = h(
      'button',
      { class: 'launcher', attrs: { type: 'button', 'aria-expanded': 'false', 'aria-label': t.open }, on: { click: () => (state.open ? closePanel() : openPanel()) } },
      icon('chat'),
      v.badge,
    );

    v.title = h('h2', { class: 'title', text: '' });
    v.dot = h('span', { class: 'dot', attrs: { 'aria-hidden': 'true' } });
    v.subtitleText = h('span', { class: 'subtitle-text' });
    v.subtitle = h('div', { class: 'subtitle' }, v.dot, v.subtitleText);
    v.closeButton = h(
      'button',
      { class: 'icon-button', attrs: { type: 'button', 'aria-label': t.close, title: t.close }, on: { click: () => closePanel() } },
      icon('minimise'),
    );
    v.header = h('div', { class: 'header' }, h('div', { class: 'titles' }, v.title, v.subtitle), v.closeButton);

    v.notice = h('div', { class: 'notice state-notice', attrs: { role: 'status', hidden: true } });
    v.queue = h('div', { class: 'notice queue', attrs: { role: 'status', hidden: true } });

    v.greeting = h('li', { class: 'item operator greeting' });
    v.messages = h('ol', { class: 'messages', attrs: { 'aria-live': 'polite', 'aria-relevant': 'additions' } }, v.greeting);
    v.typing = h('div', { class: 'typing', attrs: { 'aria-live': 'polite', hidden: true } });
    v.forms = h('div', { class: 'forms' });
    v.scroll = h('div', { class: 'scroll' }, v.messages, v.typing, v.forms);

    v.alertText = h('span', { class: 'alert-text' });
    v.alert = h(
      'div',
      { class: 'alert', attrs: { role: 'alert', hidden: true } },
      v.alertText,
      h(
        'button',
        { class: 'icon-button', attrs: { type: 'button', 'aria-label': t.dismissError }, on: { click: () => (v.alert.hidden = true) } },
        icon('close'),
      ),
    );

    v.fileInput = h('input', { class: 'file-input', attrs: { type: 'file', tabindex: '-1', 'aria-hidden': 'true' } });
    v.fileInput.addEventListener('change', () => {
      const files = Array.from(v.fileInput.files || []);
      v.fileInput.value = '';
      for (const f of files) uploadFile(f);
    });
    v.attach = h(
      'button',
      { class: 'icon-button attach', attrs: { type: 'button', 'aria-label': t.attach, title: t.attach }, on: { click: () => v.fileInput.click() } },
      icon('clip'),
    );
    v.input = h('textarea', { attrs: { rows: '1', 'aria-label': t.placeholder, placeholder: t.placeholder } });
    v.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        sendFromComposer();
      } else if (e.key === 'Escape' && state.replyTo) {
        // Escape drops the quote first; a second one closes the panel.
        e.stopPropagation();
        cancelReply();
      }
    });
    v.input.addEventListener('input', () => {
      autoGrow();
      noteTyping();
    });
    v.send = h(
      'button',
      { class: 'icon-button send', attrs: { type: 'button', 'aria-label': t.send, title: t.send }, on: { click: () => sendFromComposer() } },
      icon('send'),
    );
    v.composer = h('div', { class: 'composer' }, v.fileInput, v.attach, v.input, v.send);
    // OC10: the message being answered, above the composer, until sent or cancelled.
    v.replyAuthor = h('span', { class: 'reply-author' });
    v.replyText = h('span', { class: 'reply-text' });
    v.replyCancel = h(
      'button',
      { class: 'icon-button reply-cancel', attrs: { type: 'button', 'aria-label': t.cancelReply, title: t.cancelReply }, on: { click: () => cancelReply(true) } },
      icon('close'),
    );
    v.replyBar = h(
      'div',
      { class: 'reply-bar', attrs: { hidden: true } },
      h('div', { class: 'reply-quote' }, v.replyAuthor, v.replyText),
      v.replyCancel,
    );
    v.powered = h('div', { class: 'powered', text: t.poweredBy });

    v.panel = h(
      'div',
      { class: 'panel', attrs: { role: 'dialog', 'aria-modal': 'false', hidden: true } },
      v.header,
      v.notice,
      v.queue,
      v.scroll,
      v.alert,
      v.replyBar,
      v.composer,
      v.powered,
    );

    v.panel.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') closePanel();
    });

    v.shell = h('div', { class: 'charla', attrs: { lang } }, v.panel, v.launcher);
    root.appendChild(sheet);
    root.appendChild(v.shell);

    /** li elements by seq, and pending ones by client_id. */
    v.bySeq = new Map();
    v.byClient = new Map();
    v.uploads = new Map();
    /** Offer cards (CF5, EC3): their li by the offer's seq. */
    v.offers = new Map();

    /** Removes every committed item shown (pending ones stay). */
    v.clearCommitted = () => {
      for (const el of v.bySeq.values()) el.remove();
      v.bySeq.clear();
      v.offers.clear();
    };

    /** Forgets the shown conversation; pending messages stay (they go to the next one). */
    v.resetConversation = () => {
      v.clearCommitted();
      renderHeader();
    };

    document.body.appendChild(host);
    return v;
  }

  /** Re-applies the language to the fixed labels (the language is known once the
   *  channel's settings are in). */
  function applyLanguage() {
    const v = view;
    v.shell.setAttribute('lang', lang);
    v.launcher.setAttribute('aria-label', t.open);
    v.closeButton.setAttribute('aria-label', t.close);
    v.closeButton.setAttribute('title', t.close);
    v.attach.setAttribute('aria-label', t.attach);
    v.attach.setAttribute('title', t.attach);
    v.send.setAttribute('aria-label', t.send);
    v.send.setAttribute('title', t.send);
    v.replyCancel.setAttribute('aria-label', t.cancelReply);
    v.replyCancel.setAttribute('title', t.cancelReply);
    v.powered.textContent = t.poweredBy;
    renderComposerState();
    renderHeader();
    renderGreeting();
    rerenderCommitted();
    renderReplyBar();
  }

  function renderHeader() {
    if (!view) return;
    const c = state.config;
    view.title.textContent = c ? c.title : '';
    view.panel.setAttribute('aria-label', c ? c.title : 'Chat');
    if (state.fatal && !state.number) {
      view.subtitleText.textContent = '';
    } else if (state.number) {
      view.subtitleText.textContent = t.conversation(state.number);
    } else if (c) {
      view.subtitleText.textContent = c.online ? t.online : t.offline;
    } else {
      view.subtitleText.textContent = t.connecting;
    }
    view.dot.classList.toggle('online', Boolean(c && c.online));
  }

  function renderGreeting() {
    const c = state.config;
    const g = view.greeting;
    g.textContent = '';
    if (!c) {
      g.hidden = true;
      return;
    }
    g.hidden = false;
    append(g, [h('div', { class: 'author', text: c.title }), h('div', { class: 'bubble' }, linkified(c.greeting || t.greeting))]);
  }

  function renderComposerState() {
    const closed = state.status === 'closed';
    const ph = closed ? t.placeholderClosed : t.placeholder;
    view.input.setAttribute('placeholder', ph);
    view.input.setAttribute('aria-label', ph);
    const gated = Boolean(view.forms.querySelector('.card.prechat')) || Boolean(state.fatal);
    view.composer.hidden = gated;
    view.replyBar.hidden = gated || !state.replyTo;
  }

  /** The connection line under the header: nothing when all is well. */
  function renderNotice() {
    if (!view) return;
    let text = '';
    let error = false;
    if (state.fatal) {
      text = state.fatal;
      error = true;
    } else if (!navigator.onLine) {
      text = t.offlineNotice;
    } else if (!state.config || (socket.wanted && !socket.greeted && socket.attempts > 0)) {
      text = socket.attempts > 0 || state.configFailed ? t.reconnecting : t.connecting;
    } else if (state.status === 'closed') {
      text = t.closedNotice;
    }
    view.notice.textContent = text;
    view.notice.hidden = !text;
    view.notice.classList.toggle('error', error);
  }

  function renderQueue() {
    const n = state.queuePosition;
    view.queue.textContent = n ? t.queue(n) : '';
    view.queue.hidden = !n;
  }

  function showAlert(text) {
    view.alertText.textContent = text;
    view.alert.hidden = false;
  }

  function nearBottom() {
    const s = view.scroll;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  function scrollToBottom() {
    view.scroll.scrollTop = view.scroll.scrollHeight;
  }

  function autoGrow() {
    const el = view.input;
    el.style.setProperty('height', 'auto');
    el.style.setProperty('height', `${Math.min(el.scrollHeight + 2, 140)}px`);
  }

  function updateBadge() {
    let unread = 0;
    for (const m of state.history.values()) {
      if (m.seq <= state.visitorRead) continue;
      if (m.kind === 'text' && m.author && m.author.kind === 'operator') unread++;
      else if (isOffer(m) && offerStatus(m).state === 'open') unread++;
    }
    const show = !state.open && unread > 0;
    view.badge.hidden = !show;
    view.badge.textContent = show ? String(unread) : '';
    view.launcher.setAttribute('aria-label', show ? `${t.open} (${t.unread(unread)})` : t.open);
  }

  // ---- One message or event as a list item --------------------------------------------

  function eventText(m) {
    const meta = m.meta || {};
    switch (m.body) {
      case 'closed':
        return meta.reason === 'inactivity' ? t.closedInactivity : t.closed;
      case 'reopened':
        return t.reopened;
      case 'assigned':
        return meta.to && meta.to.name ? t.joined(meta.to.name) : null;
      case 'form': {
        // The answer to an offer shows in the offer's card instead.
        if (OFFER_FORMS.includes(meta.form)) return null;
        const f = meta.fields || {};
        const parts = [f.name, f.email, f.phone].filter(Boolean).join(' \u00b7 ');
        return parts ? t.formEvent(parts) : null;
      }
      default:
        return null; // `opened` and anything new: nothing to say to the visitor
    }
  }

  function attachmentNode(a) {
    const url = fileUrl(a);
    if (typeof a.type === 'string' && a.type.startsWith('image/')) {
      const img = h('img', { attrs: { src: url, alt: a.name, loading: 'lazy' } });
      // The picture grows the list once loaded: follow it if the reader was at the end.
      img.addEventListener('load', () => {
        const s = view.scroll;
        if (s.scrollHeight - s.scrollTop - s.clientHeight < img.clientHeight + 80) scrollToBottom();
      });
      return h('a', { class: 'file image', attrs: { href: url, target: '_blank', rel: 'noopener noreferrer' } }, img);
    }
    return h(
      'a',
      { class: 'file file-link', attrs: { href: url, target: '_blank', rel: 'noopener noreferrer', download: a.name } },
      icon('file'),
      h('span', { text: a.name }),
    );
  }

  /** Who wrote `m`, as the visitor sees it. */
  function authorName(m) {
    if (m.author && m.author.kind === 'visitor') return t.you;
    return (m.author && m.author.name) || (state.config && state.config.title) || '';
  }

  /** A message reduced to one short line of text, for quotes (OC10). */
  function snippet(m) {
    const text = (m.body || '').replace(/\s+/g, ' ').trim();
    if (text) return text.length > 140 ? `${text.slice(0, 139)}\u2026` : text;
    const att = m.meta && m.meta.attachment;
    return att && att.name ? att.name : '';
  }

  /** The quoted message above a reply: found in the history by seq, as text. */
  function quoteNode(seq) {
    const q = state.history.get(seq);
    const found = q && q.kind === 'text';
    return h(
      'div',
      { class: 'quote', attrs: { 'data-quoted-seq': String(seq) } },
      found ? h('span', { class: 'quote-author', text: authorName(q) }) : null,
      h('span', { class: 'quote-text', text: found ? snippet(q) : t.previousMessage }),
    );
  }

  /** The "Reply" action of a committed message (OC10). */
  function addReplyAction(li, m) {
    const meta = li.querySelector('.meta');
    if (!meta || meta.querySelector('.reply-action')) return;
    const name = authorName(m);
    meta.appendChild(
      h('button', {
        class: 'reply-action',
        attrs: { type: 'button', 'aria-label': t.replyTo(name), title: t.replyTo(name) },
        text: t.reply,
        on: { click: () => startReply(m.seq) },
      }),
    );
  }

  /** A text message (committed, or pending with a client_id) as an <li>. */
  function messageItem(m, { pending = false } = {}) {
    const mine = m.author && m.author.kind === 'visitor';
    const li = h('li', { class: `item ${mine ? 'visitor' : 'operator'}` });
    if (!mine) li.appendChild(h('div', { class: 'author', text: authorName(m) }));
    const bubble = h('div', { class: 'bubble' });
    if (m.meta && typeof m.meta.reply_to === 'number') bubble.appendChild(quoteNode(m.meta.reply_to));
    const att = m.meta && m.meta.attachment;
    if (att) bubble.appendChild(attachmentNode(att));
    if (m.body) bubble.appendChild(h('div', { class: 'text' }, linkified(m.body)));
    li.appendChild(bubble);
    const meta = h('div', { class: 'meta' });
    meta.appendChild(h('span', { class: 'time', text: m.created_at ? clockTime(m.created_at) : '' }));
    meta.appendChild(h('span', { class: 'state' }));
    li.appendChild(meta);
    if (m.client_id) li.setAttribute('data-client-id', m.client_id);
    if (typeof m.seq === 'number') li.setAttribute('data-seq', String(m.seq));
    if (m.author) li.setAttribute('data-author', m.author.kind);
    setItemState(li, pending ? 'pending' : 'sent');
    if (!pending && typeof m.seq === 'number') addReplyAction(li, m);
    return li;
  }

  function setItemState(li, s, why) {
    li.setAttribute('data-state', s);
    const label = li.querySelector('.state');
    if (!label) return;
    if (s === 'pending') label.textContent = socket.greeted ? t.pending : t.waiting;
    else if (s === 'failed') label.textContent = t.failed(why || '');
    else label.textContent = '';
  }

  function eventItem(m) {
    if (isOffer(m)) return offerItem(m);
    const text = eventText(m);
    const li = h('li', { class: 'item event' }, h('div', { class: 'event-text', text: text || '' }));
    li.setAttribute('data-seq', String(m.seq));
    li.setAttribute('data-event', m.body);
    if (!text) li.hidden = true;
    return li;
  }

  /** Puts an item with a seq in order, before pending items and after lower seqs. */
  function placeBySeq(li, seq) {
    const list = view.messages;
    let before = null;
    for (const other of list.children) {
      if (other === view.greeting || other === li) continue;
      const s = other.getAttribute('data-seq');
      if (s === null || Number(s) > seq) {
        before = other;
        break;
      }
    }
    list.insertBefore(li, before);
  }

  /** Shows a committed message or event once, whatever path it came by (XB4). */
  function showCommitted(m) {
    if (view.bySeq.has(m.seq)) return;
    const stick = nearBottom();
    let li = null;
    if (m.kind === 'text' && m.client_id && view.byClient.has(m.client_id)) {
      // Our own pending message, now committed: same bubble, moved into place.
      li = view.byClient.get(m.client_id);
      view.byClient.delete(m.client_id);
      li.setAttribute('data-seq', String(m.seq));
      setItemState(li, 'sent');
      addReplyAction(li, m);
    } else if (m.kind === 'text') {
      li = messageItem(m);
    } else if (m.kind === 'event') {
      li = eventItem(m);
    } else {
      return; // notes never reach visitors; anything else is not for us
    }
    view.bySeq.set(m.seq, li);
    placeBySeq(li, m.seq);
    renderSeen();
    // A new answer (or a newer offer) changes how the offers before it look.
    if (m.kind === 'event' && (m.body === 'form' || m.body === 'offer')) refreshOffers();
    if (stick || (m.author && m.author.kind === 'visitor')) scrollToBottom();
  }

  /** Builds every committed item again (the language changed). */
  let itemsLang = lang;
  function rerenderCommitted() {
    if (itemsLang === lang) return;
    itemsLang = lang;
    view.offers.clear();
    for (const [seq, old] of Array.from(view.bySeq)) {
      const m = state.history.get(seq);
      if (!m) continue;
      const typed = old.querySelector('.offer-card input');
      const li = m.kind === 'text' ? messageItem(m) : eventItem(m);
      const input = li.querySelector('.offer-card input');
      if (typed && input) input.value = typed.value;
      old.replaceWith(li);
      view.bySeq.set(seq, li);
    }
    for (const li of view.byClient.values()) {
      const label = li.getAttribute('data-state');
      if (label === 'pending') setItemState(li, 'pending');
    }
    renderSeen();
  }

  function pendingMeta(entry) {
    const meta = {};
    if (entry.attachment) meta.attachment = entry.attachment;
    if (typeof entry.reply_to === 'number') meta.reply_to = entry.reply_to;
    return Object.keys(meta).length ? meta : undefined;
  }

  function showPending(entry) {
    if (view.byClient.has(entry.client_id)) return;
    const li = messageItem(
      { author: { kind: 'visitor' }, body: entry.body, client_id: entry.client_id, created_at: entry.created_at, meta: pendingMeta(entry) },
      { pending: true },
    );
    view.byClient.set(entry.client_id, li);
    view.messages.appendChild(li);
    scrollToBottom();
  }

  function refreshPendingLabels() {
    for (const li of view.byClient.values()) if (li.getAttribute('data-state') === 'pending') setItemState(li, 'pending');
  }

  /** "Seen" under the visitor's last message the operators have read (XB5). */
  function renderSeen() {
    let best = null;
    let bestSeq = 0;
    for (const [seq, li] of view.bySeq) {
      if (li.getAttribute('data-author') === 'visitor' && seq <= state.operatorRead && seq > bestSeq) {
        best = li;
        bestSeq = seq;
      }
    }
    for (const old of view.messages.querySelectorAll('.seen')) if (old.parentElement.parentElement !== best) old.remove();
    if (best && !best.querySelector('.seen')) best.querySelector('.meta').appendChild(h('span', { class: 'seen', text: t.seen }));
  }

  // ---- Offers: "a copy by e-mail?" after closing (CF5), "your e-mail?" (EC3) ---------------

  const OFFER_FORMS = ['transcript', 'email'];

  function isOffer(m) {
    return m.kind === 'event' && m.body === 'offer' && Boolean(m.meta) && OFFER_FORMS.includes(m.meta.form);
  }

  function offerKey(seq) {
    return `${state.conversationId}:${seq}`;
  }

  /**
   * Where the offer `m` stands: `answered` (a `form` event of its kind follows it before
   * any newer offer of that kind, or it was answered here), `pending` (sent, no ack yet),
   * `dismissed` (No thanks, here), `stale` (a newer offer of the same kind replaced it),
   * or `open`. `email` is the address given, when answered.
   */
  function offerStatus(m) {
    const form = m.meta.form;
    const later = Array.from(state.history.values())
      .filter((o) => o.seq > m.seq && o.kind === 'event' && o.meta && o.meta.form === form && (o.body === 'form' || o.body === 'offer'))
      .sort((a, b) => a.seq - b.seq);
    const next = later[0];
    if (next && next.body === 'form') return { state: 'answered', email: (next.meta.fields && next.meta.fields.email) || null };
    const local = state.offers[offerKey(m.seq)];
    if (local && typeof local === 'object' && local.done) return { state: 'answered', email: local.email || null };
    const pending = outbox.list().some((e) => e.kind === 'form' && e.offer === m.seq && e.conversation === state.conversationId);
    if (pending) return { state: 'pending' };
    if (local === 'dismissed') return { state: 'dismissed' };
    if (next) return { state: 'stale' };
    return { state: 'open' };
  }

  /** An e-mail address this browser already gave, to fill the offer's field in. */
  function knownEmail() {
    if (state.forms.email) return state.forms.email;
    if (IDENTITY && IDENTITY.email) return IDENTITY.email;
    let best = null;
    for (const m of state.history.values()) {
      const f = m.kind === 'event' && m.body === 'form' && m.meta && m.meta.fields;
      if (f && f.email && (!best || m.seq > best.seq)) best = { seq: m.seq, email: f.email };
    }
    return best ? best.email : '';
  }

  function offerItem(m) {
    const li = h('li', { class: 'item offer' });
    li.setAttribute('data-seq', String(m.seq));
    li.setAttribute('data-event', 'offer');
    li.setAttribute('data-offer', m.meta.form);
    view.offers.set(m.seq, li);
    renderOffer(li, m);
    return li;
  }

  /** Draws the offer's card for its current state; a card being filled in is left alone. */
  function renderOffer(li, m, { error = null } = {}) {
    const status = offerStatus(m);
    const form = m.meta.form;
    if (li.getAttribute('data-status') === status.state && error === null) return;
    const old = li.querySelector('input');
    const typed = old ? old.value : null;
    li.textContent = '';
    li.setAttribute('data-status', status.state);
    li.hidden = status.state === 'dismissed' || status.state === 'stale';
    if (li.hidden) return;
    if (status.state === 'answered') {
      const text = form === 'transcript' ? t.transcriptDone(status.email) : t.emailDone(status.email);
      li.appendChild(h('div', { class: 'card offer-card done', attrs: { role: 'status', 'data-form': form } }, h('p', { class: 'card-text', text })));
      return;
    }
    const id = randomId('o-');
    const input = h('input', { attrs: { id, name: 'email', type: 'email', autocomplete: 'email', required: true, 'aria-required': 'true' } });
    input.value = typed !== null ? typed : knownEmail();
    const errorLine = h('p', { class: 'form-error', attrs: { role: 'alert', hidden: error === null } }, error || '');
    const sending = status.state === 'pending';
    const submit = h('button', { class: 'primary', attrs: { type: 'submit', disabled: sending }, text: t.submit });
    const dismiss = h('button', {
      class: 'secondary',
      attrs: { type: 'button', disabled: sending },
      text: t.noThanks,
      on: {
        click: () => {
          state.offers[offerKey(m.seq)] = 'dismissed';
          saveOffers();
          renderOffer(li, m);
          updateBadge();
        },
      },
    });
    const card = h(
      'form',
      { class: `card offer-card ${form}`, attrs: { novalidate: true, 'data-form': form } },
      h('p', { class: 'card-text', text: form === 'transcript' ? t.transcriptOffer : t.emailOffer }),
      h('div', { class: 'field field-email' }, h('label', { attrs: { for: id } }, t.email, ' *'), input),
      errorLine,
      h('div', { class: 'actions' }, submit, dismiss),
    );
    card.addEventListener('submit', (e) => {
      e.preventDefault();
      const email = input.value.trim();
      if (!email) {
        input.setAttribute('aria-invalid', 'true');
        errorLine.textContent = t.required(t.email);
        errorLine.hidden = false;
        input.focus();
        return;
      }
      input.removeAttribute('aria-invalid');
      enqueue({ kind: 'form', client_id: randomId('f-'), form, fields: { email }, offer: m.seq, conversation: state.conversationId });
      renderOffer(li, m);
    });
    li.appendChild(card);
  }

  function refreshOffers() {
    for (const [seq, li] of view.offers) {
      const m = state.history.get(seq);
      if (m) renderOffer(li, m);
    }
    updateBadge();
  }

  // ---- Replying to a message (OC10) -----------------------------------------------------

  function startReply(seq) {
    if (!state.history.has(seq)) return;
    state.replyTo = { seq };
    renderReplyBar();
    try {
      view.input.focus({ preventScroll: true });
    } catch {}
  }

  function cancelReply(focus = false) {
    state.replyTo = null;
    if (!view) return;
    renderReplyBar();
    if (focus) {
      try {
        view.input.focus({ preventScroll: true });
      } catch {}
    }
  }

  function renderReplyBar() {
    const r = state.replyTo;
    const m = r && state.history.get(r.seq);
    if (r && !m) state.replyTo = null;
    view.replyAuthor.textContent = m ? t.replyingTo(authorName(m)) : '';
    view.replyText.textContent = m ? snippet(m) : '';
    view.replyBar.hidden = !m || view.composer.hidden;
  }

  // ---- Operator typing ------------------------------------------------------------------

  let typingHide = null;
  function showOperatorTyping(on, name) {
    clearTimeout(typingHide);
    view.typing.textContent = on ? t.typing(name) : '';
    view.typing.hidden = !on;
    if (on) {
      if (nearBottom()) scrollToBottom();
      typingHide = setTimeout(() => showOperatorTyping(false), TYPING_SHOW_MS);
    }
  }

  // ---- Opening and closing --------------------------------------------------------------


  function openPanel() {
    state.open = true;
    store.set('open', true);
    view.panel.hidden = false;
    view.shell.classList.add('open');
    view.launcher.setAttribute('aria-expanded', 'true');
    updateBadge();
    loadConfig(); // fresh `online` for the forms
    socket.want();
    afterConfig();
    scrollToBottom();
    // Not on phones: a keyboard popping up over the greeting is unwelcome.
    if (!view.composer.hidden && window.innerWidth > 480) {
      try {
        view.input.focus({ preventScroll: true });
      } catch {}
    }
    markRead();
  }

  function closePanel() {
    state.open = false;
    store.set('open', false);
    view.panel.hidden = true;
    view.shell.classList.remove('open');
    view.launcher.setAttribute('aria-expanded', 'false');
    updateBadge();
    try {
      view.launcher.focus({ preventScroll: true });
    } catch {}
  }

  // =====================================================================================
  // The channel's settings: GET /api/widget/{channel}, retried politely
  // =====================================================================================

  let configLoading = null;
  let configAttempt = 0;

  function loadConfig() {
    if (configLoading) return configLoading;
    configLoading = fetch(`${ORIGIN}/api/widget/${encodeURIComponent(CHANNEL)}`, {
      headers: { accept: 'application/json' },
      credentials: 'omit',
      cache: 'no-store',
    })
      .then(async (res) => {
        const body = await res.json().catch(() => null);
        if (res.status === 400 && body && body.error) {
          // An unknown channel: retrying will not help.
          state.fatal = t.channelError(body.error.message);
          renderHeader();
          renderNotice();
          renderComposerState();
          return;
        }
        if (!res.ok || !body) throw new Error(`status ${res.status}`);
        configAttempt = 0;
        state.configFailed = false;
        const first = !state.config;
        state.config = body;
        const l = pickLanguage(body.language);
        if (l !== lang || first) {
          lang = l;
          t = STRINGS[lang];
          applyLanguage();
        } else {
          renderHeader();
        }
        const types = Array.isArray(body.upload_types) ? body.upload_types.join(',') : '';
        if (types) view.fileInput.setAttribute('accept', types);
        renderNotice();
        afterConfig();
      })
      .catch(() => {
        state.configFailed = true;
        renderNotice();
        const delay = BACKOFF_MS[Math.min(configAttempt++, BACKOFF_MS.length - 1)];
        setTimeout(() => {
          if (!state.config) loadConfig();
        }, delay);
      })
      .finally(() => {
        configLoading = null;
      });
    return configLoading;
  }

  /** What to show once the settings are known and the panel is open. */
  function afterConfig() {
    if (!state.config || !state.open) return;
    if (greetingShownAt === null) {
      greetingShownAt = Date.now();
      store.set('greeted', greetingShownAt);
    }
    renderGreeting();
    decideForms();
    renderComposerState();
  }

  // =====================================================================================
  // The socket: hello, resume, outbox (XB4), typing and read (XB5), queue (XB13)
  // =====================================================================================

  const socket = {
    ws: null,
    /** The widget wants a connection (panel opened, or a conversation to follow). */
    wanted: false,
    /** `welcome` arrived on the current socket. */
    greeted: false,
    /** A hello is waiting for its answer. */
    helloSent: null,
    attempts: 0,
    timer: null,
    pingTimer: null,
    deadTimer: null,
    typingOn: false,
    typingTimer: null,

    want() {
      this.wanted = true;
      if (!this.ws && !this.timer && !state.fatal) this.connect();
    },

    connect() {
      clearTimeout(this.timer);
      this.timer = null;
      if (this.ws || state.fatal) return;
      // Without a network an attempt can only fail (and log an error): wait for `online`,
      // checking again now and then in case the browser's flag is wrong.
      if (navigator.onLine === false) return this.retry();
      let ws;
      try {
        ws = new WebSocket(WS_URL);
      } catch {
        return this.retry();
      }
      this.ws = ws;
      this.greeted = false;
      ws.addEventListener('open', () => {
        if (this.ws === ws) this.hello();
      });
      ws.addEventListener('message', (e) => {
        if (this.ws !== ws) return;
        this.alive();
        let frame;
        try {
          frame = JSON.parse(e.data);
        } catch {
          return;
        }
        onFrame(frame);
      });
      ws.addEventListener('close', () => {
        if (this.ws !== ws) return;
        this.dropped();
      });
      ws.addEventListener('error', () => {});
      renderNotice();
    },

    /** The socket is gone: everything unacknowledged stays in the outbox. */
    dropped() {
      const ws = this.ws;
      this.ws = null;
      this.greeted = false;
      this.helloSent = null;
      this.typingOn = false;
      clearInterval(this.pingTimer);
      clearTimeout(this.deadTimer);
      if (ws) {
        try {
          ws.close();
        } catch {}
      }
      refreshPendingLabels();
      renderNotice();
      if (!state.fatal) this.retry();
    },

    retry() {
      clearTimeout(this.timer);
      const delay = BACKOFF_MS[Math.min(this.attempts, BACKOFF_MS.length - 1)];
      this.attempts++;
      renderNotice();
      this.timer = setTimeout(() => {
        this.timer = null;
        this.connect();
      }, delay);
    },

    /** Reconnect at once (the browser says it is back online). */
    now() {
      if (state.fatal || !this.wanted) return;
      if (this.ws) return;
      clearTimeout(this.timer);
      this.timer = null;
      this.connect();
    },

    send(frame) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
      try {
        this.ws.send(JSON.stringify(frame));
        return true;
      } catch {
        return false;
      }
    },

    hello() {
      const frame = { type: 'hello', v: 1, channel: CHANNEL };
      const code = state.continueCode;
      if (code) {
        // A continue link (CF8): the code names the visitor and the conversation; the
        // server answers with a new token. What we hold is kept only if it is that
        // conversation.
        frame.continue_code = code;
        frame.last_seq = state.conversationId === continueConversation(code) ? lastSeq() : 0;
      } else if (state.token) {
        frame.token = state.token;
        if (state.conversationId) frame.conversation_id = state.conversationId;
        frame.last_seq = lastSeq();
      }
      if (IDENTITY) frame.identity = IDENTITY;
      this.helloSent = { token: Boolean(frame.token), conversation: Boolean(frame.conversation_id), continueCode: code || null };
      this.send(frame);
    },

    /** Drops the socket and connects again at once (a continue link arrived). */
    restart() {
      if (this.ws) this.dropped();
      this.attempts = 0;
      this.wanted = true;
      this.now();
    },

    /** Any frame proves the socket alive; a JSON ping checks it now and then. */
    alive() {
      clearTimeout(this.deadTimer);
      this.deadTimer = null;
    },

    startPings() {
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => {
        if (!this.send({ type: 'ping' })) return;
        clearTimeout(this.deadTimer);
        this.deadTimer = setTimeout(() => this.dropped(), PONG_TIMEOUT_MS);
      }, PING_EVERY_MS);
    },
  };

  // ---- Frames from the server -------------------------------------------------------------

  function onFrame(f) {
    switch (f.type) {
      case 'welcome':
        return onWelcome(f);
      case 'conversation':
        return onConversation(f.conversation);
      case 'message':
        return onMessage(f);
      case 'ack':
        return onAck(f);
      case 'error':
        return onError(f);
      case 'typing':
        if (f.from === 'operator') showOperatorTyping(Boolean(f.on), f.name);
        return;
      case 'read':
        if (f.by === 'operator' && typeof f.seq === 'number' && f.seq > state.operatorRead) {
          state.operatorRead = f.seq;
          renderSeen();
        }
        return;
      case 'queue':
        state.queuePosition = typeof f.position === 'number' ? f.position : null;
        renderQueue();
        return;
      default:
        return; // pong, and frames a newer server may add
    }
  }

  function onWelcome(f) {
    const continued = socket.helloSent && socket.helloSent.continueCode;
    socket.greeted = true;
    socket.helloSent = null;
    socket.attempts = 0;
    if (continued) {
      // The link's visitor and conversation, under a new token for this browser.
      if (state.continueCode === continued) state.continueCode = null;
      const c = f.conversation && f.conversation.id;
      if (state.conversationId !== c) forgetVisitor();
      if (f.visitor_token) {
        state.token = f.visitor_token;
        store.set('token', state.token);
        store.set('user', IDENTITY ? IDENTITY.user_id : null);
      }
      store.set('continued', continued);
    } else if (f.visitor_token) {
      // A new visitor: whatever we held belonged to someone else.
      if (state.token) forgetVisitor();
      state.token = f.visitor_token;
      store.set('token', state.token);
      store.set('user', IDENTITY ? IDENTITY.user_id : null);
    }
    if (f.conversation) onConversation(f.conversation);
    socket.startPings();
    renderNotice();
    refreshPendingLabels();
    // The replay follows in the frames after this one; the outbox goes out behind it, in
    // order, with the original client ids: what was committed already comes back as a
    // duplicate ack, the rest is written now.
    flushOutbox();
    markRead();
    for (const fn of afterWelcome.splice(0)) fn();
  }

  function onConversation(c) {
    if (!c || typeof c.id !== 'number') return;
    if (state.conversationId && state.conversationId !== c.id) {
      // Another conversation than the one we cached (the server chose): start the cache over.
      view.clearCommitted();
      cancelReply();
      state.history.clear();
      saveHistory();
    }
    state.conversationId = c.id;
    store.set('conversation', c.id);
    if (c.number) {
      state.number = c.number;
      store.set('number', c.number);
    }
    state.status = c.status === 'closed' ? 'closed' : 'open';
    if (typeof c.operator_read_seq === 'number' && c.operator_read_seq > state.operatorRead) {
      state.operatorRead = c.operator_read_seq;
    }
    if (typeof c.visitor_read_seq === 'number' && c.visitor_read_seq > state.visitorRead) {
      state.visitorRead = c.visitor_read_seq;
    }
    if (c.queued === false && state.queuePosition) {
      state.queuePosition = null;
      renderQueue();
    }
    renderHeader();
    renderNotice();
    renderComposerState();
    renderSeen();
    updateBadge();
    refreshForms();
  }

  /** The forms again, now that the conversation is known (or is not coming). */
  function refreshForms() {
    if (!state.config || !state.open) return;
    decideForms();
    renderComposerState();
  }

  function onMessage(m) {
    if (typeof m.seq !== 'number') return;
    if (state.conversationId && m.conversation_id !== state.conversationId) return;
    if (!state.conversationId && m.conversation_id) {
      state.conversationId = m.conversation_id;
      store.set('conversation', m.conversation_id);
    }
    if (m.kind !== 'text' && m.kind !== 'event') return;
    const view_ = { seq: m.seq, kind: m.kind, author: m.author, body: m.body, created_at: m.created_at };
    if (m.client_id) view_.client_id = m.client_id;
    if (m.meta) view_.meta = m.meta;
    const fresh = !state.history.has(m.seq);
    state.history.set(m.seq, view_);
    saveHistory();
    showCommitted(view_);
    if (m.author && m.author.kind === 'operator' && m.kind === 'text') showOperatorTyping(false);
    if (m.kind === 'event' && (m.body === 'closed' || m.body === 'reopened')) {
      state.status = m.body === 'closed' ? 'closed' : 'open';
      renderNotice();
      renderComposerState();
    }
    if (fresh) {
      updateBadge();
      markRead();
    }
  }

  function onAck(a) {
    const entry = outbox.take(a.client_id);
    if (!entry) return; // an old duplicate, or another tab's write it already settled
    if (!state.conversationId && a.conversation_id) {
      state.conversationId = a.conversation_id;
      store.set('conversation', a.conversation_id);
    }
    const now = Date.now();
    let m;
    if (entry.kind === 'form') {
      m = { seq: a.seq, kind: 'event', author: { kind: 'visitor' }, body: 'form', client_id: entry.client_id, created_at: now, meta: { form: entry.form, fields: entry.fields } };
      formAccepted(entry);
    } else {
      m = { seq: a.seq, kind: 'text', author: { kind: 'visitor' }, body: entry.body, client_id: entry.client_id, created_at: entry.created_at || now };
      const meta = pendingMeta(entry);
      if (meta) m.meta = meta;
    }
    if (!state.history.has(a.seq)) {
      state.history.set(a.seq, m);
      saveHistory();
    }
    showCommitted(state.history.get(a.seq));
    if (entry.kind !== 'form' && view.byClient.has(entry.client_id)) {
      // Acked under a seq we already show (a duplicate): drop the pending copy.
      view.byClient.get(entry.client_id).remove();
      view.byClient.delete(entry.client_id);
    }
    markRead();
  }

  function onError(e) {
    // Answers to `hello`: the session is not greeted yet, so another hello may follow.
    if (!socket.greeted && socket.helloSent) {
      const sent = socket.helloSent;
      socket.helloSent = null;
      if (sent.continueCode && !e.retryable) {
        // An expired or broken link: say so, then start as usual (the stored token).
        if (state.continueCode === sent.continueCode) state.continueCode = null;
        showAlert(t.continueFailed(e.message || e.code));
        refreshForms(); // the forms a visitor without that conversation gets
        return socket.hello();
      }
      if (e.code === 'unauthorized' && sent.token) {
        forgetVisitor(); // an unknown (or erased) token: start anew
        return socket.hello();
      }
      if (e.code === 'forbidden' && sent.conversation) {
        state.conversationId = null;
        store.remove('conversation');
        state.history.clear();
        saveHistory();
        view.resetConversation();
        return socket.hello();
      }
      if (e.code === 'unauthorized') {
        return fail(IDENTITY ? t.identityError : t.identityRequired);
      }
      if (e.retryable) {
        setTimeout(() => {
          if (socket.ws && !socket.greeted) socket.hello();
        }, e.retry_after_ms || 1000);
        socket.helloSent = sent;
        return;
      }
      return fail(t.channelError(e.message || e.code));
    }
    if (e.code === 'rate_limited') {
      setTimeout(flushOutbox, e.retry_after_ms || 1000);
      return;
    }
    if (!e.client_id) return;
    const entry = outbox.find(e.client_id);
    if (!entry) return;
    if (e.retryable) {
      // Not committed (or committed without our knowing): the same frame again, same id.
      setTimeout(() => sendEntry(entry), e.retry_after_ms || 1000);
      return;
    }
    outbox.take(entry.client_id);
    if (e.code === 'prechat_required') {
      // The channel asks for the pre-chat form first (its rules changed, or this browser
      // thought it was done): show it again.
      state.forms.prechat = false;
      saveForms();
      decideForms();
    }
    if (entry.kind === 'form') return formRefused(entry, e.message || e.code);
    const li = view.byClient.get(entry.client_id);
    if (li) setItemState(li, 'failed', e.message || e.code);
  }

  /** Stops the widget with a message in the panel (refused identity, unknown channel). */
  function fail(text) {
    state.fatal = text;
    socket.wanted = false;
    clearTimeout(socket.timer);
    const ws = socket.ws;
    socket.ws = null;
    socket.greeted = false;
    clearInterval(socket.pingTimer);
    if (ws) {
      try {
        ws.close(1000);
      } catch {}
    }
    view.forms.textContent = '';
    renderHeader();
    renderNotice();
    renderComposerState();
    if (!state.open) openPanel();
  }

  // ---- Writing: the outbox ----------------------------------------------------------------

  function sendEntry(entry) {
    if (!socket.greeted) return false;
    if (entry.kind === 'form') {
      return socket.send({ type: 'form', client_id: entry.client_id, form: entry.form, fields: entry.fields });
    }
    const frame = { type: 'message', client_id: entry.client_id, body: entry.body };
    if (entry.attachment) frame.attachment = entry.attachment.id;
    if (typeof entry.reply_to === 'number') frame.reply_to = entry.reply_to;
    return socket.send(frame);
  }

  function flushOutbox() {
    for (const entry of outbox.list()) {
      if (entry.kind !== 'form') showPending(entry);
      sendEntry(entry);
    }
  }

  function enqueue(entry) {
    outbox.add(entry);
    if (entry.kind !== 'form') showPending(entry);
    socket.want();
    sendEntry(entry);
  }

  function sendFromComposer() {
    const body = view.input.value;
    if (!body.trim()) return;
    view.input.value = '';
    autoGrow();
    stopTyping();
    const entry = { kind: 'message', client_id: randomId('w-'), body, created_at: Date.now() };
    if (state.replyTo) {
      entry.reply_to = state.replyTo.seq;
      cancelReply();
    }
    enqueue(entry);
  }

  function noteTyping() {
    if (!socket.greeted || !state.conversationId) return;
    if (!view.input.value.trim()) return stopTyping();
    if (!socket.typingOn) {
      socket.typingOn = socket.send({ type: 'typing', on: true });
    }
    clearTimeout(socket.typingTimer);
    socket.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    clearTimeout(socket.typingTimer);
    if (socket.typingOn) socket.send({ type: 'typing', on: false });
    socket.typingOn = false;
  }

  /** Tells the server what the visitor has seen, while the panel is open and visible;
   *  coalesced, so a replay of many messages costs one frame. */
  let readTimer = null;
  function markRead() {
    if (readTimer) return;
    readTimer = setTimeout(() => {
      readTimer = null;
      sendRead();
    }, 200);
  }

  function sendRead() {
    if (!state.open || document.visibilityState !== 'visible') return updateBadge();
    const seq = lastSeq();
    if (seq > state.visitorRead && socket.greeted && state.conversationId) {
      if (socket.send({ type: 'read', seq })) state.visitorRead = seq;
    }
    updateBadge();
  }

  // =====================================================================================
  // Forms: pre-chat (ID7), "please type your name" (CF2), offline (CF7)
  // =====================================================================================

  /** The inputs, error line and button of each form card. */
  const formParts = new WeakMap();

  function decideForms() {
    const c = state.config;
    if (!c || state.fatal) return;
    const cards = view.forms;
    const showing = (kind) => cards.querySelector(`.card.${kind}`);
    const pendingForm = (kind) => outbox.list().some((e) => e.kind === 'form' && e.form === kind);
    // A continue link being checked counts: it names a conversation (CF8).
    const hasConversation = Boolean(state.conversationId) || state.history.size > 0 || Boolean(state.continueCode);
    if (hasConversation) {
      // The conversation came (a continue link, another tab): nothing to ask before it.
      const pre = showing('prechat');
      if (pre) pre.remove();
    }

    // ID7: before the first message, for visitors the site has not vouched for. A form
    // with mandatory fields comes first even when nobody is online: the server refuses the
    // first message without them (`prechat_required`).
    const pre = c.prechat || {};
    const prechatOn = ['name', 'email', 'phone'].some((k) => pre[k] && pre[k] !== 'off');
    const prechatRequired = ['name', 'email', 'phone'].some((k) => pre[k] === 'required');
    const askPrechat = prechatOn && !IDENTITY && !hasConversation && !state.forms.prechat && !pendingForm('prechat');
    if (askPrechat && (c.online || prechatRequired)) {
      if (!showing('prechat')) cards.appendChild(prechatForm(pre));
      renderComposerState();
      return;
    }
    // CF7: nobody can answer now (no need when the pre-chat form gave an e-mail, or is
    // giving one: it may still be on its way).
    const prechatEmail =
      (state.forms.prechat && state.forms.email) ||
      outbox.list().some((e) => e.kind === 'form' && e.form === 'prechat' && e.fields && e.fields.email);
    const offlineDone = state.forms.offline || prechatEmail;
    if (!c.online && c.offline_form && !offlineDone && !pendingForm('offline') && !(IDENTITY && IDENTITY.email)) {
      if (!showing('offline')) cards.appendChild(offlineForm());
      return;
    }
    if (c.online) {
      const off = showing('offline');
      if (off) off.remove();
    }
    if (askPrechat) {
      if (!showing('prechat')) cards.appendChild(prechatForm(pre));
      renderComposerState();
      return;
    }
    // CF2: a while after the greeting, when nobody has a name for this visitor yet.
    if (c.name_form && !hasName() && !state.forms.name && !state.forms.nameDismissed && !pendingForm('name')) {
      if (showing('name') || nameFormTimer) return;
      const delay = Math.max(0, (c.name_form_delay_secs || 0) * 1000 - (Date.now() - greetingShownAt));
      nameFormTimer = setTimeout(() => {
        nameFormTimer = null;
        if (!hasName() && !state.forms.name && !state.forms.nameDismissed && !showing('name') && !state.fatal) {
          const stick = nearBottom();
          cards.appendChild(nameForm());
          if (stick) scrollToBottom();
        }
      }, delay);
    }
  }

  function field(key, { required = false, optional = false, type = 'text', autocomplete } = {}) {
    const id = randomId('f-');
    const input = h('input', { attrs: { id, name: key, type, autocomplete, required: required || null, 'aria-required': required ? 'true' : null } });
    const label = h('label', { attrs: { for: id } }, t[key], required ? ' *' : null, optional ? h('span', { class: 'optional', text: ` ${t.optional}` }) : null);
    return { wrap: h('div', { class: `field field-${key}` }, label, input), input };
  }

  /** A form card; `fields` are [key, options]; `onSubmit(values)` sends it. */
  function formCard(kind, text, fields, submitLabel, { dismissible = false } = {}) {
    const made = {};
    const error = h('p', { class: 'form-error', attrs: { role: 'alert', hidden: true } });
    const button = h('button', { class: 'primary', attrs: { type: 'submit' }, text: submitLabel });
    const form = h('form', { class: `card ${kind}`, attrs: { novalidate: true, 'data-form': kind } }, h('p', { class: 'card-text', text }));
    if (dismissible) {
      form.appendChild(
        h('button', {
          class: 'icon-button dismiss',
          attrs: { type: 'button', 'aria-label': t.dismiss, title: t.dismiss },
          on: {
            click: () => {
              state.forms.nameDismissed = true;
              saveForms();
              form.remove();
            },
          },
        }, icon('close')),
      );
    }
    for (const [key, opts] of fields) {
      made[key] = field(key, opts);
      form.appendChild(made[key].wrap);
    }
    form.appendChild(error);
    form.appendChild(button);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      error.hidden = true;
      const values = {};
      for (const [key, opts] of fields) {
        const input = made[key].input;
        const value = input.value.trim();
        input.removeAttribute('aria-invalid');
        if (!value && opts.required && !made[key].wrap.hidden) {
          input.setAttribute('aria-invalid', 'true');
          error.textContent = t.required(t[key]);
          error.hidden = false;
          input.focus();
          return;
        }
        if (value && !made[key].wrap.hidden) values[key] = value;
      }
      button.disabled = true;
      const entry = { kind: 'form', client_id: randomId('f-'), form: kind, fields: values };
      enqueue(entry);
    });
    formParts.set(form, { made, error, button });
    return form;
  }

  function nameForm() {
    const c = state.config;
    const card = formCard('name', c.name_form_text || t.nameFormText, [
      ['name', { required: true, autocomplete: 'name' }],
      ['email', { optional: true, type: 'email', autocomplete: 'email' }],
      ['phone', { optional: true, type: 'tel', autocomplete: 'tel' }],
    ], t.submit, { dismissible: true });
    const { made } = formParts.get(card);
    // CF2: only the name at first; e-mail and phone once a name is typed.
    made.email.wrap.hidden = true;
    made.phone.wrap.hidden = true;
    made.name.input.addEventListener('input', () => {
      if (made.name.input.value.trim()) {
        made.email.wrap.hidden = false;
        made.phone.wrap.hidden = false;
      }
    });
    return card;
  }

  function offlineForm() {
    const c = state.config;
    return formCard('offline', c.offline_text || t.offlineText, [
      ['email', { required: true, type: 'email', autocomplete: 'email' }],
      ['name', { optional: !hasName(), autocomplete: 'name' }],
    ], t.submit);
  }

  function prechatForm(rules) {
    const fields = [];
    const types = { name: 'text', email: 'email', phone: 'tel' };
    const auto = { name: 'name', email: 'email', phone: 'tel' };
    for (const key of ['name', 'email', 'phone']) {
      const rule = rules[key];
      if (!rule || rule === 'off') continue;
      fields.push([key, { required: rule === 'required', optional: rule !== 'required', type: types[key], autocomplete: auto[key] }]);
    }
    return formCard('prechat', t.prechatText, fields, t.start);
  }

  function formAccepted(entry) {
    if (entry.fields && entry.fields.email) state.forms.email = entry.fields.email;
    if (typeof entry.offer === 'number') {
      // The answer to an offer card: the card itself turns into the confirmation.
      if (entry.conversation === state.conversationId) {
        state.offers[offerKey(entry.offer)] = { done: true, email: entry.fields.email };
        saveOffers();
      }
      saveForms();
      refreshOffers();
      return;
    }
    state.forms[entry.form] = true;
    if (entry.fields && entry.fields.name) state.forms.named = true;
    saveForms();
    const card = view.forms.querySelector(`.card.${entry.form}`);
    if (card) card.remove();
    let thanks = null;
    if (entry.form === 'offline' && entry.fields.email) thanks = t.thanksOffline(entry.fields.email);
    else if (entry.fields && entry.fields.name) thanks = t.thanksName(entry.fields.name);
    if (thanks) {
      const note = h('div', { class: 'card thanks', attrs: { role: 'status', 'data-form-done': entry.form } }, h('p', { class: 'card-text', text: thanks }));
      view.forms.appendChild(note);
      setTimeout(() => note.remove(), 8000);
    }
    if (hasName() && nameFormTimer) {
      clearTimeout(nameFormTimer);
      nameFormTimer = null;
    }
    const nameCard = hasName() && view.forms.querySelector('.card.name');
    if (nameCard) nameCard.remove();
    renderComposerState();
    if (entry.form === 'prechat') {
      try {
        view.input.focus({ preventScroll: true });
      } catch {}
    }
    decideForms();
  }

  function formRefused(entry, why) {
    if (typeof entry.offer === 'number') {
      const li = entry.conversation === state.conversationId && view.offers.get(entry.offer);
      const m = li && state.history.get(entry.offer);
      if (!m) return showAlert(t.refused(why));
      return renderOffer(li, m, { error: t.refused(why) });
    }
    const card = view.forms.querySelector(`.card.${entry.form}`);
    if (!card) return showAlert(t.refused(why));
    const { error, button } = formParts.get(card);
    error.textContent = t.refused(why);
    error.hidden = false;
    button.disabled = false;
  }

  // =====================================================================================
  // Files (XB1): upload over HTTP with the visitor token, then a message with the id
  // =====================================================================================

  /** Runs `fn` once the visitor has a token (a new visitor's first welcome). */
  const afterWelcome = [];

  function uploadFile(file) {
    if (!navigator.onLine) return showAlert(t.uploadFailed(file.name, t.uploadOffline));
    if (!state.token) {
      afterWelcome.push(() => uploadFile(file));
      socket.want();
      return;
    }
    const li = h('li', { class: 'item visitor upload', attrs: { 'data-state': 'uploading' } });
    const bar = h('progress', { attrs: { max: '100', value: '0' } });
    li.appendChild(h('div', { class: 'bubble' }, h('div', { class: 'text', text: t.uploading(file.name) }), bar));
    view.messages.appendChild(li);
    scrollToBottom();

    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${ORIGIN}/api/uploads?name=${encodeURIComponent(file.name)}`);
    xhr.setRequestHeader('Authorization', `Visitor ${state.token}`);
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
    });
    xhr.addEventListener('load', () => {
      li.remove();
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {}
      if (xhr.status === 201 && body && body.id) {
        const attachment = { id: body.id, name: body.name, type: body.type, size: body.size };
        enqueue({ kind: 'message', client_id: randomId('w-'), body: '', attachment, created_at: Date.now() });
      } else {
        const why = (body && body.error && body.error.message) || `HTTP ${xhr.status}`;
        showAlert(t.uploadFailed(file.name, why));
      }
    });
    const failed = () => {
      li.remove();
      showAlert(t.uploadFailed(file.name, t.networkError));
    };
    xhr.addEventListener('error', failed);
    xhr.addEventListener('abort', failed);
    xhr.send(file);
  }

  // =====================================================================================
  // Start
  // =====================================================================================

  function start() {
    view = buildView();
    applyLanguage();
    // What the cache holds, then what is still waiting to go out.
    for (const m of Array.from(state.history.values()).sort((a, b) => a.seq - b.seq)) showCommitted(m);
    for (const entry of outbox.list()) if (entry.kind !== 'form') showPending(entry);
    updateBadge();
    renderNotice();

    loadConfig();
    // A continue link (CF8) opens the panel on its conversation. Reloading a page that
    // carries a link this browser already took (the server's /continue page) keeps the
    // token it got then instead of asking for another.
    const code = attr('continue') || continueFromHash();
    const taken = code && store.get('continued') === code && state.token && state.conversationId === continueConversation(code);
    if (code && !taken) state.continueCode = code;
    // A visitor with a conversation follows it (replies, unread count) even while the
    // panel is closed; a new one connects only when they open the chat.
    if (state.token || state.continueCode || outbox.list().length) socket.want();
    if (OPEN_AT_START || code || store.get('open', false)) openPanel();

    window.addEventListener('pagehide', () => {
      if (saveTimer) saveHistoryNow();
    });
    // A continue link opened while the site's page was already showing (only the
    // fragment changed, so the page did not load again).
    window.addEventListener('hashchange', () => {
      const next = continueFromHash();
      if (!next || state.fatal) return;
      state.continueCode = next;
      if (!state.open) openPanel();
      if (socket.greeted || socket.helloSent) socket.restart();
      else socket.want();
    });
    window.addEventListener('online', () => {
      renderNotice();
      socket.now();
    });
    window.addEventListener('offline', () => {
      renderNotice();
      // The socket may linger without a network; treat it as gone and queue meanwhile.
      if (socket.ws) socket.dropped();
    });
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') {
        markRead();
        socket.now();
      }
    });
  }

  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start, { once: true });
})();
