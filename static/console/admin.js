// The administration panel (administrators only): routing settings (OC3, OC4), operators
// (add; capacity, groups, teams, administrator), user groups and their chat permission
// (OC1), teams, and channels (title, kind, team). Every failure shows the API's message.

import { api } from './api.js';
import { state, emit } from './model.js';
import { t } from './strings.js';
import { el, replaceChildren } from './util.js';

const $ = (id) => document.getElementById(id);

const KINDS = ['web', 'email', 'whatsapp', 'sms', 'telegram', 'other'];

let data = { settings: null, operators: [], groups: [], teams: [], channels: [] };
let uid = 0;

/** Loads everything and draws the panel. */
export async function showAdmin() {
  const body = $('admin-body');
  replaceChildren(body, el('p', { class: 'hint', text: t('loading') }));
  try {
    const [settings, operators, groups, teams, channels] = await Promise.all([
      api.routingSettings(), api.operators(), api.groups(), api.teams(), api.channels(),
    ]);
    data = { settings, operators, groups, teams, channels };
  } catch (e) {
    replaceChildren(body, el('p', { class: 'form-error', attrs: { role: 'alert' }, text: t('error_prefix', { message: e.message }) }));
    return;
  }
  state.operators = data.operators;
  state.teams = data.teams;
  state.channels = new Map(data.channels.map((c) => [c.name, c]));
  emit('directory');
  render();
}

function render() {
  const body = $('admin-body');
  const scroll = body.parentElement.scrollTop;
  replaceChildren(body, routingSection(), operatorsSection(), groupsSection(), teamsSection(), channelsSection());
  body.parentElement.scrollTop = scroll;
}

/** A form that shows the API's error or "Saved." under it, then reloads the panel. */
function form(className, fields, submitLabel, action) {
  const error = el('p', { class: 'form-error', attrs: { role: 'alert' } });
  const ok = el('p', { class: 'form-ok', attrs: { role: 'status' } });
  const button = el('button', { type: 'submit', class: 'small primary', text: submitLabel });
  const node = el('form', { class: `admin-form ${className}`, noValidate: true }, fields, el('div', { class: 'form-actions' }, button, ok), error);
  node.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    ok.textContent = '';
    button.disabled = true;
    try {
      const message = await action(node);
      await showAdmin();
      const again = document.querySelector(`.${className.split(' ').pop()} .form-ok`);
      if (again) again.textContent = message || t('saved');
    } catch (err) {
      error.textContent = t('error_prefix', { message: err.message });
    } finally {
      button.disabled = false;
    }
  });
  return node;
}

function field(label, input) {
  const id = input.id || `admin-field-${++uid}`;
  input.id = id;
  return el('div', { class: 'field' }, el('label', { htmlFor: id, text: label }), input);
}

function check(label, input) {
  const id = input.id || `admin-check-${++uid}`;
  input.id = id;
  return el('div', { class: 'check' }, input, el('label', { htmlFor: id, text: label }));
}

function checkboxes(legend, name, options, selected) {
  return el('fieldset', { class: 'check-group' },
    el('legend', { text: legend }),
    options.length ? options.map((o) => check(o.name, el('input', { type: 'checkbox', name, value: String(o.id), checked: selected.includes(o.id) })))
      : el('span', { class: 'hint', text: t('none') }));
}

function checkedIds(node, name) {
  return [...node.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => Number(i.value));
}

function section(id, title, ...children) {
  return el('section', { class: 'admin-section card', id, attrs: { 'aria-labelledby': `${id}-heading` } },
    el('h2', { id: `${id}-heading`, text: title }), children);
}

// Routing (OC3, OC4)
function routingSection() {
  const s = data.settings;
  const chatters = data.operators.filter((o) => o.can_chat || o.is_admin);
  const assignee = el('select', { name: 'default_assignee_id', id: 'routing-default' },
    el('option', { value: '', text: t('default_assignee_none') }),
    chatters.map((o) => el('option', { value: String(o.id), text: o.name, selected: s.default_assignee_id === o.id })));
  return section('admin-routing', t('routing'), form('routing-form', [
    check(t('distribution'), el('input', { type: 'checkbox', name: 'distribution', id: 'routing-distribution', checked: s.distribution })),
    field(t('default_assignee'), assignee),
    field(t('auto_close'), el('input', { type: 'number', name: 'auto_close_minutes', id: 'routing-autoclose', min: 0, max: 43200, value: String(s.auto_close_minutes) })),
  ], t('save'), (node) => api.putRoutingSettings({
    distribution: node.elements.distribution.checked,
    default_assignee_id: node.elements.default_assignee_id.value ? Number(node.elements.default_assignee_id.value) : null,
    auto_close_minutes: Number(node.elements.auto_close_minutes.value || 0),
  }).then(() => t('saved'))));
}

