// The composer of the open conversation: replies and internal notes with @mentions (XB15),
// quoting a message (OC10), the typing indicator (XB5), and drafts kept on the server per
// operator and conversation (XB3): saved through the websocket `draft` frame while typing
// (debounced), on blur and when switching, over HTTP while the feed is down; restored on open;
// followed from my other consoles. A reply's text stays my draft on the server until the reply
// is durable (the server deletes it then), so a reload before that shows it again.

import { api } from './api.js';
import { state, on, isInternal, mayReply, authorName, applyDraft, operatorName } from './model.js';
import { sendMessage, pendingFor } from './outbox.js';
import { t } from './strings.js';
import { el, icon, debounce, snippet, replaceChildren, newClientId } from './util.js';
import { sendFrame } from './feed.js';

const $ = (id) => document.getElementById(id);

/** Draft saves wait this long after the last key (XB3). */
const DRAFT_DEBOUNCE_MS = 400;
/** `typing: on` is repeated this often while typing goes on, and `off` sent after this pause. */
const TYPING_REPEAT_MS = 5000;
const TYPING_IDLE_MS = 4000;

/** Hooks into the conversation view: the messages on screen, by seq. */
let messageBySeq = () => null;

/** What the composer holds for the open conversation. */
const compose = {
  id: null,
  replyTo: null,
  noteMode: false,
  /** Operators picked from the mention list: name → id. */
  mentions: new Map(),
  /** The mention being typed: { start, query, options, active }. */
  picking: null,
};

/** My drafts known in this page (typed here, or `draft` frames), by conversation. */
const drafts = new Map();
/** The draft body the server holds, as far as this page knows, by conversation. */
const serverDrafts = new Map();
/** Draft frames that found no socket, sent on reconnect. */
const unsent = new Map();
/** Saves over HTTP running, by conversation, with the newest draft waiting its turn. */
const httpSaves = new Map();
/** Bodies this page stored over HTTP, oldest first, by conversation: their `draft` frames
 * (replayed when the feed comes back) are my own echo. */
const echoes = new Map();
/** Most echoes remembered per conversation. */
const MAX_ECHOES = 50;

const typing = { id: null, on: false, lastOn: 0, timer: null };

/** This console's last reply, whose commit empties my draft on the server (and says so). */
const lastSent = { id: null, at: 0 };
/** How long an emptied draft counts as the echo of this console's own send. */
const OWN_SEND_ECHO_MS = 10_000;

function sendDraft(id, body, replyTo) {
  const frame = { type: 'draft', conversation_id: id, body, reply_to: body ? replyTo || null : null };
  serverDrafts.set(id, body);
  if (sendFrame(frame)) {
    unsent.delete(id);
    return;
  }
  unsent.set(id, frame);
  saveOverHttp(frame);
}

/**
 * Without the live feed a draft goes over HTTP (PUT /api/conversations/{id}/draft), so what is
 * typed while the socket is down is on the server should the page be reloaded. Not while the
 * browser says it is offline: the request could only fail. One save at a time per
 * conversation, the newest next; one that fails stays in `unsent` for the feed's return.
 */
function saveOverHttp(frame) {
  if (navigator.onLine === false) return;
  const id = frame.conversation_id;
  const running = httpSaves.get(id);
  if (running) {
    running.next = frame;
    return;
  }
  const slot = { next: null };
  httpSaves.set(id, slot);
  (async () => {
    let current = frame;
    while (current) {
      try {
        await api.saveDraft(id, current.body, current.reply_to);
        const mine = echoes.get(id) || [];
        mine.push(current.body);
        echoes.set(id, mine.slice(-MAX_ECHOES));
        if (unsent.get(id) === current) unsent.delete(id);
      } catch {
        // Kept in `unsent` (unless a newer draft replaced it): the feed sends it when back.
      }
      current = slot.next;
      slot.next = null;
    }
    httpSaves.delete(id);
  })();
}

const saveDraft = debounce(sendDraft, DRAFT_DEBOUNCE_MS);

