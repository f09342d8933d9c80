// The console's dialogs: reassignment with the operators' online state and a reason (OC8),
// a new internal chat with a colleague or a team (OC21), and the settings: display mode
// (OC2) and browser notifications (OC6).

import { api } from './api.js';
import { state, emit } from './model.js';
import { askNotificationPermission, notificationPermission } from './notify.js';
import { t } from './strings.js';
import { el, newClientId, replaceChildren } from './util.js';

const $ = (id) => document.getElementById(id);

let openConversationHook = () => {};
let reloadListHook = async () => {};
let reassigning = null;

export function initDialogs({ openConversation, reloadList }) {
  openConversationHook = openConversation;
  reloadListHook = reloadList;
  for (const dialog of document.querySelectorAll('dialog')) {
    dialog.querySelector('.dialog-cancel')?.addEventListener('click', () => dialog.close());
  }
  $('reassign-dialog').querySelector('form').addEventListener('submit', submitReassign);
  $('newchat-dialog').querySelector('form').addEventListener('submit', submitNewChat);
  $('new-chat').addEventListener('click', openNewChat);
  $('settings-button').addEventListener('click', openSettings);
  $('settings-dialog').addEventListener('change', onSettingsChange);
  $('notify-enable').addEventListener('click', async () => {
    await askNotificationPermission();
    renderNotifyState();
  });
}

function formError(dialog, text) {
  dialog.querySelector('.form-error').textContent = text || '';
}

async function refreshOperators() {
  try {
    state.operators = await api.operators();
    emit('directory');
  } catch {
    // Keep the list we have.
  }
}

// ---------------------------------------------------------------------------------------
// Reassign (OC8, XB12)

function choice(name, value, label, detail, checked = false) {
  const id = `${name}-${value}`;
  return el('li', {},
    el('input', { type: 'radio', name, id, value: String(value), checked }),
    el('label', { htmlFor: id },
      el('span', { class: 'choice-label', text: label }),
      detail ? el('span', { class: 'choice-detail' }, detail) : null));
}

/** Opens the reassignment dialog for conversation `c`. */
export async function openReassign(c) {
  reassigning = c.id;
  const dialog = $('reassign-dialog');
  formError(dialog, '');
  $('reassign-reason').value = '';
  await refreshOperators();
  const list = $('reassign-choices');
  const ops = state.operators.filter((o) => (o.can_chat || o.is_admin) && o.id !== c.assignee?.id);
  replaceChildren(list,
    ops.map((o) => choice('reassign-to', o.id, o.name, [
      el('span', { class: `presence ${o.online ? 'is-online' : 'is-offline'}`, text: o.online ? t('online') : t('offline') }),
      o.available === false ? el('span', { class: 'badge', text: t('away_badge') }) : null,
    ])),
    c.assignee ? choice('reassign-to', 'queue', t('back_to_queue'), null) : null);
  dialog.showModal();
  list.querySelector('input')?.focus();
}

async function submitReassign(e) {
  e.preventDefault();
  const dialog = $('reassign-dialog');
  const picked = dialog.querySelector('input[name=reassign-to]:checked');
  if (!picked) {
    formError(dialog, t('pick_operator'));
    return;
  }
  const to = picked.value === 'queue' ? null : Number(picked.value);
  const button = dialog.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    await api.assign(reassigning, to, $('reassign-reason').value.trim(), newClientId('as'));
    dialog.close();
  } catch (err) {
    formError(dialog, err.message);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// New internal chat (OC21, XB15)

async function openNewChat() {
  const dialog = $('newchat-dialog');
  formError(dialog, '');
  await refreshOperators();
  try {
    state.teams = await api.teams();
  } catch {
    // Keep the teams we have.
  }
  const colleagues = state.operators.filter((o) => o.id !== state.me.id && (o.can_chat || o.is_admin));
  const teams = state.teams.filter((team) => team.members.includes(state.me.id));
  replaceChildren($('newchat-colleagues'), colleagues.length
    ? colleagues.map((o) => choice('newchat', `op-${o.id}`, o.name,
      el('span', { class: `presence ${o.online ? 'is-online' : 'is-offline'}`, text: o.online ? t('online') : t('offline') })))
    : el('li', { class: 'hint', text: t('no_colleagues') }));
  replaceChildren($('newchat-teams'), teams.map((team) => choice('newchat', `team-${team.id}`, team.name, null)));
  $('newchat-teams-set').hidden = teams.length === 0;
  dialog.showModal();
  dialog.querySelector('input[name=newchat]')?.focus();
}

async function submitNewChat(e) {
  e.preventDefault();
  const dialog = $('newchat-dialog');
  const picked = dialog.querySelector('input[name=newchat]:checked');
  if (!picked) {
    formError(dialog, t('pick_chat'));
    return;
  }
  const [kind, id] = picked.value.split('-');
  const target = kind === 'op' ? { operator_id: Number(id) } : { team_id: Number(id) };
  const button = dialog.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const { conversation_id: conversationId } = await api.internal(target);
    dialog.close();
    await reloadListHook();
    openConversationHook(conversationId);
  } catch (err) {
    formError(dialog, err.message);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// Settings (OC2, OC6)

function renderNotifyState() {
  const p = notificationPermission();
  const text = p === 'granted' ? t('notifications_on') : p === 'denied' ? t('notifications_blocked') : p === 'unsupported' ? t('notifications_unsupported') : t('notifications_off');
  $('notify-state').textContent = text;
  $('notify-enable').hidden = p !== 'default';
}

function openSettings() {
  const dialog = $('settings-dialog');
  formError(dialog, '');
  for (const radio of dialog.querySelectorAll('input[name=display_mode]')) radio.checked = radio.value === (state.me.display_mode || 'section');
  renderNotifyState();
  dialog.showModal();
}

async function onSettingsChange(e) {
  if (e.target.name !== 'display_mode') return;
  const dialog = $('settings-dialog');
  formError(dialog, '');
  try {
    state.me = await api.updateMe({ display_mode: e.target.value });
    emit('me');
  } catch (err) {
    formError(dialog, err.message);
  }
}
