// The operator console's entry point: first run and login, the live feed wired to the
// views, notifications (OC6, XB15), the hash routes (#/c/7, #/c/7/m/12, #/admin), the
// display mode (OC2) and availability, and logout. See docs/CONSOLE.md.

import { api, ApiError, getToken, setToken, onUnauthorized } from './api.js';
import { Feed, live } from './feed.js';
import {
  state, on, emit, applyHeader, applyMessage, applyRead, applyDelivered, convName, isInternal, messageText,
} from './model.js';
import { initList, reloadList, scheduleReload, renderList } from './list.js';
import { handleAck, handleError, resendAll, outbox } from './outbox.js';
import { initComposer, handleDraftFrame, resendDrafts, forgetDrafts } from './composer.js';
import {
  initConversation, openConversation, closeConversation, handleMessage, handleTyping, markRead,
  catchUp, conversationVisible, messageOnScreen, openId, reloadOpen,
} from './conversation.js';
import { initDetails } from './details.js';
import { initCrm } from './crm.js';
import { initSuggestions, startSuggestions, stopSuggestions, refreshSuggestionsSoon } from './suggestions.js';
import { initSelection } from './selection.js';
import { initDialogs } from './dialogs.js';
import { initNotify, notify, errorToast } from './notify.js';
import { showOverview, refreshOverviewSoon } from './overview.js';
import { showAdmin } from './admin.js';
import { applyStrings, t } from './strings.js';

const $ = (id) => document.getElementById(id);

let feed = null;
let wired = false;
let ending = false;

// ---------------------------------------------------------------------------------------
// First run and login

function formError(form, text) {
  form.querySelector('.form-error').textContent = text || '';
}

async function showAuth(notice = '') {
  $('app').hidden = true;
  $('auth-screen').hidden = false;
  document.body.classList.remove('booting');
  document.title = t('app_title');
  const setupForm = $('setup-form');
  const loginForm = $('login-form');
  $('login-notice').textContent = notice;
  $('login-notice').hidden = !notice;
  let needed = false;
  try {
    needed = (await api.setupState()).needed;
  } catch {
    needed = false;
  }
  setupForm.hidden = !needed;
  loginForm.hidden = needed;
  (needed ? $('setup-name') : $('login-email')).focus();
}

function bindAuthForms() {
  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    formError(form, '');
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      const res = await api.login($('login-email').value.trim(), $('login-password').value);
      setToken(res.token);
      $('login-password').value = '';
      await startConsole();
    } catch (err) {
      formError(form, err instanceof ApiError && err.status === 401 ? t('login_failed') : err.message);
    } finally {
      button.disabled = false;
    }
  });
  $('setup-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    formError(form, '');
    if (!$('setup-name').value.trim() || !$('setup-email').value.includes('@')) {
      formError(form, t('setup_incomplete'));
      return;
    }
    if ($('setup-password').value.length < 8) {
      formError(form, t('password_hint'));
      $('setup-password').focus();
      return;
    }
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      const res = await api.setup($('setup-email').value.trim(), $('setup-name').value.trim(), $('setup-password').value);
      setToken(res.token);
      $('setup-password').value = '';
      await startConsole();
    } catch (err) {
      formError(form, err.message);
    } finally {
      button.disabled = false;
    }
  });
}

/** The login ended (401 anywhere, logout): back to the login form with a message. */
function endSession(notice) {
  if (ending) return;
  ending = true;
  feed?.stop();
  feed = null;
  live.feed = null;
  stopSuggestions();
  setToken(null);
  closeConversation();
  outbox.clear();
  state.me = null;
  state.convs.clear();
  state.listIds = new Set();
  state.openId = null;
  renderList();
  if (location.hash) history.replaceState(null, '', location.pathname);
  showAuth(notice).finally(() => {
    ending = false;
  });
}

// ---------------------------------------------------------------------------------------
// The console

async function loadDirectory() {
  const [operators, channels, teams] = await Promise.all([api.operators(), api.channels(), api.teams()]);
  state.operators = operators;
  state.channels = new Map(channels.map((c) => [c.name, c]));
  state.teams = teams;
  emit('directory');
}