/** Saves the open conversation's draft now if it changed (blur, switching, leaving). */
function flushDraft() {
  if (saveDraft.pending()) {
    saveDraft.flush();
    return;
  }
  if (compose.id === null) return;
  const body = $('composer-input').value;
  if ((serverDrafts.get(compose.id) ?? '') !== body) sendDraft(compose.id, body, compose.replyTo);
}

/** Draft frames that could not be sent while the feed was down. */
export function resendDrafts() {
  for (const frame of [...unsent.values()]) sendDraft(frame.conversation_id, frame.body, frame.reply_to);
}

/** After a reload the server is the truth again for conversations not being edited here. */
export function forgetDrafts() {
  for (const id of [...drafts.keys()]) if (id !== compose.id) drafts.delete(id);
  echoes.clear();
}

function typingOn() {
  const now = Date.now();
  if (!typing.on || typing.id !== compose.id || now - typing.lastOn > TYPING_REPEAT_MS) {
    if (typing.on && typing.id !== compose.id) typingOff();
    if (sendFrame({ type: 'typing', conversation_id: compose.id, on: true })) {
      typing.on = true;
      typing.id = compose.id;
      typing.lastOn = now;
    }
  }
  clearTimeout(typing.timer);
  typing.timer = setTimeout(typingOff, TYPING_IDLE_MS);
}

function typingOff() {
  clearTimeout(typing.timer);
  if (typing.on) sendFrame({ type: 'typing', conversation_id: typing.id, on: false });
  typing.on = false;
}

export function initComposer({ message }) {
  messageBySeq = message;
  const input = $('composer-input');
  input.addEventListener('input', onInput);
  input.addEventListener('keydown', onKeyDown);
  input.addEventListener('blur', () => {
    flushDraft();
    typingOff();
    setTimeout(closeMentions, 150);
  });
  // Leaving or reloading the page keeps what was typed (XB3).
  window.addEventListener('pagehide', flushDraft);
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    submit();
  });
  $('note-toggle').addEventListener('change', (e) => {
    compose.noteMode = e.target.checked;
    if (compose.noteMode) typingOff();
    renderComposer();
    input.focus();
  });
  $('write-note').addEventListener('click', () => {
    compose.noteMode = true;
    renderComposer();
    input.focus();
  });
  $('reply-preview').querySelector('.reply-cancel').append(icon('cross'));
  $('reply-preview').querySelector('.reply-cancel').addEventListener('click', () => {
    setReplyTo(null);
    input.focus();
  });
  // Files (XB1): the paperclip uploads, then sends a message that carries the file.
  const attach = $('attach-button');
  attach.append(icon('clip'));
  attach.addEventListener('click', () => $('attach-input').click());
  $('attach-input').addEventListener('change', (e) => {
    const file = e.target.files && e.target.files[0];
    if (file) uploadAndSend(file);
  });
  // The e-mail request card (EC3).
  $('ask-email').addEventListener('click', askEmail);
  $('mention-list').addEventListener('mousedown', (e) => {
    const option = e.target.closest('[role=option]');
    if (!option) return;
    e.preventDefault(); // keep the focus in the textarea
    pickMention(Number(option.dataset.operatorId));
  });
  on('changed', ({ id, header }) => {
    if (id === compose.id && header) renderComposer();
  });
  // The draft-emptying echo of my last reply comes when it is durable, however late that is.
  on('outbox', ({ item, committed }) => {
    if (committed && item.kind === 'text' && item.conversation_id === lastSent.id) lastSent.at = Date.now();
  });
}

/** Opens the composer on a conversation, with the draft this page knows for it. */
export function composeFor(id) {
  if (compose.id !== id) leaveComposer();
  setComposerError('');
  compose.id = id;
  compose.noteMode = false;
  compose.mentions.clear();
  closeMentions();
  const known = drafts.get(id);
  $('composer-input').value = known ? known.body : '';
  compose.replyTo = known ? known.reply_to || null : null;
  renderComposer();
}

