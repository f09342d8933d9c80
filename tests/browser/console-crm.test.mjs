// Browser tests of the console's CRM and e-mail screens (static/console, docs/CONSOLE.md):
// the customer card (OC16, OC19, OC20), select text to fill a field (OC16), linking by hand
// (XB2), merge suggestions and merges (XB11, ID3), export and erasure (XB6), files from the
// console (XB1) and the e-mail request and e-mails list (EC3, CF5, CF8). The real server,
// Chromium, operators in separate browser contexts, visitors simulated with websockets to
// /ws/visitor opened from a page of the server's origin. One server per backend is shared by
// the tests of this file; each test makes its own operators, visitors and customers.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { addOperator, apiLogin, backends, launchBrowser, newPage, postgresStatus, startServer } from './harness.mjs';

const TIMEOUT = 60_000;
const PASSWORD = 'a long console password';
const TOKEN_KEY = 'charla.console.token';
/** Markup a visitor may type; it must stay text wherever the console shows it. */
const MARKUP = '<img src=x onerror=alert(1)><b>bold</b>';
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

// ---------------------------------------------------------------------------------------
// HTTP

/** One API call; answers `{status, body}`. A 503 with a retry hint is retried. */
async function call(server, token, method, path, body) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    if (res.status === 503 && attempt < 5) {
      await new Promise((r) => setTimeout(r, JSON.parse(text).error?.retry_after_ms || 200));
      continue;
    }
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }
}

/** One API call that must succeed; answers the body. */
async function http(server, token, method, path, body) {
  const res = await call(server, token, method, path, body);
  if (res.status >= 300) throw new Error(`${method} ${path} answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body;
}

let operatorCounter = 0;

/** A new operator made by the administrator over the API; returns {id, name, email, token}. */
async function createOperator(server, adminToken, name, { admin = false } = {}) {
  const email = `${name.toLowerCase().replace(/[^a-z]+/g, '')}-${++operatorCounter}@example.com`;
  const op = await http(server, adminToken, 'POST', '/api/operators', { email, name, password: PASSWORD, is_admin: admin });
  const token = await apiLogin(server, email, PASSWORD);
  return { ...op, email, token };
}

// ---------------------------------------------------------------------------------------
// Visitors: websockets opened from a page of the server's origin

async function openVisitorHost(browser, server) {
  const page = await newPage(browser);
  await page.goto(`${server.url}/`);
  await page.evaluate(() => {
    window.visitors = {};
    window.openVisitor = (key, hello) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/ws/visitor`);
        const v = { frames: [], token: null, conversationId: null, ws };
        window.visitors[key] = v;
        ws.onmessage = (e) => {
          const f = JSON.parse(e.data);
          v.frames.push(f);
          if (f.type === 'welcome') {
            if (f.visitor_token) v.token = f.visitor_token;
            resolve(f);
          }
          if (f.conversation_id) v.conversationId = f.conversation_id;
        };
        ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', ...hello }));
        ws.onerror = () => reject(new Error('visitor socket failed'));
      });
  });
  return page;
}

let visitorCounter = 0;

class Visitor {
  constructor(host, hello = {}) {
    this.host = host;
    this.key = `v${++visitorCounter}`;
    this.hello = hello;
  }

  connect() {
    return this.host.evaluate(([key, hello]) => window.openVisitor(key, hello), [this.key, this.hello]);
  }

  send(frame) {
    return this.host.evaluate(([key, f]) => window.visitors[key].ws.send(JSON.stringify(f)), [this.key, frame]);
  }

  /** Sends a frame with a fresh client_id and waits for its ack (an error fails the test). */
  async write(frame) {
    const clientId = `c-${this.key}-${Math.random().toString(36).slice(2)}`;
    await this.send({ ...frame, client_id: clientId });
    const answer = await this.waitFrame((f, cid) => (f.type === 'ack' || f.type === 'error') && f.client_id === cid, clientId);
    assert.equal(answer.type, 'ack', `visitor frame refused: ${JSON.stringify(answer)}`);
    return answer;
  }

  say(body) {
    return this.write({ type: 'message', body });
  }

  form(form, fields) {
    return this.write({ type: 'form', form, fields });
  }