async function startConsole() {
  let me;
  try {
    me = await api.me();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showAuth(e.message);
    return; // a 401 already went back to the login form
  }
  state.me = me;
  $('auth-screen').hidden = true;
  $('app').hidden = false;
  document.body.classList.remove('booting');
  wire();
  emit('me');
  try {
    await loadDirectory();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) errorToast(e.message);
    if (!state.me) return;
  }
  startFeed();
  startSuggestions();
  route();
}

/** Binds the views once per page. */
function wire() {
  if (wired) return;
  wired = true;
  initNotify($('toasts'), (id) => {
    location.hash = `#/c/${id}`;
  });
  initList();
  initComposer({ message: messageOnScreen });
  initConversation();
  initDetails();
  initCrm();
  initSuggestions();
  initSelection();
  on('crm', afterCrmChange);
  initDialogs({
    openConversation: (id) => {
      location.hash = `#/c/${id}`;
    },
    reloadList,
  });
  on('me', renderMe);
  window.addEventListener('hashchange', route);
  $('conv-back').addEventListener('click', leaveToList);
  $('popup-close').addEventListener('click', leaveToList);
  $('admin-button').addEventListener('click', () => {
    location.hash = '#/admin';
  });
  $('availability').addEventListener('click', toggleAvailability);
  $('logout').addEventListener('click', async () => {
    try {
      await api.logout();
    } catch {
      // The token may be gone already; the session ends either way.
    }
    endSession(t('logged_out'));
  });
  document.querySelector('.skip-link').addEventListener('click', (e) => {
    e.preventDefault();
    $('main-pane').focus();
  });
  document.querySelector('.brand').addEventListener('click', (e) => {
    e.preventDefault();
    leaveToList();
  });
  document.querySelector('#admin-pane .button-link').addEventListener('click', (e) => {
    e.preventDefault();
    leaveToList();
  });
}

function leaveToList() {
  if (location.hash) location.hash = '';
  else route();
}

function renderMe() {
  const me = state.me;
  if (!me) return;
  $('me-name').textContent = me.name;
  $('admin-button').hidden = !me.is_admin;
  const available = me.available !== false;
  const button = $('availability');
  button.setAttribute('aria-pressed', String(available));
  button.textContent = available ? t('available') : t('away');
  button.classList.toggle('is-away', !available);
  const popup = me.display_mode === 'popup';
  const changed = document.body.classList.contains('mode-popup') !== popup;
  document.body.classList.toggle('mode-popup', popup);
  document.body.classList.toggle('mode-section', !popup);
  if (changed) route();
}

async function toggleAvailability() {
  const want = state.me.available === false;
  try {
    state.me = await api.updateMe({ available: want });
    emit('me');
  } catch (e) {
    errorToast(e.message);
  }
}

/** Shows what the hash names: a conversation, the admin panel, or the list alone. */
function route() {
  if (!state.me) return;
  const hash = location.hash;
  const conv = /^#\/c\/(\d+)(?:\/m\/(\d+))?$/.exec(hash);
  const popup = state.me.display_mode === 'popup';
  let shown = 'none';
  if (conv) shown = 'chat';
  else if (hash === '#/admin' && state.me.is_admin) shown = 'admin';
  document.body.classList.toggle('has-open', shown === 'chat');
  document.body.classList.toggle('show-admin', shown === 'admin');
  $('chat').hidden = shown !== 'chat';
  $('admin-pane').hidden = shown !== 'admin';
  $('placeholder').hidden = shown !== 'none' || popup;
  showOverview(popup && shown !== 'admin');
  if (shown === 'chat') {
    const id = Number(conv[1]);
    state.openId = id;
    renderList();
    openConversation(id, conv[2] ? Number(conv[2]) : null);
  } else {
    if (openId() !== null) closeConversation();
    state.openId = null;
    renderList();
    document.title = t('app_title');
    if (shown === 'admin') showAdmin();
  }
}

// ---------------------------------------------------------------------------------------
// The live feed

function startFeed() {
  feed?.stop();
  feed = new Feed(getToken());
  live.feed = feed;
  let first = true;
  feed.addEventListener('state', (e) => renderConnection(e.detail));
  renderConnection(feed.state);
  feed.addEventListener('unauthorized', () => endSession(t('session_ended')));
  feed.addEventListener('ready', (e) => {
    const ready = e.detail;
    state.me = { ...state.me, ...ready.operator };
    emit('me');
    if (first || !ready.resumed) {
      if (!first) forgetDrafts();
      reloadList();
      if (!first) catchUp();
      api.operators().then((ops) => {
        state.operators = ops;
        emit('directory');
      }).catch(() => {});
    }
    if (!first && !ready.resumed) refreshSuggestionsSoon();
    first = false;
    resendAll();
    resendDrafts();
    markRead();
  });
  feed.addEventListener('frame', (e) => onFrame(e.detail));
  feed.start();
}

