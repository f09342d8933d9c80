// Browser tests of the operator console (static/console, docs/CONSOLE.md): the real server,
// Chromium, operators in separate browser contexts, and visitors simulated with plain
// websockets to /ws/visitor opened from a page of the server's origin (the widget does not
// exist yet). One server per backend is shared by the tests of this file; each test makes
// its own operators and conversations and asserts on those only. First run gets a fresh
// server of its own.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  addOperator,
  apiLogin,
  backends,
  launchBrowser,
  newPage,
  postgresStatus,
  startServer,
} from './harness.mjs';

const TIMEOUT = 90_000;
const PASSWORD = 'a long console password';
const TOKEN_KEY = 'charla.console.token';

// ---------------------------------------------------------------------------------------
// HTTP

/**
 * One API call. A 503 with a retry hint is retried, as docs/PROTOCOL.md says: on SQLite some
 * administrative writes still answer `storage_unavailable` while the persister commits
 * (reported; see docs/CONSOLE.md, "Known server gaps"), and set-up must not flake on it.
 */
async function http(server, token, method, path, body) {
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
    if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
    return text ? JSON.parse(text) : null;
  }
}

let operatorCounter = 0;

/** A new operator made by the administrator over the API; returns {id, name, email, token}. */
async function createOperator(server, adminToken, name, { admin = false } = {}) {
  const email = `${name.toLowerCase().replace(/[^a-z]+/g, '')}-${++operatorCounter}@example.com`;
  const op = await http(server, adminToken, 'POST', '/api/operators', { email, name, password: PASSWORD, is_admin: admin });
  const token = await apiLogin(server, email, PASSWORD);
  return { ...op, email, token };
}

/** Routing as a test needs it; auto-close off so nothing closes under a test. */
function setRouting(server, adminToken, change = {}) {
  return http(server, adminToken, 'PUT', '/api/settings/routing', {
    distribution: false,
    default_assignee_id: null,
    auto_close_minutes: 0,
    ...change,
  });
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
        const old = window.visitors[key];
        const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/ws/visitor`);
        const v = old || { frames: [], lastSeq: 0, token: null, conversationId: null };
        v.ws = ws;
        window.visitors[key] = v;
        ws.onmessage = (e) => {
          const f = JSON.parse(e.data);
          v.frames.push(f);
          if (f.type === 'welcome') {
            if (f.visitor_token) v.token = f.visitor_token;
            if (f.conversation) v.conversationId = f.conversation.id;
            resolve(f);
          }
          if (f.type === 'error' && !v.greeted) reject(new Error(e.data));
          if (f.conversation_id) v.conversationId = f.conversation_id;
          if (typeof f.seq === 'number' && (f.type === 'message' || f.type === 'ack')) v.lastSeq = Math.max(v.lastSeq, f.seq);
        };
        ws.onopen = () => {
          const frame = { type: 'hello', ...hello };
          if (v.token) Object.assign(frame, { token: v.token, conversation_id: v.conversationId, last_seq: v.lastSeq });
          ws.send(JSON.stringify(frame));
        };
        ws.onerror = () => reject(new Error('visitor socket failed'));
      });
  });
  return page;
}

let visitorCounter = 0;

/** A visitor: `hello` on connect, `say` waits for the ack, frames kept for assertions. */
class Visitor {
  constructor(host, hello = {}) {
    this.host = host;
    this.key = `v${++visitorCounter}`;
    this.hello = hello;
  }

  connect() {
    return this.host.evaluate(([key, hello]) => window.openVisitor(key, hello), [this.key, this.hello]);
  }

  async say(body, extra = {}) {
    const clientId = `c-${this.key}-${Math.random().toString(36).slice(2)}`;
    await this.send({ type: 'message', client_id: clientId, body, ...extra });
    const handle = await this.host.waitForFunction(
      ([key, cid]) => window.visitors[key].frames.find((f) => (f.type === 'ack' || f.type === 'error') && f.client_id === cid),
      [this.key, clientId],
      { timeout: 10_000 },
    );
    const frame = await handle.jsonValue();
    assert.equal(frame.type, 'ack', `visitor message refused: ${JSON.stringify(frame)}`);
    return frame;
  }

  send(frame) {
    return this.host.evaluate(([key, f]) => window.visitors[key].ws.send(JSON.stringify(f)), [this.key, frame]);
  }

  read(seq) {
    return this.send({ type: 'read', seq });
  }

  typing(on) {
    return this.send({ type: 'typing', on });
  }

  close() {
    return this.host.evaluate(
      (key) =>
        new Promise((resolve) => {
          const ws = window.visitors[key].ws;
          ws.onclose = () => resolve();
          ws.close(1000);
        }),
      this.key,
    );
  }

  /** Uploads a file as this visitor (POST /api/uploads); returns the server's answer. */
  upload(name, base64) {
    return this.host.evaluate(async ([key, n, b64]) => {
      const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
      const res = await fetch(`/api/uploads?name=${encodeURIComponent(n)}`, {
        method: 'POST',
        headers: { authorization: `Visitor ${window.visitors[key].token}` },
        body: bytes,
      });
      if (!res.ok) throw new Error(`upload answered ${res.status}: ${await res.text()}`);
      return res.json();
    }, [this.key, name, base64]);
  }

  get conversationId() {
    return this.host.evaluate((key) => window.visitors[key].conversationId, this.key);
  }

  frames() {
    return this.host.evaluate((key) => window.visitors[key].frames, this.key);
  }

  /** Waits for a frame whose fields equal `match` (shallow) and returns it. */
  async waitFrame(match, timeout = 10_000) {
    const handle = await this.host.waitForFunction(
      ([key, m]) => window.visitors[key].frames.find((f) => Object.entries(m).every(([k, v]) => f[k] === v)),
      [this.key, match],
      { timeout },
    );
    return handle.jsonValue();
  }
}

/** A visitor already in a conversation: connected, with a first message. Returns {v, id, seq}. */
async function visitorSays(host, body, hello = {}) {
  const v = new Visitor(host, hello);
  await v.connect();
  const ack = await v.say(body);
  return { v, id: ack.conversation_id, seq: ack.seq };
}

// ---------------------------------------------------------------------------------------
// Console pages

/**
 * Runs in every console page before its scripts: records the websockets the console opens
 * (so a test can drop one), lets a test spoil the next `resume` (to force a reload), counts
 * `ready` frames, and records browser notifications.
 */
function instrument() {
  window.__sockets = [];
  window.__readies = [];
  window.__notes = [];
  window.__spoilResume = false;
  window.__states = [];
  document.addEventListener('DOMContentLoaded', () => {
    const conn = document.getElementById('conn');
    new MutationObserver(() => window.__states.push(conn.dataset.state)).observe(conn, { attributes: true, attributeFilter: ['data-state'] });
  });
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      window.__sockets.push(this);
      this.addEventListener('message', (e) => {
        if (typeof e.data === 'string' && e.data.startsWith('{"type":"ready"')) window.__readies.push(JSON.parse(e.data).resumed);
      });
    }

    send(data) {
      if (window.__spoilResume && typeof data === 'string' && data.includes('"resume"')) {
        const frame = JSON.parse(data);
        frame.resume.epoch = 'another-process';
        data = JSON.stringify(frame);
        window.__spoilResume = false;
  window.__states = [];
  document.addEventListener('DOMContentLoaded', () => {
    const conn = document.getElementById('conn');
    new MutationObserver(() => window.__states.push(conn.dataset.state)).observe(conn, { attributes: true, attributeFilter: ['data-state'] });
  });
      }
      super.send(data);
    }
  };
  if (window.Notification) {
    const NativeNotification = window.Notification;
    window.Notification = class extends NativeNotification {
      constructor(title, options) {
        window.__notes.push({ title, body: options && options.body });
        super(title, options);
      }
    };
  }
}

/** A console page of `op`, logged in (token placed in storage), connected. */
async function openConsole(browser, server, op, { viewport, hash = '', ...contextOptions } = {}) {
  const page = await newPage(browser, { viewport, ...contextOptions });
  page.dialogs = [];
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  await page.addInitScript(instrument);
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

/** Waits until an element matching `selector` has a textContent including `text`. */
async function waitText(page, selector, text, timeout = 10_000) {
  await page.waitForFunction(
    ([sel, txt]) => [...document.querySelectorAll(sel)].some((n) => n.textContent.includes(txt)),
    [selector, text],
    { timeout },
  );
}

/** Waits until no element matching `selector` has a textContent including `text`. */
async function waitNoText(page, selector, text, timeout = 10_000) {
  await page.waitForFunction(
    ([sel, txt]) => ![...document.querySelectorAll(sel)].some((n) => n.textContent.includes(txt)),
    [selector, text],
    { timeout },
  );
}

async function openConversationIn(page, id) {
  await page.click(`${item(id)} a`);
  await page.waitForFunction((cid) => location.hash === `#/c/${cid}`, id);
  await page.waitForSelector('#conv-status:empty', { state: 'attached' });
}