/** My draft as GET /api/conversations/{id} gave it: restored unless I typed here already. */
export function restoreDraft(id, serverDraft) {
  // The text of a reply still in this page's outbox is no draft: it is on its way (or shown
  // as failed, with Retry), and its commit deletes it.
  const sending = serverDraft && pendingFor(id).some((i) => i.kind === 'text' && i.body === serverDraft.body);
  const draft = sending ? null : serverDraft;
  if (!unsent.has(id)) serverDrafts.set(id, draft ? draft.body : '');
  if (id !== compose.id || drafts.has(id)) return;
  const input = $('composer-input');
  if (!draft || input.value) return;
  input.value = draft.body;
  compose.replyTo = draft.reply_to || null;
  drafts.set(id, { body: draft.body, reply_to: compose.replyTo });
  applyDraft(id, draft.body);
  renderComposer();
}

/** Leaves the open conversation: the draft is saved, typing stops. */
export function leaveComposer() {
  if (compose.id === null) return;
  flushDraft();
  typingOff();
  compose.id = null;
  compose.replyTo = null;
  compose.noteMode = false;
  closeMentions();
}

/** A `draft` frame: my draft changed on another console (or was spent by a reply). */
export function handleDraftFrame(f) {
  const body = f.body || '';
  const id = f.conversation_id;
  const mine = echoes.get(id);
  const echo = mine ? mine.indexOf(body) : -1;
  if (echo >= 0) {
    // What this page itself stored over HTTP, replayed when the feed came back: an older
    // one must not take the composer back to it.
    mine.splice(0, echo + 1);
    if (!mine.length) echoes.delete(id);
    return;
  }
  const input = $('composer-input');
  // Unsaved typing here: the composer holds text the server has not been given yet.
  const unsaved = id === compose.id && (saveDraft.pending() || input.value !== (serverDrafts.get(id) ?? ''));
  serverDrafts.set(id, body);
  const ownSend = !body && id === lastSent.id && Date.now() - lastSent.at < OWN_SEND_ECHO_MS;
  if (id === compose.id && ownSend && input.value.trim()) {
    // My reply from this console emptied the draft; what I typed since is the next message.
    saveDraft(id, input.value, compose.replyTo);
    return;
  }
  applyDraft(id, body);
  if (id === compose.id && document.activeElement === input && unsaved) {
    // The operator is typing on this console: their text stays; it is saved as they go on.
    return;
  }
  if (body) drafts.set(id, { body, reply_to: f.reply_to || null });
  else drafts.delete(id);
  if (id === compose.id) {
    input.value = body;
    compose.replyTo = body ? f.reply_to || null : null;
    renderReplyPreview();
  }
}

/** Quotes a message of the open conversation in the reply (OC10). */
export function setReplyTo(seq) {
  compose.replyTo = seq;
  renderReplyPreview();
  const input = $('composer-input');
  if (compose.id !== null) {
    drafts.set(compose.id, { body: input.value, reply_to: seq });
    if (input.value.trim()) saveDraft(compose.id, input.value, seq);
  }
}

function onInput() {
  const input = $('composer-input');
  if (compose.id === null || input.readOnly) return;
  setComposerError('');
  const body = input.value;
  drafts.set(compose.id, { body, reply_to: compose.replyTo });
  applyDraft(compose.id, body, true);
  saveDraft(compose.id, body, compose.replyTo);
  const c = state.convs.get(compose.id);
  // Notes are for colleagues only: the visitor never sees me "typing" one.
  if (!compose.noteMode && mayReply(c) && body.trim()) typingOn();
  updateMentions();
}

function onKeyDown(e) {
  if (compose.picking && compose.picking.options.length) {
    const p = compose.picking;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const n = p.options.length;
      p.active = (p.active + (e.key === 'ArrowDown' ? 1 : n - 1)) % n;
      renderMentions();
      return;
    }
    if (e.key === 'Enter' || e.key === 'Tab') {
      e.preventDefault();
      pickMention(p.options[p.active].id);
      return;
    }
    if (e.key === 'Escape') {
      e.preventDefault();
      closeMentions();
      return;
    }
  }
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    submit();
  }
}