// Operators
function operatorsSection() {
  const rows = data.operators.map((o) => el('li', { class: 'operator-row', dataset: { operatorId: String(o.id) } },
    form(`operator-form operator-${o.id}`, [
      el('p', { class: 'operator-title' }, el('strong', { text: o.name }), ' ', el('span', { class: 'hint', text: o.email })),
      el('div', { class: 'row-fields' },
        field(t('field_name'), el('input', { name: 'name', value: o.name, maxLength: 100 })),
        field(t('capacity'), el('input', { type: 'number', name: 'capacity', min: 0, max: 1000, value: String(o.capacity) })),
        check(t('is_admin'), el('input', { type: 'checkbox', name: 'is_admin', checked: o.is_admin }))),
      el('div', { class: 'row-fields' },
        checkboxes(t('groups'), 'groups', data.groups, o.groups),
        checkboxes(t('teams'), 'teams', data.teams, o.teams)),
    ], t('save'), (node) => api.updateOperator(o.id, {
      name: node.elements.name.value.trim(),
      capacity: Number(node.elements.capacity.value),
      is_admin: node.elements.is_admin.checked,
      groups: checkedIds(node, 'groups'),
      teams: checkedIds(node, 'teams'),
    }).then(() => t('saved')))));
  const add = form('add-operator-form', [
    el('div', { class: 'row-fields' },
      field(t('field_name'), el('input', { name: 'name', id: 'new-operator-name', maxLength: 100, autocomplete: 'off' })),
      field(t('field_email'), el('input', { type: 'email', name: 'email', id: 'new-operator-email', autocomplete: 'off' })),
      field(t('field_password'), el('input', { type: 'password', name: 'password', id: 'new-operator-password', autocomplete: 'new-password' })),
      check(t('is_admin'), el('input', { type: 'checkbox', name: 'is_admin', id: 'new-operator-admin' }))),
  ], t('add_operator'), (node) => api.addOperator({
    name: node.elements.name.value.trim(),
    email: node.elements.email.value.trim(),
    password: node.elements.password.value,
    is_admin: node.elements.is_admin.checked,
  }).then(() => t('created')));
  return section('admin-operators', t('operators'), el('ul', { class: 'admin-list' }, rows), el('h3', { text: t('add_operator') }), add);
}

// User groups (OC1)
function groupsSection() {
  const rows = data.groups.map((g) => {
    const box = el('input', { type: 'checkbox', checked: g.can_chat, id: `group-chat-${g.id}` });
    const error = el('p', { class: 'form-error', attrs: { role: 'alert' } });
    box.addEventListener('change', async () => {
      error.textContent = '';
      try {
        await api.updateGroup(g.id, box.checked);
        g.can_chat = box.checked;
      } catch (err) {
        box.checked = !box.checked;
        error.textContent = t('error_prefix', { message: err.message });
      }
    });
    return el('li', { class: 'group-row', dataset: { groupId: String(g.id) } },
      el('span', { class: 'group-name', text: g.name }), check(t('can_chat'), box), error);
  });
  const add = form('add-group-form', [
    el('div', { class: 'row-fields' },
      field(t('group_name'), el('input', { name: 'name', id: 'new-group-name', maxLength: 100, autocomplete: 'off' })),
      check(t('can_chat'), el('input', { type: 'checkbox', name: 'can_chat', id: 'new-group-chat', checked: true }))),
  ], t('create_group'), (node) => api.addGroup(node.elements.name.value.trim(), node.elements.can_chat.checked).then(() => t('created')));
  return section('admin-groups', t('user_groups'), el('ul', { class: 'admin-list' }, rows), add);
}

// Teams
function teamsSection() {
  const name = (id) => data.operators.find((o) => o.id === id)?.name || `#${id}`;
  const rows = data.teams.map((team) => el('li', { class: 'team-row', dataset: { teamId: String(team.id) } },
    el('strong', { text: team.name }), ' ',
    el('span', { class: 'hint', text: team.members.length ? t('team_members', { names: team.members.map(name).join(', ') }) : t('no_members') })));
  const add = form('add-team-form', [
    field(t('team_name'), el('input', { name: 'name', id: 'new-team-name', maxLength: 100, autocomplete: 'off' })),
  ], t('create_team'), (node) => api.addTeam(node.elements.name.value.trim()).then(() => t('created')));
  return section('admin-teams', t('teams'), el('ul', { class: 'admin-list' }, rows), add);
}

// Channels (OC9)
function kindSelect(value) {
  return el('select', { name: 'kind' }, KINDS.map((k) => el('option', { value: k, text: t(`kind_${k}`), selected: k === value })));
}

function teamSelect(value) {
  return el('select', { name: 'team_id' },
    el('option', { value: '', text: t('any_team') }),
    data.teams.map((team) => el('option', { value: String(team.id), text: team.name, selected: team.id === value })));
}

function channelBody(node) {
  return {
    title: node.elements.title.value.trim(),
    kind: node.elements.kind.value,
    team_id: node.elements.team_id.value ? Number(node.elements.team_id.value) : null,
  };
}

function channelsSection() {
  const rows = data.channels.map((ch) => el('li', { class: 'channel-row', dataset: { channel: ch.name } },
    form(`channel-form channel-${ch.id}`, [
      el('p', { class: 'operator-title' }, el('code', { text: ch.name })),
      el('div', { class: 'row-fields' },
        field(t('channel_title'), el('input', { name: 'title', value: ch.title, maxLength: 100 })),
        field(t('channel_kind'), kindSelect(ch.kind)),
        field(t('channel_team'), teamSelect(ch.team_id))),
    ], t('save'), (node) => api.updateChannel(ch.id, channelBody(node)).then(() => t('saved')))));
  const add = form('add-channel-form', [
    el('div', { class: 'row-fields' },
      field(t('channel_name'), el('input', { name: 'name', id: 'new-channel-name', maxLength: 64, autocomplete: 'off' })),
      field(t('channel_title'), el('input', { name: 'title', id: 'new-channel-title', maxLength: 100, autocomplete: 'off' })),
      field(t('channel_kind'), kindSelect('web')),
      field(t('channel_team'), teamSelect(null))),
  ], t('create_channel'), (node) => api.addChannel({ name: node.elements.name.value.trim(), ...channelBody(node) }).then(() => t('created')));
  return section('admin-channels', t('channels'), el('ul', { class: 'admin-list' }, rows), add);
}