/** Messages of the open conversation whose body is exactly `body`. */
function countMessages(page, body) {
  return page.evaluate((b) => [...document.querySelectorAll('#messages li.msg .msg-body')].filter((n) => n.textContent === b).length, body);
}

async function statusOf(page, selector) {
  return page.$eval(`${selector} .status`, (n) => n.dataset.state).catch(() => null);
}

async function waitStatus(page, body, state, timeout = 10_000) {
  await page.waitForFunction(
    ([b, s]) => [...document.querySelectorAll('#messages li.msg-mine')].some((li) => li.querySelector('.msg-body')?.textContent === b && li.querySelector('.status')?.dataset.state === s),
    [body, state],
    { timeout },
  );
}

/** Waits until my message `body` is committed (it has a seq). */
async function waitCommitted(page, body, timeout = 10_000) {
  await page.waitForFunction(
    (b) => [...document.querySelectorAll('#messages li.msg-mine')].some((li) => li.dataset.seq && li.querySelector('.msg-body')?.textContent === b),
    body,
    { timeout },
  );
}

async function send(page, text) {
  await page.fill('#composer-input', text);
  await page.press('#composer-input', 'Enter');
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
  describe(`console on ${backend}`, { timeout: 12 * TIMEOUT }, () => {
    let server;
    let admin;
    let host;
    const pages = [];

    /** A console page closed after the test. */
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
      await setRouting(server, admin.token);
      host = await openVisitorHost(browser, server);
    });

    after(async () => {
      await closePages();
      await host?.context().close();
      await server?.stop();
    });

    test('first run: the setup form creates the administrator; a dead token goes back to login', { timeout: TIMEOUT }, async () => {
      const fresh = await startServer({ backend });
      const page = await newPage(browser);
      try {
        await page.goto(`${fresh.url}/console/`);
        await page.waitForSelector('#setup-form:not([hidden])');
        assert.equal(await page.isHidden('#login-form'), true);
        await page.fill('#setup-name', 'Root Admin');
        await page.fill('#setup-email', 'root@example.com');
        await page.fill('#setup-password', 'short');
        await page.click('#setup-form button[type=submit]');
        await waitText(page, '#setup-form .form-error', 'password');
        await page.fill('#setup-password', PASSWORD);
        await page.click('#setup-form button[type=submit]');
        await page.waitForSelector('#conn[data-state=connected]');
        assert.equal(await page.textContent('#me-name'), 'Root Admin');
        assert.equal(await page.isVisible('#admin-button'), true);
        assert.deepEqual(await http(fresh, null, 'GET', '/api/setup'), { needed: false });
        assert.ok(await page.evaluate((k) => localStorage.getItem(k), TOKEN_KEY));

        // A token the server no longer knows: any 401 brings the login form with a message.
        await page.evaluate((k) => localStorage.setItem(k, 'a-token-nobody-issued'), TOKEN_KEY);
        await page.reload();
        await page.waitForSelector('#login-form:not([hidden])');
        assert.match(await page.textContent('#login-notice'), /session has ended/);
        assert.equal(await page.isHidden('#setup-form'), true);
        assert.equal(await page.evaluate((k) => localStorage.getItem(k), TOKEN_KEY), null);
        assert.deepEqual(unexpected(page, /status of 401/), []);
      } finally {
        await page.context().close();
        await fresh.stop();
      }
    });

    test('login, a visitor message live with unread badge and notification, reply quoted, sent → delivered → read, logout', { timeout: TIMEOUT }, async () => {
      const olga = await createOperator(server, admin.token, 'Olga Ortiz');
      const page = await newPage(browser, { permissions: ['notifications'] });
      pages.push(page);
      await page.addInitScript(instrument);
      await page.goto(`${server.url}/console/`);
      await page.waitForSelector('#login-form:not([hidden])');
      await page.fill('#login-email', olga.email);
      await page.fill('#login-password', 'not the password');
      await page.click('#login-form button[type=submit]');
      await waitText(page, '#login-form .form-error', 'Wrong e-mail or password');
      await page.fill('#login-password', PASSWORD);
      await page.click('#login-form button[type=submit]');
      await page.waitForSelector('#conn[data-state=connected]');
      assert.equal(await page.isHidden('#admin-button'), true, 'no administration for an operator');

      const text = 'Hola, necesito ayuda con mi pedido 123';
      const { v, id, seq } = await visitorSays(host, text);
      await waitText(page, `${item(id)} .conv-preview`, text);
      assert.equal(await page.textContent(`${item(id)} .unread-count`), '1');
      assert.equal(await page.textContent(`${item(id)} .conv-name`), `Visitor #${id}`);
      assert.equal(await page.textContent(`${item(id)} .chan-title`), 'Website');
      assert.equal(await page.getAttribute(`${item(id)} .chan-icon`, 'class'), 'chan-icon chan-web');
      await waitText(page, '.toast .toast-body', text);
      assert.equal(await page.textContent(`.toast[data-conversation-id="${id}"] .toast-title`), `Visitor #${id}`);
      const notes = await page.evaluate(() => window.__notes);
      assert.ok(notes.some((n) => n.body === text && n.title === `Visitor #${id}`), JSON.stringify(notes));

      await openConversationIn(page, id);
      await waitText(page, '#messages li.msg-visitor .msg-body', text);
      assert.equal(await page.textContent(`#messages li[data-seq="${seq}"] .author`), 'Visitor');
      await waitText(page, '#messages li.msg-event', 'Opened');
      await page.waitForSelector(`${item(id)} .unread-badge`, { state: 'detached' });
      assert.equal(await page.textContent('#conv-owner'), 'Nobody is responsible yet');
      await waitText(page, '#conv-sub .visitor-presence', 'online now');

      // Typing, both ways (XB5).
      await v.typing(true);
      await waitText(page, '#typing', 'Visitor is typing');
      await v.typing(false);
      await page.waitForFunction(() => document.querySelector('#typing').textContent === '');
      await page.type('#composer-input', 'Cla');
      await v.waitFrame({ type: 'typing', from: 'operator', on: true });

      // Reply to (quote) the visitor's message from its menu (OC10), with the visitor away.
      await page.click(`#messages li[data-seq="${seq}"] .msg-menu-button`);
      await page.click('[role=menuitem][data-action=reply]');
      await waitText(page, '#reply-preview', 'Replying to Visitor');
      await v.close();
      await page.waitForSelector('#conv-sub .visitor-presence', { state: 'detached' });
      const reply = 'Claro, ahora mismo lo reviso';
      await page.fill('#composer-input', reply);
      await page.press('#composer-input', 'Enter');
      await waitStatus(page, reply, 'sent');
      assert.equal(await page.inputValue('#composer-input'), '', 'the composer is empty after sending');
      assert.equal(await page.isHidden('#reply-preview'), true);
      await waitText(page, '#messages li.msg-mine .quote', text);
      await waitText(page, '#conv-owner', 'Responsible: Olga Ortiz');
      await waitText(page, '#messages li.msg-event', 'Olga Ortiz took the conversation');
      await waitText(page, `${item(id)} .conv-preview`, `You: ${reply}`);

      // The visitor comes back: the reply is delivered, then read (OC15).
      await v.connect();
      const got = await v.waitFrame({ type: 'message', body: reply });
      assert.equal(got.meta?.reply_to, seq);
      await waitStatus(page, reply, 'delivered');
      await v.read(got.seq);
      await waitStatus(page, reply, 'read');
      // While the widget is online, a reply is delivered as soon as it is committed.
      await waitText(page, '#conv-sub .visitor-presence', 'online now');
      await send(page, '¿Algo más?');
      await waitStatus(page, '¿Algo más?', 'delivered');
      await v.waitFrame({ type: 'message', body: '¿Algo más?' });

      // Copy from the menu.
      await page.click(`#messages li[data-seq="${seq}"] .msg-menu-button`);
      await page.click('[role=menuitem][data-action=copy]');
      await waitText(page, '.toast-title', 'Copied');

      const uiToken = await page.evaluate((k) => localStorage.getItem(k), TOKEN_KEY);
      assert.equal((await http(server, uiToken, 'GET', '/api/me')).id, olga.id);
      await page.click('#logout');
      await page.waitForSelector('#login-form:not([hidden])');
      assert.match(await page.textContent('#login-notice'), /logged out/);
      assert.equal(await page.evaluate((k) => localStorage.getItem(k), TOKEN_KEY), null);
      await assert.rejects(http(server, uiToken, 'GET', '/api/me'), /401/);
      assert.deepEqual(unexpected(page, /api\/login:0\)$/), [], 'only the deliberate wrong password failed');
      await closePages();
    });

    test('reassignment: the former owner turns read-only and their message fails "Not assigned to you"; notes with mentions', { timeout: TIMEOUT }, async () => {
      const luis = await createOperator(server, admin.token, 'Luis Lara');
      const marta = await createOperator(server, admin.token, 'Marta Mora');
      const text = 'Necesito cambiar la dirección de envío';
      const { v, id } = await visitorSays(host, text);
      const pl = await consoleOf(luis, { hash: `#/c/${id}` });
      const pm = await consoleOf(marta, { hash: `#/c/${id}` });
      await waitText(pl, '#messages .msg-body', text);

      await pl.click('#act-take');
      await waitText(pl, '#conv-owner', 'Responsible: Luis Lara');
      await waitText(pm, '#conv-owner', 'Responsible: Luis Lara');
      assert.equal(await pm.isHidden('#act-reassign'), true, 'only the owner or an administrator reassigns');
      assert.equal(await pm.getAttribute('#composer-input', 'readonly'), '');
      await waitText(pm, '#composer-notice', 'Assigned to Luis Lara — you can add internal notes');

      // Luis writes while offline; the administrator hands the conversation to Marta meanwhile.
      await pl.context().setOffline(true);
      await pl.waitForSelector('#conn[data-state=offline]');
      const late = 'Un momento, por favor';
      await send(pl, late);
      await waitStatus(pl, late, 'queued');
      await http(server, admin.token, 'POST', `/api/conversations/${id}/assign`, { operator_id: marta.id, reason: 'turno de tarde' });
      await waitText(pm, '#conv-owner', 'Responsible: Marta Mora');
      await pl.context().setOffline(false);
      await waitStatus(pl, late, 'failed');
      await waitText(pl, '#messages li.is-pending .failure-reason', 'Not assigned to you');
      await waitText(pl, '#conv-owner', 'Responsible: Marta Mora');
      assert.equal(await pl.getAttribute('#composer-input', 'readonly'), '');
      assert.equal(await pl.isDisabled('#composer-send'), true);
      await waitText(pl, '#composer-notice', 'Assigned to Marta Mora');
      await waitText(pl, '#messages li.msg-event', 'Reassigned from Luis Lara to Marta Mora');
      await pl.click('#messages li.is-pending button.retry');
      await waitStatus(pl, late, 'failed');

      // Marta writes; then hands it back to Luis through the dialog.
      assert.equal(await pm.getAttribute('#composer-input', 'readonly'), null);
      const hers = 'Hola, soy Marta. ¿Cuál es la nueva dirección?';
      await send(pm, hers);
      await v.waitFrame({ type: 'message', body: hers });
      await pm.click('#act-reassign');
      await pm.waitForSelector('#reassign-dialog[open]');
      await waitText(pm, '#reassign-choices li', 'Luis Lara');
      const luisChoice = pm.locator('#reassign-choices li', { hasText: 'Luis Lara' });
      assert.equal(await luisChoice.locator('.presence').textContent(), 'online');
      await luisChoice.locator('input').check();
      await pm.fill('#reassign-reason', 'Luis conoce el pedido');
      await pm.click('#reassign-dialog button[type=submit]');
      await pm.waitForSelector('#reassign-dialog', { state: 'hidden' });
      await waitText(pm, '#conv-owner', 'Responsible: Luis Lara');
      assert.equal(await pm.getAttribute('#composer-input', 'readonly'), '');

      // Luis may write again: the failed message goes with Retry, same client id.
      await waitText(pl, '#conv-owner', 'Responsible: Luis Lara');
      assert.equal(await pl.getAttribute('#composer-input', 'readonly'), null);
      await pl.click('#messages li.is-pending button.retry');
      await waitCommitted(pl, late);
      await v.waitFrame({ type: 'message', body: late });
      assert.equal((await v.frames()).filter((f) => f.type === 'message' && f.body === late).length, 1);

      // The audit trail (XB12).
      await pl.setViewportSize({ width: 1280, height: 800 });
      await waitText(pl, '#details-body .trail', 'Luis conoce el pedido');
      const trail = await pl.$$eval('#details-body .trail-entry .trail-move', (ns) => ns.map((n) => n.textContent));
      assert.deepEqual(trail, ['Unassigned → Luis Lara', 'Luis Lara → Marta Mora', 'Marta Mora → Luis Lara']);
      await waitText(pl, '#details-body .trail', 'by Ana Admin');

      // A note mentioning Marta (XB15): she is notified; the visitor never sees it.
      await pl.check('#note-toggle');
      await pl.type('#composer-input', 'Revisa esto @Mar');
      await pl.waitForSelector('#mention-list:not([hidden]) [role=option]');
      assert.equal(await pl.textContent('#mention-list [role=option][aria-selected=true]'), 'Marta Mora');
      await pl.press('#composer-input', 'Enter');
      await pl.type('#composer-input', 'por favor');
      const note = 'Revisa esto @Marta Mora por favor';
      assert.equal(await pl.inputValue('#composer-input'), note);
      await pl.press('#composer-input', 'Enter');
      await waitText(pl, '#messages li.msg-note .note-label', 'Internal note — not visible to the customer');
      await waitText(pm, '.toast-title', 'Luis Lara mentioned you');
      await waitText(pm, '.toast-body', note);
      await waitText(pm, '#messages li.msg-note .msg-body', note);
      await v.say('Calle Mayor 5');
      assert.equal((await v.frames()).some((f) => f.type === 'message' && f.kind === 'note'), false);

      // Marta, read-only, can still write a note from the notice's button.
      await pm.click('#write-note');
      assert.equal(await pm.getAttribute('#composer-input', 'readonly'), null);
      await send(pm, 'Anotado');
      await waitText(pl, '#messages li.msg-note .msg-body', 'Anotado');
      assert.deepEqual(pl.errors, []);
      assert.deepEqual(pm.errors, []);
      await closePages();
    });

    test('drafts: kept on the server, restored on reload, shown as "Draft:", on my other console, never a colleague\'s', { timeout: TIMEOUT }, async () => {
      const dora = await createOperator(server, admin.token, 'Dora Díaz');
      const carlos = await createOperator(server, admin.token, 'Carlos Cano');
      const question = '¿Tienen la talla 42?';
      const { id } = await visitorSays(host, question);
      const d1 = await consoleOf(dora, { hash: `#/c/${id}` });
      const d2 = await consoleOf({ ...dora, token: await apiLogin(server, dora.email, PASSWORD) });
      const pc = await consoleOf(carlos);
      await waitText(d1, '#messages .msg-body', question);

      const draft = 'Sí, nos quedan dos pares de la 42';
      await d1.type('#composer-input', draft);
      await waitText(d1, `${item(id)} .conv-preview`, `Draft: ${draft}`);
      await waitText(d2, `${item(id)} .conv-preview`, `Draft: ${draft}`);
      assert.equal((await http(server, dora.token, 'GET', `/api/conversations/${id}/draft`)).body, draft);
      await waitText(pc, `${item(id)} .conv-preview`, question);
      assert.equal(await pc.textContent(`${item(id)} .conv-preview`), question, 'a colleague never sees my draft');

      await d1.reload();
      await d1.waitForSelector('#conn[data-state=connected]');
      await d1.waitForFunction((d) => document.querySelector('#composer-input').value === d, draft);
      await waitText(d1, `${item(id)} .conv-preview`, `Draft: ${draft}`);

      await openConversationIn(d2, id);
      assert.equal(await d2.inputValue('#composer-input'), draft);
      await openConversationIn(pc, id);
      assert.equal(await pc.inputValue('#composer-input'), '');

      // Typed on the second console, followed on the first where the composer is not focused.
      await d1.click('#search');
      const edited = `${draft}, en negro y en azul`;
      await d2.fill('#composer-input', edited);
      await d2.dispatchEvent('#composer-input', 'input');
      await d1.waitForFunction((d) => document.querySelector('#composer-input').value === d, edited);

      await d1.focus('#composer-input');
      await d1.press('#composer-input', 'Enter');
      await waitCommitted(d1, edited);
      assert.equal(await d1.inputValue('#composer-input'), '');
      await waitText(d2, `${item(id)} .conv-preview`, edited);
      await waitNoText(d2, `${item(id)} .conv-preview`, 'Draft:');
      await d2.waitForFunction(() => document.querySelector('#composer-input').value === '');
      assert.equal(await http(server, dora.token, 'GET', `/api/conversations/${id}/draft`), null);
      for (const p of [d1, d2, pc]) assert.deepEqual(p.errors, []);
      await closePages();
    });

    test('a reply written while the live feed is down stays my draft until it is sent: a reload shows it again', { timeout: TIMEOUT }, async () => {
      const olivia = await createOperator(server, admin.token, 'Olivia Ortega');
      const question = '¿Me pueden corregir la factura?';
      const { id } = await visitorSays(host, question);
      const page = await consoleOf(olivia, { hash: `#/c/${id}` });
      await waitText(page, '#messages .msg-body', question);
      const serverDraft = async () => (await http(server, olivia.token, 'GET', `/api/conversations/${id}/draft`))?.body ?? null;

      // The operator socket is blocked (say, by a proxy) while plain HTTP still works: new
      // sockets open but never get an answer.
      let blocked = true;
      let held = null;
      let live = null;
      const fromServer = [];
      await page.routeWebSocket(/\/ws\/operator$/, (ws) => {
        if (blocked) {
          held = ws;
          return;
        }
        live = ws;
        ws.connectToServer().onMessage((frame) => {
          fromServer.push(JSON.parse(frame));
          ws.send(frame);
        });
      });
      await page.evaluate(() => window.__sockets.at(-1).close());
      await page.waitForSelector('#conn[data-state=reconnecting]');

      // What I type is saved over HTTP; the reply waits in the outbox, its text stays my draft.
      const reply = 'Claro, hoy mismo le envío la factura corregida';
      await page.type('#composer-input', reply);
      await waitFor(async () => (await serverDraft()) === reply);
      await page.press('#composer-input', 'Enter');
      await waitStatus(page, reply, 'queued');
      assert.equal(await page.inputValue('#composer-input'), '');
      await page.click('#search');
      await page.waitForTimeout(600);
      assert.equal(await serverDraft(), reply, 'neither the send nor the blur deleted it');

      // Reloaded with the feed still down: the queued reply was only in the page, its text is
      // back in the composer.
      await page.reload();
      await page.waitForFunction((d) => document.querySelector('#composer-input').value === d, reply);
      assert.equal(await countMessages(page, reply), 0);

      // The feed is back: sent once, and the draft is spent.
      blocked = false;
      await held.close();
      await page.waitForSelector('#conn[data-state=connected]');
      await page.focus('#composer-input');
      await page.press('#composer-input', 'Enter');
      await waitCommitted(page, reply);
      await waitFor(async () => (await serverDraft()) === null);
      assert.equal(await page.inputValue('#composer-input'), '');
      assert.equal(await countMessages(page, reply), 1);

      // Blocked again, without a reload: the drafts saved over HTTP come back as frames when
      // the feed resumes, and are not taken for new text once the reply is sent.
      blocked = true;
      await live.close();
      await page.waitForSelector('#conn[data-state=reconnecting]');
      const second = 'Ya está enviada, revise su correo';
      await page.type('#composer-input', second);
      await waitFor(async () => (await serverDraft()) === second);
      await page.press('#composer-input', 'Enter');
      await waitStatus(page, second, 'queued');
      blocked = false;
      await held.close();
      await page.waitForSelector('#conn[data-state=connected]');
      await waitCommitted(page, second);
      assert.equal(fromServer.filter((f) => f.type === 'ready').at(-1).resumed, true);
      assert.ok(fromServer.some((f) => f.type === 'draft' && f.body === second), 'the saved draft came back as a frame');
      await waitFor(async () => (await serverDraft()) === null);
      await page.waitForTimeout(600);
      assert.equal(await page.inputValue('#composer-input'), '');
      assert.equal(await serverDraft(), null);
      assert.equal(await countMessages(page, second), 1);
      assert.deepEqual(page.errors, []);
      await closePages();
    });

    test('a message written by the server itself (a bot) names "Bot" as its author', { timeout: TIMEOUT }, async () => {
      const pablo = await createOperator(server, admin.token, 'Pablo Prieto');
      const { id, seq } = await visitorSays(host, 'Hola, ¿hay alguien?');
      const page = await consoleOf(pablo, { hash: `#/c/${id}` });
      await waitText(page, '#messages .msg-body', 'Hola, ¿hay alguien?');
      // The server writes no text of its own yet (its `assigned` and `closed` are events), so
      // the frame a bot's message would be is handed to the console on its own socket.
      let feed = null;
      await page.routeWebSocket(/\/ws\/operator$/, (ws) => {
        feed = ws;
        ws.connectToServer();
      });
      await page.evaluate(() => window.__sockets.at(-1).close());
      await page.waitForFunction(() => window.__readies.length === 2);
      await page.waitForSelector('#conn[data-state=connected]');
      const body = 'Gracias por escribirnos: enseguida le atiende una persona.';
      const botSeq = seq + 1;
      feed.send(JSON.stringify({
        type: 'message', conversation_id: id, seq: botSeq, kind: 'text', author: { kind: 'system' }, body, created_at: Date.now(),
      }));
      const bot = `#messages li[data-seq="${botSeq}"]`;
      await page.waitForSelector(`${bot}.msg-system`);
      assert.equal(await page.textContent(`${bot} .author`), 'Bot');
      assert.equal(await page.textContent(`${bot} .msg-body`), body);
      assert.equal(await page.textContent(`#messages li[data-seq="${seq}"] .author`), 'Visitor');
      // Quoted, it is the bot's too (OC10).
      await page.click(`${bot} .msg-menu-button`);
      await page.click('[role=menuitem][data-action=reply]');
      await waitText(page, '#reply-preview', 'Replying to Bot');
      assert.deepEqual(page.errors, []);
      await closePages();
    });

    test('filters and search: channel, customers, mine, assignee, status; search marks the terms and opens at the hit', { timeout: TIMEOUT }, async () => {
      const fede = await createOperator(server, admin.token, 'Fede Fuentes');
      const shopName = `shop${backend}`;
      await http(server, admin.token, 'POST', '/api/channels', { name: shopName, title: 'Online shop', kind: 'whatsapp', team_id: null });
      const a = await visitorSays(host, 'Quiero devolver las zapatillas rojas');
      const b = await visitorSays(host, 'Do you ship to the Canary Islands?', { channel: shopName });
      const c = await visitorSays(host, 'Mi factura 4711 tiene un error');
      const page = await consoleOf(fede);
      for (const x of [a, b, c]) await page.waitForSelector(item(x.id));
      assert.equal(await page.getAttribute(`${item(b.id)} .chan-icon`, 'class'), 'chan-icon chan-whatsapp');
      assert.equal(await page.textContent(`${item(b.id)} .chan-title`), 'Online shop');

      // Save the first visitor as a customer (OC16, XB2): the name arrives live.
      await openConversationIn(page, a.id);
      await page.fill('#customer-name', 'María López');
      await page.click('#details-body .customer-form button[type=submit]');
      await waitText(page, '#conv-title', 'María López');
      await waitText(page, '#details-body .contact-name', 'María López');
      await waitText(page, `${item(a.id)} .conv-name`, 'María López');
      await page.click('#act-take');
      await waitText(page, '#conv-owner', 'Responsible: Fede Fuentes');

      const visible = () => page.$$eval('#conv-list li', (ns) => ns.map((n) => Number(n.dataset.conversationId)));
      const only = async (want, among = [a.id, b.id, c.id]) => {
        await page.waitForFunction(([w, all]) => {
          const ids = [...document.querySelectorAll('#conv-list li')].map((n) => Number(n.dataset.conversationId));
          return all.every((x) => ids.includes(x) === w.includes(x));
        }, [want, among]);
      };

      // Search (OC7): the list and the message hits, terms marked.
      await page.fill('#search', 'zapat');
      await only([a.id]);
      await page.waitForSelector('#search-hits:not([hidden]) .hit');
      const hit = page.locator(`#search-hits .hit[data-conversation-id="${a.id}"]`);
      assert.equal(await hit.locator('mark').first().textContent(), 'zapat');
      assert.equal(await hit.locator('.hit-body').textContent(), 'Quiero devolver las zapatillas rojas');
      await hit.locator('a').click();
      await page.waitForFunction(([cid, s]) => location.hash === `#/c/${cid}/m/${s}`, [a.id, a.seq]);
      await page.waitForSelector(`#messages li[data-seq="${a.seq}"].is-target mark`);
      assert.equal(await page.textContent(`#messages li[data-seq="${a.seq}"] mark`), 'zapat');
      await page.fill('#search', 'factura 47');
      await only([c.id]);
      await page.fill('#search', 'María');
      await only([a.id]);
      await page.fill('#search', '');
      await page.waitForSelector('#search-hits', { state: 'hidden' });
      await only([a.id, b.id, c.id]);

      // Filters (OC11).
      await page.selectOption('#filter-channel', shopName);
      await only([b.id]);
      await page.selectOption('#filter-channel', '');
      await page.selectOption('#filter-with', 'customers');
      await only([a.id]);
      await page.selectOption('#filter-with', 'mine');
      await page.waitForFunction((cid) => {
        const ids = [...document.querySelectorAll('#conv-list li')].map((n) => Number(n.dataset.conversationId));
        return ids.length === 1 && ids[0] === cid;
      }, a.id);
      await page.selectOption('#filter-with', 'colleagues');
      await only([]);
      await page.selectOption('#filter-with', 'everyone');
      await page.selectOption('#filter-assignee', 'me');
      await only([a.id]);
      await page.selectOption('#filter-assignee', 'unassigned');
      await only([b.id, c.id]);
      await page.selectOption('#filter-assignee', 'anyone');

      // Status: a closed conversation leaves the open list, and is there under "all".
      await page.click(`${item(c.id)} a`);
      await waitText(page, '#conv-title', `Visitor #${c.id}`);
      await page.click('#act-close');
      await waitText(page, '#messages li.msg-event', 'Closed by Fede Fuentes');
      await only([a.id, b.id]);
      await page.selectOption('#filter-status', 'all');
      await only([a.id, b.id, c.id]);
      await waitText(page, `${item(c.id)} .badge-closed`, 'closed');
      await page.click('#act-reopen');
      await waitText(page, '#messages li.msg-event', 'Reopened by Fede Fuentes');
      assert.ok((await visible()).includes(c.id));

      // Link another conversation to the same customer (XB2); the card lists both (OC20).
      await page.click(`${item(b.id)} a`);
      await waitText(page, '#conv-title', `Visitor #${b.id}`);
      await page.fill('#link-search', 'María Ló');
      await page.click('#details-body .link-choice:has-text("María López")');
      await waitText(page, '#conv-title', 'María López');
      await waitText(page, '#details-body .customer-card', 'Conversations (2)');
      await waitText(page, '#details-body .customer-convs', `#${a.id} · Website`);
      await waitText(page, '#details-body .customer-convs', `#${b.id} · Online shop`);
      await page.selectOption('#filter-with', 'customers');
      await only([a.id, b.id]);
      assert.deepEqual(page.errors, []);
      await closePages();
    });

    test('visitor markup is shown as text in the list, the conversation, the toast and search hits', { timeout: TIMEOUT }, async () => {
      const xavi = await createOperator(server, admin.token, 'Xavi Xirau');
      const page = await consoleOf(xavi);
      const payload = '<img src=x onerror=alert(1)><script>alert(2)</script><b>bold</b>';
      const { id, seq } = await visitorSays(host, payload);
      await page.waitForSelector(`.toast[data-conversation-id="${id}"]`);
      assert.equal(await page.textContent(`.toast[data-conversation-id="${id}"] .toast-body`), payload);
      await waitText(page, `${item(id)} .conv-preview`, payload);
      assert.equal(await page.textContent(`${item(id)} .conv-preview`), payload);
      await openConversationIn(page, id);
      assert.equal(await page.textContent(`#messages li[data-seq="${seq}"] .msg-body`), payload);
      await page.fill('#search', 'bold');
      const hit = `#search-hits .hit[data-conversation-id="${id}"]`;
      await page.waitForSelector(hit);
      assert.equal(await page.textContent(`${hit} .hit-body`), payload);
      assert.equal(await page.textContent(`${hit} mark`), 'bold');
      await page.fill('#search', '');
      // A customer named with markup, too.
      const name = '<b onmouseover=alert(3)>Mallory</b>';
      await page.fill('#customer-name', name);
      await page.click('#details-body .customer-form button[type=submit]');
      await waitText(page, '#conv-title', 'Mallory');
      assert.equal(await page.textContent('#conv-title'), name);
      await waitText(page, `${item(id)} .conv-name`, 'Mallory');
      assert.equal(await page.textContent(`${item(id)} .conv-name`), name);
      // A form (CF3) and a file (XB1) carry visitor text too: a name, a file name.
      const { v } = await visitorSays(host, 'form and file');
      await v.send({ type: 'form', client_id: 'form-1', form: 'name', fields: { name: '<i>Eve</i>' } });
      await v.waitFrame({ type: 'ack', client_id: 'form-1' });
      const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
      const file = await v.upload('<b>dot</b>.png', png);
      await v.say('', { attachment: file.id });
      const other = await v.conversationId;
      await page.click(`${item(other)} a`);
      await waitText(page, '#messages li.msg-form .event-text', 'The visitor gave their name');
      assert.equal(await page.textContent('#messages li.msg-form dd'), '<i>Eve</i>');
      await waitText(page, '#conv-title', 'Eve');
      assert.equal(await page.textContent('#conv-title'), '<i>Eve</i>');
      await page.waitForSelector('#messages .attachment.is-image img');
      assert.equal(await page.textContent('#messages .attachment .attachment-name'), file.name);
      await page.waitForFunction(() => document.querySelector('#messages .attachment img').naturalWidth === 1, null, { timeout: 5000 });
      const images = await page.$$eval('body img', (ns) => ns.map((n) => n.getAttribute('src')));
      assert.deepEqual(images, [file.url], 'the one image is the uploaded file, served by the server');
      const injected = await page.evaluate(() => document.querySelectorAll('body script, body b, body i, body [onerror], body [onmouseover]').length);
      assert.equal(injected, 0, 'no element was made from visitor text');
      await page.waitForTimeout(300);
      assert.deepEqual(page.dialogs, []);
      assert.deepEqual(page.errors, []);
      await closePages();
    });

    test('network drop: missed messages arrive exactly once after going offline, a dropped socket, and a reconnect that cannot resume', { timeout: TIMEOUT }, async () => {
      const nora = await createOperator(server, admin.token, 'Nora Núñez');
      const { v, id } = await visitorSays(host, 'Hola, ¿siguen ahí?');
      const page = await consoleOf(nora, { hash: `#/c/${id}` });
      await waitText(page, '#messages .msg-body', 'Hola, ¿siguen ahí?');
      const exactlyOnce = async (bodies) => {
        for (const b of bodies) await waitText(page, '#messages .msg-body', b);
        await page.waitForTimeout(400);
        for (const b of bodies) assert.equal(await countMessages(page, b), 1, `${b} shown once`);
      };

      // 1. The browser goes offline: the console gives the socket up and resumes later.
      await page.context().setOffline(true);
      await page.waitForSelector('#conn[data-state=offline]');
      assert.equal(await page.textContent('#conn'), 'Offline — will reconnect');
      for (const b of ['offline 1', 'offline 2', 'offline 3']) await v.say(b);
      await send(page, 'respuesta sin red');
      await waitStatus(page, 'respuesta sin red', 'queued');
      await page.context().setOffline(false);
      await page.waitForSelector('#conn[data-state=connected]');
      await exactlyOnce(['offline 1', 'offline 2', 'offline 3', 'respuesta sin red']);
      await v.waitFrame({ type: 'message', body: 'respuesta sin red' });
      assert.equal((await v.frames()).filter((f) => f.type === 'message' && f.body === 'respuesta sin red').length, 1);
      assert.deepEqual(await page.evaluate(() => window.__readies), [false, true]);

      // 2. The socket drops under the console (no offline event): backoff, resume.
      await page.evaluate(() => {
        window.__states.length = 0;
        window.__sockets.at(-1).close();
      });
      await v.say('socket caído 1');
      await v.say('socket caído 2');
      await page.waitForFunction(() => window.__readies.length === 3);
      await page.waitForSelector('#conn[data-state=connected]');
      assert.deepEqual(await page.evaluate(() => window.__states), ['reconnecting', 'connected']);
      assert.equal((await page.evaluate(() => window.__readies)).at(-1), true, 'resumed');
      await exactlyOnce(['socket caído 1', 'socket caído 2']);

      // 3. A reconnect the server cannot resume (another epoch): the console reloads.
      await page.context().setOffline(true);
      await page.waitForSelector('#conn[data-state=offline]');
      await page.evaluate(() => {
        window.__spoilResume = true;
      });
      await v.say('sin reanudar 1');
      await v.say('sin reanudar 2');
      await page.context().setOffline(false);
      await page.waitForSelector('#conn[data-state=connected]');
      await exactlyOnce(['sin reanudar 1', 'sin reanudar 2']);
      assert.equal((await page.evaluate(() => window.__readies)).at(-1), false);
      await v.say('en vivo otra vez');
      await exactlyOnce(['offline 1', 'socket caído 1', 'sin reanudar 1', 'en vivo otra vez']);
      await waitText(page, `${item(id)} .conv-preview`, 'en vivo otra vez');
      assert.equal(await page.$(`${item(id)} .unread-badge`), null, 'read while open');
      assert.deepEqual(page.errors, []);
      await closePages();
    });

    test('internal chat between two operators and a team, pop-up display over the work area, availability, phone layout', { timeout: TIMEOUT }, async () => {
      const ines = await createOperator(server, admin.token, 'Inés Iglesias');
      const jorge = await createOperator(server, admin.token, 'Jorge Jiménez');
      const team = await http(server, admin.token, 'POST', '/api/teams', { name: `Soporte ${backend}` });
      for (const op of [ines, jorge]) await http(server, admin.token, 'PATCH', `/api/operators/${op.id}`, { teams: [team.id] });
      const pi = await consoleOf(ines);
      const pj = await consoleOf(jorge, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });

      // Inés starts a chat with Jorge (OC21).
      await pi.click('#new-chat');
      await pi.waitForSelector('#newchat-dialog[open]');
      await pi.locator('#newchat-colleagues li', { hasText: 'Jorge Jiménez' }).locator('input').check();
      await pi.click('#newchat-dialog button[type=submit]');
      await waitText(pi, '#conv-title', 'Jorge Jiménez');
      const chatId = Number(await pi.evaluate(() => location.hash.split('/')[2]));
      for (const b of ['#act-take', '#act-reassign', '#act-close', '#act-reopen']) assert.equal(await pi.isHidden(b), true, `${b} hidden in an internal chat`);
      assert.equal(await pi.isHidden('#note-toggle'), true);
      await send(pi, '¿Puedes cubrir mi turno del sábado?');
      await waitStatus(pi, '¿Puedes cubrir mi turno del sábado?', 'sent');

      // Jorge, on a phone: the list first, a toast, then the chat with a back button.
      await waitText(pj, '.toast-body', '¿Puedes cubrir mi turno del sábado?');
      await waitText(pj, `${item(chatId)} .conv-name`, 'Inés Iglesias');
      assert.equal(await pj.textContent(`${item(chatId)} .unread-count`), '1');
      assert.equal(await pj.isVisible('#list-pane'), true);
      assert.equal(await pj.isVisible('#main-pane'), false);
      await pj.click(`${item(chatId)} a`);
      await waitText(pj, '#messages .msg-body', '¿Puedes cubrir mi turno del sábado?');
      assert.equal(await pj.isVisible('#list-pane'), false);
      assert.equal(await pj.isVisible('#conv-back'), true);
      assert.equal(await pj.isVisible('#composer-input'), true);
      const box = await pj.locator('#conv-pane').boundingBox();
      assert.ok(box.width <= 390 && box.width > 300, `the conversation fills the phone: ${JSON.stringify(box)}`);
      await send(pj, 'Sí, sin problema');
      await waitText(pi, '#messages .msg-body', 'Sí, sin problema');
      await pj.click('#conv-back');
      await pj.waitForSelector('#list-pane', { state: 'visible' });
      assert.equal(await pj.isVisible('#main-pane'), false);
      assert.equal(await pj.$(`${item(chatId)} .unread-badge`), null);

      // The team's chat.
      await pi.click('#new-chat');
      await pi.locator('#newchat-teams li', { hasText: `Soporte ${backend}` }).locator('input').check();
      await pi.click('#newchat-dialog button[type=submit]');
      await waitText(pi, '#conv-title', `Soporte ${backend}`);
      await send(pi, 'Hola equipo');
      await waitText(pj, `#conv-list li .conv-name`, `Soporte ${backend}`);

      // Pop-up display (OC2): the work area stays, the chat floats over it.
      const mine = await visitorSays(host, 'Una consulta para Inés');
      await http(server, admin.token, 'POST', `/api/conversations/${mine.id}/assign`, { operator_id: ines.id });
      await pi.click('#settings-button');
      await pi.check('#settings-dialog input[value=popup]');
      await pi.waitForFunction(() => document.body.classList.contains('mode-popup'));
      await pi.click('#settings-dialog button[type=submit]');
      assert.equal((await http(server, ines.token, 'GET', '/api/me')).display_mode, 'popup');
      await pi.click('#popup-close');
      await pi.waitForSelector('#overview:not([hidden])');
      await waitText(pi, '#overview-operators', 'Jorge Jiménez');
      await waitText(pi, '#overview-queue', 'Waiting in the queue:');
      await waitText(pi, '#overview-mine', `Visitor #${mine.id}`);
      const load = pi.locator('#overview-operators li', { hasText: 'Inés Iglesias' }).locator('.load-text');
      assert.match(await load.textContent(), /^1\/\d+$/);
      await pi.click(`${item(chatId)} a`);
      await waitText(pi, '#conv-title', 'Jorge Jiménez');
      assert.equal(await pi.isVisible('#overview'), true, 'the work area stays under the pop-up');
      assert.equal(await pi.$eval('#chat', (n) => getComputedStyle(n).position), 'absolute');
      const overview = await pi.locator('#overview').boundingBox();
      const popup = await pi.locator('#chat').boundingBox();
      assert.ok(popup.x > overview.x && popup.width < overview.width, 'the chat floats over the work area');
      await pi.reload();
      await pi.waitForSelector('#conn[data-state=connected]');
      assert.equal(await pi.$eval('#chat', (n) => getComputedStyle(n).position), 'absolute', 'the preference is kept');

      // Availability.
      assert.equal(await pi.getAttribute('#availability', 'aria-pressed'), 'true');
      await pi.click('#availability');
      await pi.waitForSelector('#availability[aria-pressed=false]');
      assert.equal(await pi.textContent('#availability'), 'Away');
      assert.equal((await http(server, ines.token, 'GET', '/api/me')).available, false);
      await pi.click('#availability');
      await pi.waitForSelector('#availability[aria-pressed=true]');

      // Back to the section display.
      await pi.click('#settings-button');
      await pi.check('#settings-dialog input[value=section]');
      await pi.waitForFunction(() => !document.body.classList.contains('mode-popup'));
      await pi.click('#settings-dialog button[type=submit]');
      assert.equal(await pi.$eval('#chat', (n) => getComputedStyle(n).position), 'static');
      for (const p of [pi, pj]) assert.deepEqual(p.errors, []);
      await closePages();
    });

    test('administration: routing, operators, groups, teams and channels, with the API\'s error messages', { timeout: TIMEOUT }, async () => {
      const page = await consoleOf(admin, { hash: '#/admin' });
      await page.waitForSelector('#admin-routing');
      assert.equal(await page.isChecked('#routing-distribution'), false);
      await page.fill('#routing-autoclose', '45');
      await page.click('.routing-form button[type=submit]');
      await waitText(page, '.routing-form .form-ok', 'Saved');
      assert.equal((await http(server, admin.token, 'GET', '/api/settings/routing')).auto_close_minutes, 45);
      await page.fill('#routing-autoclose', '999999');
      await page.click('.routing-form button[type=submit]');
      await waitText(page, '.routing-form .form-error', 'auto_close_minutes must be');

      // Operators.
      const email = `rosa-${backend}@example.com`;
      await page.fill('#new-operator-name', 'Rosa Ruiz');
      await page.fill('#new-operator-email', email);
      await page.fill('#new-operator-password', 'short');
      await page.click('.add-operator-form button[type=submit]');
      await waitText(page, '.add-operator-form .form-error', 'the password must be 8 to 1024 characters');
      await page.fill('#new-operator-password', PASSWORD);
      await page.click('.add-operator-form button[type=submit]');
      await waitText(page, '#admin-operators .operator-title', email);
      await page.fill('#new-operator-name', 'Rosa Otra');
      await page.fill('#new-operator-email', email);
      await page.fill('#new-operator-password', PASSWORD);
      await page.click('.add-operator-form button[type=submit]');
      await waitText(page, '.add-operator-form .form-error', 'Error:');

      // Groups and teams.
      await page.fill('#new-group-name', `Ventas ${backend}`);
      await page.click('.add-group-form button[type=submit]');
      await waitText(page, '#admin-groups .group-name', `Ventas ${backend}`);
      const group = (await http(server, admin.token, 'GET', '/api/groups')).find((g) => g.name === `Ventas ${backend}`);
      assert.equal(group.can_chat, true);
      await page.uncheck(`#group-chat-${group.id}`);
      await waitFor(async () => (await http(server, admin.token, 'GET', '/api/groups')).find((g) => g.id === group.id).can_chat === false);
      await page.fill('#new-team-name', `Postventa ${backend}`);
      await page.click('.add-team-form button[type=submit]');
      await waitText(page, '#admin-teams .team-row', `Postventa ${backend}`);
      const teamId = (await http(server, admin.token, 'GET', '/api/teams')).find((x) => x.name === `Postventa ${backend}`).id;

      // Edit Rosa: capacity, group, team.
      const rosa = (await http(server, admin.token, 'GET', '/api/operators')).find((o) => o.email === email);
      const row = page.locator(`#admin-operators li[data-operator-id="${rosa.id}"]`);
      await row.locator('input[name=capacity]').fill('3');
      await row.locator(`input[name=groups][value="${group.id}"]`).check();
      await row.locator(`input[name=teams][value="${teamId}"]`).check();
      await row.locator('button[type=submit]').click();
      await waitText(page, `.operator-${rosa.id} .form-ok`, 'Saved');
      const after = (await http(server, admin.token, 'GET', '/api/operators')).find((o) => o.id === rosa.id);
      assert.equal(after.capacity, 3);
      assert.ok(after.teams.includes(teamId) && after.groups.includes(group.id), JSON.stringify(after));
      await waitText(page, '#admin-teams .team-row', 'Rosa Ruiz');

      // Channels.
      await page.fill('#new-channel-name', 'bad name!');
      await page.fill('#new-channel-title', 'Telegram bot');
      await page.click('.add-channel-form button[type=submit]');
      await waitText(page, '.add-channel-form .form-error', 'the channel name must be');
      await page.fill('#new-channel-name', `tg${backend}`);
      await page.selectOption('.add-channel-form select[name=kind]', 'telegram');
      await page.selectOption('.add-channel-form select[name=team_id]', String(teamId));
      await page.click('.add-channel-form button[type=submit]');
      await page.waitForSelector(`#admin-channels li[data-channel="tg${backend}"]`);
      const channel = (await http(server, admin.token, 'GET', '/api/channels')).find((x) => x.name === `tg${backend}`);
      assert.equal(channel.kind, 'telegram');
      assert.equal(channel.team_id, teamId);
      await page.click('#admin-pane .button-link');
      await page.waitForSelector('#admin-pane', { state: 'hidden' });
      assert.ok(await page.$(`#filter-channel option[value="tg${backend}"]`), 'the channel filter knows the new channel');
      await setRouting(server, admin.token);
      // The deliberate mistakes above are the only failed requests.
      assert.deepEqual(unexpected(page, /status of 40[09] .*\/api\/(settings\/routing|operators|channels):0\)$/), []);
      await closePages();
    });
  });
}

/** The page's console errors, less the failed requests a test made on purpose. */
function unexpected(page, ...allowed) {
  return page.errors.filter((e) => !allowed.some((re) => re.test(e)));
}

/** Polls `check` until it answers true (10 s). */
async function waitFor(check, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

if (postgresProblem) {
  test('console on postgres', () => {
    throw postgresProblem;
  });
} else if (!tested.includes('postgres')) {
  test('console on postgres', { skip: postgresStatus().reason }, () => {});
}