function renderConnection(s) {
  const node = $('conn');
  node.dataset.state = s;
  node.textContent = t(`conn_${s}`);
}

function onFrame(f) {
  switch (f.type) {
    case 'conversation':
      applyHeader(f.conversation);
      refreshOverviewSoon();
      // A colleague's edit of the customer (VIP, address…) sends the header again: the open
      // card follows (OC19).
      if (f.conversation.id === openId() && f.conversation.contact) emit('crm', { contacts: [f.conversation.contact.id] });
      break;
    case 'message': {
      const c = applyMessage(f);
      if (!c) scheduleReload(); // a conversation the list does not know yet (a new internal chat)
      handleMessage(f);
      notifyFor(f);
      if (f.kind === 'event' && f.body === 'form') {
        // A visitor's form may raise merge suggestions and changes their card (XB11, CF3).
        refreshSuggestionsSoon();
        if (f.meta?.contact?.id) emit('crm', { contacts: [f.meta.contact.id] });
      }
      break;
    }
    case 'suggestions':
      // A visitor's form or a colleague's edit raised merge suggestions (XB11).
      refreshSuggestionsSoon();
      break;
    case 'ack': {
      const m = handleAck(f);
      if (m) applyMessage(m);
      break;
    }
    case 'error':
      if (!handleError(f)) errorToast(f.message);
      break;
    case 'typing':
      handleTyping(f);
      break;
    case 'read':
      applyRead(f);
      break;
    case 'delivered':
      applyDelivered(f);
      break;
    case 'draft':
      handleDraftFrame(f);
      break;
    default:
      break;
  }
}

/**
 * After a merge, an erasure or an accepted suggestion: conversations whose actors are asleep
 * send no `conversation` frame, so the list is reloaded; after an erasure the open
 * conversation is loaded again, its texts gone (XB6).
 */
function afterCrmChange({ merged = false, erased = false, conversations = [] }) {
  if (!merged && !erased) return;
  scheduleReload();
  const open = openId();
  if (erased && open !== null && conversations.includes(open)) reloadOpen();
}

/** OC6: a customer wrote; XB15: a colleague mentioned me, or wrote in our internal chat. */
async function notifyFor(m) {
  const me = state.me;
  if (!me || m.author?.kind === 'system' || (m.author?.kind === 'operator' && m.author.id === me.id)) return;
  let c = state.convs.get(m.conversation_id);
  if (!c && m.author?.kind === 'operator') {
    // A chat the console does not know yet: a colleague just started it with me.
    try {
      c = applyHeader((await api.conversation(m.conversation_id, m.seq)).conversation);
    } catch {
      return;
    }
  }
  const onScreen = openId() === m.conversation_id && conversationVisible();
  if (m.kind === 'note') {
    if ((m.meta?.mentions || []).includes(me.id)) {
      notify({ title: t('mentioned_you', { name: m.author?.name || '' }), body: messageText(m), id: m.conversation_id });
    }
    return;
  }
  if (m.kind !== 'text' || onScreen) return;
  // A customer of mine, or one nobody has yet; a colleague's customers do not ping me.
  const forMe = c && !isInternal(c) && (!c.assignee || c.assignee.id === me.id);
  if ((m.author?.kind === 'visitor' && (forMe || !c)) || (c && isInternal(c))) {
    const sender = m.author?.kind === 'operator' ? m.author.name : c ? convName(c) : t('author_visitor');
    notify({ title: sender, body: messageText(m), id: m.conversation_id });
  }
}

// ---------------------------------------------------------------------------------------

function boot() {
  applyStrings(document);
  // On a phone the filters start folded, leaving the screen to the list.
  if (window.matchMedia('(max-width: 760px)').matches) $('filters').open = false;
  document.title = t('app_title');
  onUnauthorized(() => endSession(t('session_ended')));
  bindAuthForms();
  if (getToken()) startConsole();
  else showAuth();
}

boot();