function submit() {
  const input = $('composer-input');
  const c = state.convs.get(compose.id);
  if (!c || input.readOnly) return;
  const body = input.value;
  if (!body.trim()) return;
  const note = compose.noteMode && !isInternal(c);
  if (!note && !mayReply(c)) return;
  const mentions = note
    ? [...compose.mentions].filter(([name]) => body.includes(`@${name}`)).map(([, id]) => id).slice(0, 20)
    : [];
  saveDraft.cancel();
  if (!note) {
    // Until the reply is durable its text stays my draft on the server, which deletes it at
    // the commit: a reload before that (the socket down, the reply refused) shows it again.
    // Saved before the reply, on the socket or over HTTP; never resent after it on reconnect,
    // where it would outlive the reply.
    if ((serverDrafts.get(c.id) ?? '') !== body) sendDraft(c.id, body, compose.replyTo);
    unsent.delete(c.id);
    lastSent.id = c.id;
    lastSent.at = Date.now();
  }
  sendMessage({ conversation_id: c.id, body, kind: note ? 'note' : 'text', reply_to: compose.replyTo, mentions });
  input.value = '';
  compose.replyTo = null;
  compose.mentions.clear();
  closeMentions();
  drafts.delete(c.id);
  applyDraft(c.id, '', true);
  // A note does not spend the draft on the server: delete it now. After a reply the server
  // holds its text until the commit; this page wants nothing kept after it, so leaving or a
  // blur sends nothing that would delete the text before then.
  if (note) sendDraft(c.id, '', null);
  else serverDrafts.set(c.id, '');
  typingOff();
  renderReplyPreview();
  input.focus();
}

// ---------------------------------------------------------------------------------------
// Files (XB1) and the e-mail request (EC3)

function setComposerError(text) {
  $('composer-error').textContent = text || '';
}

/**
 * Uploads `file` (POST /api/uploads) and sends it in the open conversation as a message with
 * an empty text (a note in note mode). A refusal shows the server's reason.
 */
async function uploadAndSend(file) {
  const id = compose.id;
  const c = state.convs.get(id);
  const input = $('attach-input');
  if (!c) return;
  const note = compose.noteMode && !isInternal(c);
  if (!note && !mayReply(c)) return;
  setComposerError('');
  const button = $('attach-button');
  const status = $('upload-status');
  status.textContent = t('uploading', { name: file.name });
  button.disabled = true;
  try {
    const info = await api.upload(file);
    sendMessage({ conversation_id: id, body: '', kind: note ? 'note' : 'text', attachment: info });
  } catch (e) {
    if (compose.id === id) setComposerError(t('upload_failed', { message: e.message }));
  } finally {
    status.textContent = '';
    button.disabled = false;
    input.value = '';
  }
}