  /**
   * Waits for a frame for which `match(frame, arg)` is true. `match` runs in the page: it is
   * sent as source, so it may use nothing but its arguments.
   */
  async waitFrame(match, arg = null, timeout = 10_000) {
    const expression = `window.visitors[${JSON.stringify(this.key)}].frames.find((f) => (${match.toString()})(f, ${JSON.stringify(arg)}))`;
    const handle = await this.host.waitForFunction(expression, null, { timeout });
    return handle.jsonValue();
  }
}

/** A visitor in a conversation: connected, a first message, optionally a form. Returns {v, id, seq}. */
async function visitorSays(host, body, { hello = {}, form = null } = {}) {
  const v = new Visitor(host, hello);
  await v.connect();
  const ack = await v.say(body);
  if (form) await v.form(form.form || 'name', form.fields);
  return { v, id: ack.conversation_id, seq: ack.seq };
}

// ---------------------------------------------------------------------------------------
// Console pages

async function openConsole(browser, server, op, { hash = '', viewport } = {}) {
  const page = await newPage(browser, { viewport, acceptDownloads: true });
  page.dialogs = [];
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  await page.goto(`${server.url}/console/`);
  await page.evaluate(([k, token, h]) => {
    localStorage.setItem(k, token);
    if (h) history.replaceState(null, '', h);
  }, [TOKEN_KEY, op.token, hash]);
  await page.reload();
  await page.waitForSelector('#conn[data-state=connected]');
  return page;
}

const item = (id) => `#conv-list li[data-conversation-id="${id}"]`;

async function waitText(page, selector, text, timeout = 10_000) {
  await page.waitForFunction(
    ([sel, txt]) => [...document.querySelectorAll(sel)].some((n) => n.textContent.includes(txt)),
    [selector, text],
    { timeout },
  );
}

async function openConversationIn(page, id) {
  await page.waitForSelector(`${item(id)} a`);
  await page.click(`${item(id)} a`);
  await page.waitForFunction((cid) => location.hash === `#/c/${cid}`, id);
  await page.waitForSelector('#conv-status:empty', { state: 'attached' });
}

/** Waits for the customer card of contact `name` (its header) in the details panel. */
async function waitCard(page, name) {
  await waitText(page, '#details-body .customer-card[data-contact-id] .contact-name', name);
  await page.waitForSelector('#details-body .customer-card .card-form, #details-body .customer-card.is-erased');
}

/** Selects `needle` inside the text of message `seq`, as a mouse drag would, and lets go. */
async function selectInMessage(page, seq, needle) {
  await page.evaluate(([s, n]) => {
    const body = document.querySelector(`#messages li[data-seq="${s}"] .msg-body`);
    const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode()) && !node.data.includes(n));
    if (!node) throw new Error(`"${n}" is not in message ${s}`);
    const at = node.data.indexOf(n);
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + n.length);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    body.dispatchEvent(new MouseEvent('mouseup', { bubbles: true }));
  }, [seq, needle]);
  await page.waitForSelector('#set-as-menu');
}

/** No element was made from visitor text, and no dialog fired. */
async function assertNoInjection(page) {
  const injected = await page.evaluate(() => document.querySelectorAll('body script, body b, body i, body [onerror], body img:not([src^="/files/"])').length);
  assert.equal(injected, 0, 'no element was made from visitor text');
  assert.deepEqual(page.dialogs, []);
}

function unexpected(page, ...allowed) {
  return page.errors.filter((e) => !allowed.some((re) => re.test(e)));
}