/** Asks the visitor for their e-mail: an `offer` card in the widget; the event shows in the history. */
async function askEmail() {
  const c = state.convs.get(compose.id);
  if (!c || isInternal(c)) return;
  const button = $('ask-email');
  button.disabled = true;
  setComposerError('');
  try {
    await api.askEmail(c.id, newClientId('ask'));
  } catch (e) {
    setComposerError(e.message);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// @mentions in notes (XB15)

function updateMentions() {
  const input = $('composer-input');
  if (!compose.noteMode) return closeMentions();
  const before = input.value.slice(0, input.selectionStart);
  const m = /(^|\s)@([\p{L}\p{N}._-]*)$/u.exec(before);
  if (!m) return closeMentions();
  const query = m[2].toLowerCase();
  const options = state.operators
    .filter((o) => o.id !== state.me?.id && (o.can_chat || o.is_admin))
    .filter((o) => o.name.toLowerCase().split(/\s+/).some((w) => w.startsWith(query)) || o.name.toLowerCase().startsWith(query))
    .slice(0, 8);
  compose.picking = { start: before.length - m[2].length - 1, query, options, active: 0 };
  renderMentions();
}

function renderMentions() {
  const list = $('mention-list');
  const input = $('composer-input');
  const p = compose.picking;
  if (!p || !p.options.length) return closeMentions();
  replaceChildren(list, p.options.map((o, i) => el('li', {
    id: `mention-${o.id}`,
    class: 'mention-option',
    attrs: { role: 'option', 'aria-selected': i === p.active ? 'true' : 'false' },
    dataset: { operatorId: String(o.id) },
    text: o.name,
  })));
  list.hidden = false;
  input.setAttribute('aria-expanded', 'true');
  input.setAttribute('aria-controls', 'mention-list');
  input.setAttribute('aria-activedescendant', `mention-${p.options[p.active].id}`);
}

function closeMentions() {
  compose.picking = null;
  const list = $('mention-list');
  list.hidden = true;
  list.replaceChildren();
  const input = $('composer-input');
  input.setAttribute('aria-expanded', 'false');
  input.removeAttribute('aria-activedescendant');
}

function pickMention(id) {
  const p = compose.picking;
  const name = operatorName(id);
  if (!p || !name) return;
  const input = $('composer-input');
  const value = input.value;
  const end = input.selectionStart;
  const inserted = `@${name} `;
  input.value = value.slice(0, p.start) + inserted + value.slice(end);
  const caret = p.start + inserted.length;
  input.setSelectionRange(caret, caret);
  compose.mentions.set(name, id);
  closeMentions();
  onInput();
}

// ---------------------------------------------------------------------------------------
// Rendering

function renderReplyPreview() {
  const box = $('reply-preview');
  const text = box.querySelector('.reply-preview-text');
  const m = compose.replyTo ? messageBySeq(compose.replyTo) : null;
  if (!compose.replyTo) {
    box.hidden = true;
    text.replaceChildren();
    return;
  }
  const c = state.convs.get(compose.id);
  replaceChildren(text,
    el('strong', { text: t('replying_to', { author: m ? authorName(m, c) : t('quoted_unknown', { seq: compose.replyTo }) }) }),
    m ? el('span', { class: 'reply-preview-body', text: snippet(m.body, 140) }) : null);
  box.hidden = false;
}

/** Shows what I may write now: a reply, a note (OC14: read-only once reassigned), or a chat. */
export function renderComposer() {
  const c = state.convs.get(compose.id);
  const form = $('composer');
  const input = $('composer-input');
  const notice = $('composer-notice');
  const noteToggle = $('note-toggle');
  const writeNote = $('write-note');
  const send = $('composer-send');
  if (!c) return;
  const internal = isInternal(c);
  const canReply = mayReply(c);
  if (internal) compose.noteMode = false;
  const readOnly = !internal && !canReply && !compose.noteMode;
  input.readOnly = readOnly;
  input.setAttribute('aria-readonly', readOnly ? 'true' : 'false');
  form.classList.toggle('is-note', compose.noteMode);
  form.classList.toggle('is-readonly', readOnly);
  noteToggle.closest('label').hidden = internal || !canReply && !compose.noteMode;
  noteToggle.checked = compose.noteMode;
  let noticeText = '';
  if (!internal && !canReply) {
    noticeText = c.status === 'closed'
      ? t('closed_notice')
      : t('assigned_to_other', { name: c.assignee?.name || '' });
  }
  notice.textContent = noticeText;
  notice.hidden = !noticeText;
  writeNote.hidden = internal || canReply || compose.noteMode;
  send.disabled = readOnly;
  $('attach-button').hidden = readOnly;
  $('ask-email').hidden = internal || !canReply;
  send.textContent = compose.noteMode ? t('add_note') : t('send');
  input.placeholder = internal ? t('chat_placeholder') : compose.noteMode ? t('note_placeholder') : readOnly ? '' : t('composer_placeholder');
  renderReplyPreview();
}