async function waitFor(check, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---------------------------------------------------------------------------------------

let browser;

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

let tested = ['sqlite'];
let postgresProblem = null;
try {
  tested = backends();
} catch (e) {
  postgresProblem = e;
}

for (const backend of tested) {
  describe(`console CRM on ${backend}`, { timeout: 8 * TIMEOUT }, () => {
    let server;
    let admin;
    let host;
    const pages = [];

    async function consoleOf(op, options) {
      const page = await openConsole(browser, server, op, options);
      pages.push(page);
      return page;
    }

    async function closePages() {
      while (pages.length) await pages.pop().context().close();
    }

    before(async () => {
      server = await startServer({ backend });
      const email = `ana-${backend}@example.com`;
      await addOperator(server, { email, name: 'Ana Admin', password: PASSWORD, admin: true });
      admin = { email, name: 'Ana Admin', token: await apiLogin(server, email, PASSWORD) };
      admin.id = (await http(server, admin.token, 'GET', '/api/me')).id;
      await http(server, admin.token, 'PUT', '/api/settings/routing', { distribution: false, default_assignee_id: null, auto_close_minutes: 0 });
      host = await openVisitorHost(browser, server);
    });

    after(async () => {
      await closePages();
      await host?.context().close();
      await server?.stop();
    });

    test('customer card: edit and save, VIP kept after reload, select text to fill the phone and the address, link by hand, conversations', { timeout: TIMEOUT }, async () => {
      const op = await createOperator(server, admin.token, 'Carla Card');
      const a = await visitorSays(host, 'Hola, quiero cambiar mis datos', { form: { fields: { name: 'Laura' } } });
      const phoneSeq = (await a.v.say('Mi nuevo teléfono es +34 600 111 222, gracias')).seq;
      const addressSeq = (await a.v.say('Calle Falsa 123, Sevilla')).seq;
      const markupSeq = (await a.v.say(MARKUP)).seq;
      const page = await consoleOf(op);
      await openConversationIn(page, a.id);
      await waitCard(page, 'Laura');
      const contactId = Number(await page.getAttribute('#details-body .customer-card', 'data-contact-id'));

      // Edit the card (OC16): names make the display name, which reaches the header live (OC19).
      await page.fill('#card-first-name', 'Laura');
      await page.fill('#card-last-name', 'Gómez Ruiz');
      await page.waitForSelector('#details-body .card-form.has-changes .unsaved-note:not([hidden])');
      await page.click('#details-body .card-save');
      await waitText(page, '#conv-title', 'Laura Gómez Ruiz');
      await waitText(page, `${item(a.id)} .conv-name`, 'Laura Gómez Ruiz');
      await waitText(page, '#details-body .contact-name', 'Laura Gómez Ruiz');
      assert.equal(await page.inputValue('#card-last-name'), 'Gómez Ruiz');

      // VIP and BAD are toggles saved at once; VIP is still on after a reload.
      assert.equal(await page.getAttribute('#card-vip', 'aria-pressed'), 'false');
      await page.click('#card-vip');
      await page.waitForSelector('#card-vip[aria-pressed=true]');
      await page.waitForSelector('#details-body .contact-name .badge-vip');
      await page.reload();
      await page.waitForSelector('#conn[data-state=connected]');
      await waitCard(page, 'Laura Gómez Ruiz');
      await page.waitForSelector('#card-vip[aria-pressed=true]');
      assert.equal(await page.getAttribute('#card-bad', 'aria-pressed'), 'false');
      assert.equal((await http(server, op.token, 'GET', `/api/contacts/${contactId}`)).vip, true);

      // Select text in a message to fill a field (OC16): the phone, then saved as an identifier.
      await selectInMessage(page, phoneSeq, '+34 600 111 222');
      assert.equal(await page.textContent('#set-as-menu .set-as-preview'), '“+34 600 111 222”');
      assert.deepEqual(await page.$$eval('#set-as-menu [role=menuitem]', (ns) => ns.map((n) => n.textContent)),
        ['First name', 'Last name', 'Phone', 'E-mail', 'Address']);
      await page.click('#set-as-menu [data-field=phone]');
      await page.waitForSelector('#set-as-menu', { state: 'detached' });
      assert.equal(await page.inputValue('#card-phone'), '+34 600 111 222');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'card-phone', 'the filled field has the focus');
      await page.waitForSelector('#card-phone.is-dirty');
      await page.press('#card-phone', 'Enter');
      await page.waitForSelector('#details-body .identifier[data-kind=phone][data-value="+34600111222"] .id-unverified');
      assert.equal(await page.inputValue('#card-phone'), '');
      const card = await http(server, op.token, 'GET', `/api/contacts/${contactId}`);
      assert.equal(card.phone, '+34600111222');

      // From the keyboard: the message's actions menu, "Set as customer field…", End, Enter.
      await page.click(`#messages li[data-seq="${addressSeq}"] .msg-menu-button`);
      await page.click(`#messages li[data-seq="${addressSeq}"] [data-action=set-as]`);
      await page.waitForFunction(() => document.activeElement?.closest('#set-as-menu'));
      await page.keyboard.press('End');
      assert.equal(await page.evaluate(() => document.activeElement.dataset.field), 'address');
      await page.keyboard.press('Enter');
      assert.equal(await page.inputValue('#card-address'), 'Calle Falsa 123, Sevilla');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'card-address');
      await page.click('#details-body .card-save');
      await page.waitForFunction(() => document.querySelector('#card-address')?.dataset.original === 'Calle Falsa 123, Sevilla');
      // Escape closes the menu and gives the focus back to the message.
      await page.click(`#messages li[data-seq="${addressSeq}"] .msg-menu-button`);
      await page.click(`#messages li[data-seq="${addressSeq}"] [data-action=set-as]`);
      await page.waitForSelector('#set-as-menu');
      await page.keyboard.press('Escape');
      await page.waitForSelector('#set-as-menu', { state: 'detached' });
      assert.equal(await page.evaluate(() => document.activeElement.classList.contains('msg-menu-button')), true);

      // Visitor markup stays text: in the selection menu and in a card field.
      await selectInMessage(page, markupSeq, MARKUP);
      assert.equal(await page.textContent('#set-as-menu .set-as-preview'), `“${MARKUP}”`);
      await page.click('#set-as-menu [data-field=first_name]');
      assert.equal(await page.inputValue('#card-first-name'), MARKUP);
      await page.click('#details-body .card-save');
      await waitText(page, '#conv-title', `${MARKUP} Gómez Ruiz`);
      await waitText(page, '#details-body .contact-name', `${MARKUP} Gómez Ruiz`);
      assert.equal(await page.evaluate(() => document.querySelector('#details-body .contact-name').firstChild.data), `${MARKUP} Gómez Ruiz`);
      assert.equal(await page.textContent('#conv-title'), `${MARKUP} Gómez Ruiz`);
      await page.fill('#card-first-name', 'Laura');
      await page.click('#details-body .card-save');
      await waitText(page, '#conv-title', 'Laura Gómez Ruiz');

      // A refused value shows the server's reason.
      await page.fill('#card-email', 'not an address');
      await page.click('#details-body .card-save');
      await waitText(page, '#details-body .card-error', 'e-mail address is not valid');
      await page.fill('#card-email', '');

      // Link another visitor's conversation by hand (XB2): search, pick; the card lists both (OC20).
      const b = await visitorSays(host, 'Soy Laura otra vez, desde el móvil');
      await openConversationIn(page, b.id);
      await page.waitForSelector('#details-body .customer-form');
      // A visitor not in the CRM: a selection offers the name and the customer search.
      await selectInMessage(page, b.seq, 'Laura');
      assert.deepEqual(await page.$$eval('#set-as-menu [role=menuitem]', (ns) => ns.map((n) => n.dataset.field)), ['customer_name', 'link_search']);
      await page.click('#set-as-menu [data-field=link_search]');
      assert.equal(await page.inputValue('#link-search'), 'Laura');
      await page.click(`#details-body .link-choice[data-contact-id="${contactId}"]`);
      await waitText(page, '#conv-title', 'Laura Gómez Ruiz');
      await waitCard(page, 'Laura Gómez Ruiz');
      await waitText(page, '#details-body .card-conv-count', 'Conversations (2)');
      const rows = await page.$$eval('#details-body .customer-convs li', (ns) => ns.map((n) => n.textContent));
      assert.equal(rows.length, 2);
      assert.match(rows.find((r) => r.startsWith(`#${a.id} `)), new RegExp(`^#${a.id} · Website · Open · 4 messages started `));
      assert.match(rows.find((r) => r.startsWith(`#${b.id} `)), new RegExp(`^#${b.id} · Website · Open · 1 message started `));
      assert.equal(await page.getAttribute(`#details-body .customer-convs li[data-conversation-id="${b.id}"] a`, 'aria-current'), 'true');
      await page.click(`#details-body .customer-convs li[data-conversation-id="${a.id}"] a`);
      await page.waitForFunction((cid) => location.hash === `#/c/${cid}`, a.id);
      await page.waitForSelector(`#messages li[data-seq="${phoneSeq}"]`);

      await assertNoInjection(page);
      assert.deepEqual(unexpected(page, /status of 400 .*\/api\/contacts\/\d+:0\)$/), []);
      await closePages();
    });

    test('merge suggestions: a typed e-mail of another customer is suggested; Accept merges, Reject keeps apart; merge by hand', { timeout: TIMEOUT }, async () => {
      const op = await createOperator(server, admin.token, 'Mario Merge');
      const page = await consoleOf(op);
      const email = `<b>pedro</b>-${backend}@example.com`;
      const p1 = await visitorSays(host, 'Hola, soy Pedro', { form: { form: 'prechat', fields: { name: 'Pedro Pérez', email } } });
      // Another visitor types the same address: a lead of their own, and a suggestion.
      const p2 = await visitorSays(host, 'Soy yo otra vez', { form: { form: 'prechat', fields: { name: `Pedro ${MARKUP}`, email } } });
      const pending = await http(server, op.token, 'GET', '/api/suggestions');
      const sp = pending.find((s) => s.value === email);
      assert.ok(sp, 'the server raised a suggestion');
      assert.equal(sp.candidate.name, 'Pedro Pérez');

      // The header counts the pending suggestions; the dialog explains and lists them.
      await page.waitForFunction((n) => Number(document.querySelector('#suggestions-count').textContent) >= n, pending.length);
      await page.click('#suggestions-button');
      await page.waitForSelector('#suggestions-dialog[open]');
      assert.match(await page.textContent('#suggestions-dialog .hint'), /not verified/);
      const row = `#suggestions-list .suggestion[data-suggestion-id="${sp.id}"]`;
      await page.waitForSelector(row);
      assert.equal(await page.textContent(`${row} .suggestion-text`), `Pedro ${MARKUP} gave the e-mail ${email}, which Pedro Pérez already has.`);
      await page.click(`${row} .suggestion-accept`);
      await page.waitForSelector(row, { state: 'detached' });
      await page.click('#suggestions-dialog .dialog-cancel');
      // Both conversations are the one customer's now.
      await openConversationIn(page, p2.id);
      await waitText(page, '#conv-title', 'Pedro Pérez');
      await waitCard(page, 'Pedro Pérez');
      await waitText(page, '#details-body .card-conv-count', 'Conversations (2)');
      await page.waitForSelector(`#details-body .customer-convs li[data-conversation-id="${p1.id}"]`);
      // The identifier typed twice is the customer's once, not verified.
      await page.waitForSelector(`#details-body .identifier[data-kind=email] .id-unverified`);
      assert.equal(await page.textContent('#details-body .identifier[data-kind=email] .id-value'), email);
      assert.equal((await http(server, op.token, 'GET', '/api/suggestions')).some((s) => s.id === sp.id), false);

      // Reject: from the card, which shows the suggestions of its customer.
      const remail = `rosa-${backend}@example.com`;
      const r1 = await visitorSays(host, 'Hola, soy Rosa', { form: { form: 'prechat', fields: { name: 'Rosa Ríos', email: remail } } });
      const r2 = await visitorSays(host, 'Hola', { form: { form: 'prechat', fields: { name: 'Rosa R.', email: remail } } });
      const sr = (await http(server, op.token, 'GET', '/api/suggestions')).find((s) => s.value === remail);
      await openConversationIn(page, r2.id);
      await waitCard(page, 'Rosa R.');
      const cardRow = `#details-body .card-suggestions .suggestion[data-suggestion-id="${sr.id}"]`;
      await page.waitForSelector(cardRow);
      assert.equal(await page.textContent(`${cardRow} .suggestion-text`), `Rosa R. gave the e-mail ${remail}, which Rosa Ríos already has.`);
      await page.click(`${cardRow} .suggestion-reject`);
      await page.waitForSelector(cardRow, { state: 'detached' });
      assert.ok((await http(server, op.token, 'GET', '/api/suggestions?status=rejected')).some((s) => s.id === sr.id));
      await waitText(page, '#details-body .card-conv-count', 'Conversations (1)');

      // Merge by hand (ID3): "Merge into…", search, pick, confirm; the header follows (OC19).
      await page.click('#details-body .merge-into');
      await page.waitForSelector('#merge-dialog[open]');
      assert.equal(await page.isDisabled('#merge-submit'), true);
      await page.fill('#merge-search', 'Rosa');
      const r1Contact = (await http(server, op.token, 'GET', `/api/conversations/${r1.id}`)).conversation.contact;
      await page.click(`#merge-results .merge-choice[data-contact-id="${r1Contact.id}"]`);
      await waitText(page, '#merge-confirm', '“Rosa R.” into “Rosa Ríos”');
      await page.click('#merge-submit');
      await page.waitForSelector('#merge-dialog:not([open])', { state: 'attached' });
      await waitText(page, '#conv-title', 'Rosa Ríos');
      await waitCard(page, 'Rosa Ríos');
      await waitText(page, '#details-body .card-conv-count', 'Conversations (2)');
      await waitText(page, `${item(r2.id)} .conv-name`, 'Rosa Ríos');

      await assertNoInjection(page);
      assert.deepEqual(page.errors, []);
      await closePages();
    });

    test('privacy: export downloads the messages as JSON, erase blanks the card; administrators only', { timeout: TIMEOUT }, async () => {
      const op = await createOperator(server, admin.token, 'Nora Noadmin');
      const e = await visitorSays(host, 'Mi número de socio secreto es 4711', { form: { fields: { name: 'Elena Erase' } } });
      const contactId = (await http(server, admin.token, 'GET', `/api/conversations/${e.id}`)).conversation.contact.id;

      // Not an administrator: no export or erase, and the API refuses both.
      const plain = await consoleOf(op, { hash: `#/c/${e.id}` });
      await waitCard(plain, 'Elena Erase');
      await plain.waitForSelector('#details-body .merge-into');
      assert.equal(await plain.$('#details-body .export-contact'), null);
      assert.equal(await plain.$('#details-body .erase-contact'), null);
      assert.equal((await call(server, op.token, 'DELETE', `/api/contacts/${contactId}`)).status, 403);
      assert.equal((await call(server, op.token, 'GET', `/api/contacts/${contactId}/export`)).status, 403);

      const page = await consoleOf(admin, { hash: `#/c/${e.id}` });
      await waitCard(page, 'Elena Erase');
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#details-body .export-contact')]);
      assert.equal(download.suggestedFilename(), `contact-${contactId}.json`);
      const doc = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
      assert.equal(doc.contact.id, contactId);
      const bodies = doc.conversations.flatMap((c) => c.messages.map((m) => m.body));
      assert.ok(bodies.includes('Mi número de socio secreto es 4711'), 'the export holds the messages');
      await waitText(page, '#details-body .card-actions .form-ok', `contact-${contactId}.json`);

      // Erase: confirmed by typing the name or ERASE.
      await page.click('#details-body .erase-contact');
      await page.waitForSelector('#erase-dialog[open]');
      assert.equal(await page.isDisabled('#erase-submit'), true);
      await page.fill('#erase-confirm', 'Elena');
      assert.equal(await page.isDisabled('#erase-submit'), true);
      await page.fill('#erase-confirm', 'ERASE');
      assert.equal(await page.isDisabled('#erase-submit'), false);
      await page.click('#erase-submit');
      await page.waitForSelector('#details-body .customer-card.is-erased');
      assert.equal(await page.textContent('#details-body .customer-card .contact-name'), 'Erased contact');
      assert.match(await page.textContent('#details-body .erased-note'), /erased on/);
      assert.equal(await page.$('#details-body .card-form'), null);
      // The history shows the erased message as such, not its text.
      await page.waitForSelector(`#messages li[data-seq="${e.seq}"] .msg-erased`);
      assert.equal(await page.evaluate(() => document.querySelector('#messages').textContent.includes('4711')), false);
      const erased = await http(server, admin.token, 'GET', `/api/contacts/${contactId}`);
      assert.ok(erased.erased_at);
      assert.equal(await page.$(`#messages li[data-seq="${e.seq}"] .msg-body`), null);

      await assertNoInjection(page);
      assert.deepEqual(page.errors, []);
      assert.deepEqual(plain.errors, []);
      await closePages();
    });

    test('files and e-mail: the operator sends an image and a text file, a refused file says why; Ask for e-mail, transcript, e-mails list', { timeout: TIMEOUT }, async () => {
      const op = await createOperator(server, admin.token, 'Fran Files');
      const channel = await http(server, admin.token, 'POST', '/api/channels', {
        name: `mail${backend}`, title: 'Mail shop', kind: 'web', team_id: null, settings: { transcript_delay_secs: 1 },
      });
      const f = await visitorSays(host, 'hola, ¿me mandas la factura?', { hello: { channel: channel.name } });
      const page = await consoleOf(op);
      await openConversationIn(page, f.id);
      await page.click('#act-take');
      await waitText(page, '#conv-owner', 'Responsible: Fran Files');

      // An image (XB1): uploaded, sent with an empty text, shown inline; the visitor gets it.
      await page.setInputFiles('#attach-input', { name: 'dot.png', mimeType: 'image/png', buffer: Buffer.from(PNG, 'base64') });
      const got = await f.v.waitFrame((fr) => fr.type === 'message' && fr.meta && fr.meta.attachment);
      assert.equal(got.author.kind, 'operator');
      assert.equal(got.body, '');
      assert.equal(got.meta.attachment.name, 'dot.png');
      assert.equal(got.meta.attachment.type, 'image/png');
      await page.waitForSelector('#messages li.msg-mine[data-seq] .attachment.is-image img');
      await page.waitForFunction(() => document.querySelector('#messages li.msg-mine .attachment img').naturalWidth === 1);
      // Another file: a download link named by the file.
      await page.setInputFiles('#attach-input', { name: 'factura.txt', mimeType: 'text/plain', buffer: Buffer.from('Factura 2026-001\n') });
      await f.v.waitFrame((fr) => fr.type === 'message' && fr.meta && fr.meta.attachment && fr.meta.attachment.name === 'factura.txt');
      await page.waitForSelector('#messages li.msg-mine[data-seq] .attachment:not(.is-image)');
      assert.equal(await page.textContent('#messages li.msg-mine .attachment:not(.is-image) .attachment-name'), 'factura.txt');
      // A file the server refuses: its reason, and nothing sent.
      await page.setInputFiles('#attach-input', { name: 'logo.svg', mimeType: 'image/svg+xml', buffer: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>') });
      await waitText(page, '#composer-error', 'this kind of file is not accepted');
      assert.equal(await page.$$eval('#messages li.msg-mine .attachment', (ns) => ns.length), 2);

      // Ask for e-mail (EC3): an offer event, shown as such; the visitor's answer shows the address.
      await page.click('#ask-email');
      await waitText(page, '#messages li.msg-event .event-text', 'E-mail requested by Fran Files');
      const offer = await f.v.waitFrame((fr) => fr.type === 'message' && fr.body === 'offer');
      assert.equal(offer.meta.form, 'email');
      const address = `<b>fra</b>-${backend}@example.com`;
      await f.v.form('email', { email: address });
      await waitText(page, '#messages li.msg-form .event-text', `The visitor gave their e-mail: ${address}`);
      // Closed: the transcript offer (CF5), answered; its e-mail is listed (no SMTP: pending).
      await page.click('#act-close');
      await waitText(page, '#messages li.msg-event .event-text', 'Transcript offered', 15_000);
      await f.v.form('transcript', { email: address });
      await waitText(page, '#messages li.msg-form .event-text', `The visitor asked for a copy at ${address}`);
      // The e-mail address came after unread replies (the files): those are e-mailed too (CF9).
      await waitText(page, '#emails-section .email-subject', `[#${f.id}] Copy of conversation #${f.id}`, 15_000);
      const listed = await page.$$eval('#emails-section .email', (ns) => ns.map((n) => ({
        subject: n.querySelector('.email-subject').textContent,
        to: n.querySelector('.email-to').textContent,
        status: n.querySelector('.email-status').textContent,
      })));
      const transcript = listed.find((m) => m.subject.includes('Copy of conversation'));
      assert.equal(transcript.to, `to ${address}`);
      assert.match(transcript.status, /^(Pending|Sent|Failed)$/);

      await assertNoInjection(page);
      assert.deepEqual(unexpected(page, /status of 400 .*\/api\/uploads\?name=logo\.svg:0\)$/), []);
      await closePages();
    });
  });
}

if (postgresProblem) {
  test('console CRM on postgres', () => {
    throw postgresProblem;
  });
} else if (!tested.includes('postgres')) {
  test('console CRM on postgres', { skip: postgresStatus().reason }, () => {});
}
