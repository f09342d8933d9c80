// Browser tests of the visitor widget (static/widget, docs/WIDGET.md) and its demo page
// (static/demo): the real server, Chromium as the visitor, and the operator played over the
// HTTP API and with operator websockets opened from a second page of the server's origin.
// One server per backend is shared by the tests of this file; each test uses its own browser
// context (a new visitor) and its own channel or conversation, and asserts on those only.
//
// CHARLA_WIDGET_SCREENSHOTS=1 also writes docs/screenshots/widget-desktop.png and
// widget-phone.png from the runs of the tests below.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  addOperator,
  apiLogin,
  backends,
  IGNORED_CONSOLE_ERRORS,
  launchBrowser,
  newPage,
  postgresStatus,
  REPO,
  startServer,
} from './harness.mjs';
import {
  countInWidget,
  demoPage,
  embedPage,
  embedUrl,
  history,
  http,
  noErrors,
  openDesk,
  openWidget,
  send,
  sent,
  sleep,
  startSite,
  storedConversation,
  until,
  w,
  W,
  widgetText,
} from './fixtures/widget-kit.mjs';

const TIMEOUT = 60_000;
const PASSWORD = 'a long widget password';
const PNG = fs.readFileSync(new URL('./fixtures/dot.png', import.meta.url));
const SCREENSHOTS = process.env.CHARLA_WIDGET_SCREENSHOTS === '1';
/** The web channel's greeting: markup in it must stay text (CF1). */
const GREETING = 'Welcome to Tienda Ejemplo! Questions about <your order> or <b>shipping</b>? Ask us here.';

let counter = 0;

/** Channel settings with the defaults a test does not care about spelled out. */
function settings(change = {}) {
  return { name_form_delay_secs: 1, ...change };
}

async function screenshot(page, name) {
  if (!SCREENSHOTS) return;
  const dir = path.join(REPO, 'docs', 'screenshots');
  fs.mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, name) });
}

// ---------------------------------------------------------------------------------------

let browser;
let site;

before(async () => {
  browser = await launchBrowser();
  site = await startSite();
});

after(async () => {
  await browser?.close();
  await site?.stop();
});

let tested = ['sqlite'];
let postgresProblem = null;
try {
  tested = backends();
} catch (e) {
  postgresProblem = e;
}

for (const backend of tested) {
  describe(`widget on ${backend}`, { timeout: 10 * TIMEOUT }, () => {
    let server;
    let admin; // { token, name }
    let desk;
    const channels = {}; // name -> id

    before(async () => {
      server = await startServer({ backend });
      const email = `admin-${backend}@example.com`;
      await addOperator(server, { email, name: 'Ana Admin', password: PASSWORD, admin: true });
      admin = { token: await apiLogin(server, email, PASSWORD), name: 'Ana Admin' };
      // Nobody is handed conversations automatically (tests that need the queue turn it
      // on), and nothing closes by itself under a test.
      await http(server, admin.token, 'PUT', '/api/settings/routing', {
        distribution: false,
        default_assignee_id: null,
        auto_close_minutes: 0,
      });
      await http(server, admin.token, 'PATCH', '/api/channels/1', {
        title: 'Website',
        settings: settings({ greeting: GREETING, language: 'en', name_form_delay_secs: 2 }),
      });
      channels.web = 1;
      const add = async (name, title, body = {}) =>
        (channels[name] = (await http(server, admin.token, 'POST', '/api/channels', { name, title, kind: 'web', ...body })).id);
      await add('pre', 'Pre-chat', { settings: settings({ prechat: { name: 'optional', email: 'required', phone: 'off' } }) });
      await add('members', 'Members area', { settings: settings({ require_identity: true }) });
      await add('later', 'Later form', { settings: settings({ name_form_delay_secs: 4 }) });
      // The administrator's console is online: channels without a team can answer.
      desk = await openDesk(browser, server);
      await desk.connect('admin', admin.token);
    });

    after(async () => {
      await desk?.page.context().close();
      await server?.stop();
    });

    test('greeting, then the name form after its delay: the name first, e-mail and phone once it is typed; the operator sees the data (CF1, CF2, CF3, CF4)', { timeout: TIMEOUT }, async () => {
      const page = await demoPage(browser, server);
      const opened = Date.now();
      await openWidget(page);
      // CF1: the channel's greeting, as text (its markup is not markup).
      assert.equal(await widgetText(page, '.greeting .bubble'), GREETING);
      assert.equal(await countInWidget(page, '.greeting .bubble *'), 0);
      assert.equal(await w(page, '.card.name').count(), 0, 'the name form waits for its delay');

      // CF2: after name_form_delay_secs (2 s), the name only.
      await w(page, '.card.name').waitFor();
      assert.ok(Date.now() - opened >= 1900, `the name form came after ${Date.now() - opened} ms`);
      assert.ok(await w(page, '.card.name input[name="name"]').isVisible());
      assert.equal(await w(page, '.card.name input[name="email"]').isVisible(), false);
      assert.equal(await w(page, '.card.name input[name="phone"]').isVisible(), false);
      await w(page, '.card.name input[name="name"]').fill('Ana Visitante');
      await w(page, '.card.name input[name="email"]').waitFor();
      assert.ok(await w(page, '.card.name input[name="phone"]').isVisible());
      await w(page, '.card.name input[name="email"]').fill('Ana.V@Example.com');
      await w(page, '.card.name input[name="phone"]').fill('+34 600 123 456');
      await w(page, '.card.name button[type="submit"]').click();
      await w(page, '.card.name').waitFor({ state: 'detached' });
      assert.match(await widgetText(page, '[data-form-done="name"]'), /Thank you, Ana Visitante!/);
      await w(page, '.item.event[data-event="form"]').filter({ hasText: 'Ana Visitante' }).waitFor();

      // CF3: the operator has the data in the conversation; CF4: and in the CRM.
      const id = await storedConversation(page, server);
      await until('the number in the header', async () => (await widgetText(page, '.subtitle-text')) === `Conversation #${id}`);
      const form = (await history(server, admin.token, id)).find((m) => m.kind === 'event' && m.body === 'form');
      assert.ok(form, 'a form event in the history');
      assert.equal(form.meta.form, 'name');
      assert.deepEqual(form.meta.fields, { name: 'Ana Visitante', email: 'ana.v@example.com', phone: '+34600123456' });
      const card = await http(server, admin.token, 'GET', `/api/contacts/${form.meta.contact.id}`);
      assert.equal(card.email, 'ana.v@example.com');
      assert.equal(card.name, 'Ana Visitante');

      // Not asked again, even after a reload.
      await page.reload();
      await w(page, '.panel').waitFor();
      await sleep(2500);
      assert.equal(await w(page, '.card.name').count(), 0);
      await noErrors(page);
      await page.context().close();
    });

    test("the name form's delay runs once per visitor, not again on every page: back after it fell due, the form is there at once (CF2, XB9)", { timeout: TIMEOUT }, async () => {
      const page = await embedPage(browser, server, { attrs: { channel: 'later' } });
      const url = page.url();
      const opened = Date.now();
      await openWidget(page);
      assert.equal(await w(page, '.card.name').count(), 0, 'the name form waits for its delay (4 s)');
      // The visitor goes to another site before the form is due, and comes back after.
      await page.goto('about:blank');
      await sleep(Math.max(0, opened + 4500 - Date.now()));
      await page.goto(url);
      await w(page, '.panel').waitFor(); // it was open: it opens again
      // Counted from the first greeting, the form is due already: no new 4 s wait.
      await w(page, '.card.name').waitFor({ timeout: 2000 });
      assert.equal(await w(page, '.card.name').count(), 1);
      await w(page, '.card.name input[name="name"]').fill('Lola Later');
      await w(page, '.card.name button[type="submit"]').click();
      await w(page, '.card.name').waitFor({ state: 'detached' });
      // Answered: never asked again on the next page.
      await page.goto(url);
      await w(page, '.panel').waitFor();
      await sleep(1000);
      assert.equal(await w(page, '.card.name').count(), 0);
      await noErrors(page);
      await page.context().close();
    });

    test('pre-chat form with a required e-mail: refused without it (in the browser) and with a bad one (by the server), then the chat starts (ID7)', { timeout: TIMEOUT }, async () => {
      const page = await embedPage(browser, server, { attrs: { channel: 'pre' } });
      await openWidget(page);
      const card = w(page, '.card.prechat');
      await card.waitFor();
      assert.equal(await w(page, '.composer').isVisible(), false, 'the composer waits for the form');
      assert.equal(await w(page, '.card.prechat input[name="phone"]').count(), 0, 'phone is off');
      assert.match(await widgetText(page, '.card.prechat .field-name label'), /optional/);
      assert.match(await widgetText(page, '.card.prechat .field-email label'), /\*/);

      await w(page, '.card.prechat input[name="name"]').fill('Pedro');
      await w(page, '.card.prechat button[type="submit"]').click();
      assert.equal(await widgetText(page, '.card.prechat .form-error'), 'Please fill in: E-mail.');
      assert.equal(await w(page, '.card.prechat input[name="email"]').getAttribute('aria-invalid'), 'true');

      // The server's own check, and its message.
      await w(page, '.card.prechat input[name="email"]').fill('pedro@nowhere');
      await w(page, '.card.prechat button[type="submit"]').click();
      await until('the server refusal', async () => /not valid/.test(await widgetText(page, '.card.prechat .form-error')));
      assert.match(await widgetText(page, '.card.prechat .form-error'), /^The form was not accepted: the e-mail address is not valid/);
      const none = await http(server, admin.token, 'GET', '/api/conversations?channel=pre&status=all');
      assert.equal(none.length, 0, 'a refused form opens no conversation');

      await w(page, '.card.prechat input[name="email"]').fill('pedro@example.com');
      await w(page, '.card.prechat button[type="submit"]').click();
      await card.waitFor({ state: 'detached' });
      await w(page, '.composer').waitFor();
      await send(page, 'Hello after the form');
      await sent(page, 'Hello after the form');
      const id = await storedConversation(page, server, 'pre');
      const msgs = await history(server, admin.token, id);
      const form = msgs.find((m) => m.body === 'form');
      assert.deepEqual(form.meta.fields, { name: 'Pedro', email: 'pedro@example.com' });
      assert.equal(form.meta.form, 'prechat');
      assert.ok(msgs.some((m) => m.kind === 'text' && m.body === 'Hello after the form'));
      await noErrors(page);
      await page.context().close();
    });

    test('nobody online: the offline form, and the place in the queue; an operator comes online: the queue drains, and new visitors get the normal chat (CF7, XB13)', { timeout: TIMEOUT }, async () => {
      // A channel answered by a team whose only member is not connected.
      const team = await http(server, admin.token, 'POST', '/api/teams', { name: `Shop team ${++counter}` });
      const samEmail = `sam-${backend}@example.com`;
      const sam = await http(server, admin.token, 'POST', '/api/operators', { email: samEmail, name: 'Sam Shop', password: PASSWORD });
      await http(server, admin.token, 'PATCH', `/api/operators/${sam.id}`, { teams: [team.id] });
      const samToken = await apiLogin(server, samEmail, PASSWORD);
      const shop = (
        await http(server, admin.token, 'POST', '/api/channels', {
          name: 'shop',
          title: 'Shop',
          kind: 'web',
          team_id: team.id,
          settings: settings({ name_form: false }),
        })
      ).id;
      await http(server, admin.token, 'PUT', '/api/settings/routing', { distribution: true, default_assignee_id: null, auto_close_minutes: 0 });
      try {
        assert.equal((await http(server, null, 'GET', '/api/widget/shop')).online, false);
        const page = await embedPage(browser, server, { attrs: { channel: 'shop' } });
        await openWidget(page);
        await w(page, '.card.offline').waitFor();
        assert.equal(await widgetText(page, '.subtitle-text'), 'We are away right now');
        assert.match(await widgetText(page, '.card.offline .card-text'), /Leave your e-mail to be notified when you get a reply/);
        await w(page, '.card.offline button[type="submit"]').click();
        assert.equal(await widgetText(page, '.card.offline .form-error'), 'Please fill in: E-mail.');
        await w(page, '.card.offline input[name="email"]').fill('Carla@Example.com');
        await w(page, '.card.offline input[name="name"]').fill('Carla');
        await w(page, '.card.offline button[type="submit"]').click();
        await w(page, '.card.offline').waitFor({ state: 'detached' });
        assert.match(await widgetText(page, '[data-form-done="offline"]'), /Carla@Example.com/);
        const id = await storedConversation(page, server, 'shop');
        const form = (await history(server, admin.token, id)).find((m) => m.body === 'form');
        assert.equal(form.meta.form, 'offline');
        assert.equal(form.meta.fields.email, 'carla@example.com');

        // XB13: the conversation waits for the team; the visitor sees their place.
        await until('the queue notice', async () => (await w(page, '.notice.queue').isVisible()));
        assert.equal(await widgetText(page, '.notice.queue'), 'You are number 1 in the queue');
        await send(page, 'Is anybody there?');
        await sent(page, 'Is anybody there?');

        // Sam's console comes online: the queue drains to Sam.
        await desk.connect('sam', samToken);
        await w(page, '.notice.queue').waitFor({ state: 'hidden' });
        await w(page, '.item.event[data-event="assigned"]').filter({ hasText: 'Sam Shop joined the conversation' }).waitFor();
        await noErrors(page);
        await page.context().close();

        // A new visitor while Sam is online: no offline form, the normal chat.
        assert.equal((await http(server, null, 'GET', '/api/widget/shop')).online, true);
        const next = await embedPage(browser, server, { attrs: { channel: 'shop' } });
        await openWidget(next);
        assert.equal(await widgetText(next, '.subtitle-text'), 'We are online');
        await send(next, 'Hello Sam');
        await sent(next, 'Hello Sam');
        assert.equal(await w(next, '.card.offline').count(), 0);
        assert.ok(await w(next, '.composer textarea').isVisible());
        const nextId = await storedConversation(next, server, 'shop');
        const conv = await http(server, admin.token, 'GET', `/api/conversations/${nextId}`);
        assert.equal(conv.conversation.assignee?.name, 'Sam Shop');
        await noErrors(next);
        await next.context().close();
      } finally {
        await desk.disconnect('sam');
        await http(server, admin.token, 'PUT', '/api/settings/routing', { distribution: false, default_assignee_id: null, auto_close_minutes: 0 });
        await http(server, admin.token, 'PATCH', `/api/channels/${shop}`, { title: 'Shop', kind: 'web', team_id: team.id, settings: settings({ name_form: false }) });
      }
    });

    test('a closed channel with an operator online offers the offline form; a mandatory pre-chat form comes first, and the e-mail it gave is not asked again (CF7, ID7)', { timeout: TIMEOUT }, async () => {
      const closedSettings = (change = {}) => settings({ name_form: false, closed: true, ...change });
      const closed = (await http(server, admin.token, 'POST', '/api/channels', { name: 'closed', title: 'Closed shop', kind: 'web', settings: closedSettings() })).id;
      assert.equal((await http(server, null, 'GET', '/api/widget/closed')).online, false, 'the desk is online, the channel closed');
      const page = await embedPage(browser, server, { attrs: { channel: 'closed' } });
      await openWidget(page);
      await w(page, '.card.offline').waitFor();
      assert.equal(await widgetText(page, '.subtitle-text'), 'We are away right now');
      await noErrors(page);
      await page.context().close();

      // Mandatory pre-chat fields: that form first even now (the server refuses a first
      // message without them), the composer waiting for it.
      await http(server, admin.token, 'PATCH', `/api/channels/${closed}`, {
        title: 'Closed shop',
        kind: 'web',
        settings: closedSettings({ prechat: { name: 'required', email: 'required', phone: 'off' } }),
      });
      const next = await embedPage(browser, server, { attrs: { channel: 'closed' } });
      await openWidget(next);
      await w(next, '.card.prechat').waitFor();
      assert.equal(await w(next, '.card.offline').count(), 0);
      assert.equal(await w(next, '.composer').isVisible(), false);
      await w(next, '.card.prechat input[name="name"]').fill('Olga');
      await w(next, '.card.prechat input[name="email"]').fill('olga@example.com');
      await w(next, '.card.prechat button[type="submit"]').click();
      await w(next, '.card.prechat').waitFor({ state: 'detached' });
      await send(next, 'Are you open tomorrow?');
      await sent(next, 'Are you open tomorrow?');
      assert.equal(await w(next, '.card.offline').count(), 0, 'the e-mail is known: no offline form');
      const id = await storedConversation(next, server, 'closed');
      const forms = (await history(server, admin.token, id)).filter((m) => m.body === 'form');
      assert.deepEqual(forms.map((m) => m.meta.form), ['prechat']);
      assert.equal(forms[0].meta.fields.email, 'olga@example.com');
      await noErrors(next);
      await next.context().close();
    });

    test('images both ways from a page of another origin: the visitor’s PNG reaches the operator, the operator’s shows in the widget, an SVG is refused with the server’s message (XB1)', { timeout: TIMEOUT }, async () => {
      // The page is on the site's origin, the widget's server on another one: the
      // configuration and the uploads go through CORS.
      const page = await embedPage(browser, server, {
        // Chromium logs every refused request as a console error; these two are expected.
        ignore: [
          ...IGNORED_CONSOLE_ERRORS,
          /status of 400 \(Bad Request\) \(http:\/\/127\.0\.0\.1:\d+\/api\/uploads\?name=evil\.svg/,
          /status of 413 \(Payload Too Large\) \(http:\/\/127\.0\.0\.1:\d+\/api\/uploads\?name=big\.png/,
        ],
      });
      await openWidget(page);
      await send(page, 'I will send a photo');
      await sent(page, 'I will send a photo');
      const id = await storedConversation(page, server);

      await w(page, 'input[type="file"]').setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: PNG });
      const mine = w(page, '.item.visitor[data-state="sent"] img[alt="dot.png"]');
      await mine.waitFor();
      await until('the image to load', () => mine.evaluate((img) => img.complete && img.naturalWidth === 32));
      const msgs = await history(server, admin.token, id);
      const withFile = msgs.find((m) => m.meta?.attachment);
      assert.ok(withFile, 'the history has the attachment');
      assert.equal(withFile.author.kind, 'visitor');
      assert.deepEqual(
        { name: withFile.meta.attachment.name, type: withFile.meta.attachment.type, size: withFile.meta.attachment.size },
        { name: 'dot.png', type: 'image/png', size: PNG.length },
      );
      const file = await fetch(`${server.url}/files/${withFile.meta.attachment.id}/dot.png`);
      assert.equal(file.status, 200);
      assert.equal(file.headers.get('content-type'), 'image/png');
      assert.deepEqual(Buffer.from(await file.arrayBuffer()), PNG);
      assert.equal(await mine.getAttribute('src'), `${server.url}/files/${withFile.meta.attachment.id}/dot.png`);

      // The operator answers with a picture of their own.
      const up = await http(server, admin.token, 'POST', '/api/uploads?name=answer.png', PNG, { raw: true, headers: { 'content-type': 'image/png' } });
      await http(server, admin.token, 'POST', `/api/conversations/${id}/messages`, { client_id: `op-img-${++counter}`, body: 'Here is ours', attachment: up.id });
      const theirs = w(page, '.item.operator img[alt="answer.png"]');
      await theirs.waitFor();
      await until('the operator image to load', () => theirs.evaluate((img) => img.complete && img.naturalWidth === 32));
      assert.match(await widgetText(page, '.item.operator:has(img[alt="answer.png"])'), /Ana Admin[\s\S]*Here is ours/);

      // SVG can carry script: the server refuses it, and the widget says why.
      const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');
      await w(page, 'input[type="file"]').setInputFiles({ name: 'evil.svg', mimeType: 'image/svg+xml', buffer: svg });
      await w(page, '.alert').waitFor();
      assert.equal(
        await widgetText(page, '.alert .alert-text'),
        'Could not send “evil.svg”: this kind of file is not accepted: images (PNG, JPEG, GIF, WebP), PDF or plain text',
      );

      // Over max_upload_bytes (5 MiB by default): refused, and the server's reason shown.
      const big = Buffer.alloc(5 * 1024 * 1024 + 1, 0);
      PNG.copy(big);
      await w(page, '.alert button').click();
      await w(page, 'input[type="file"]').setInputFiles({ name: 'big.png', mimeType: 'image/png', buffer: big });
      await w(page, '.alert').waitFor();
      assert.equal(await widgetText(page, '.alert .alert-text'), 'Could not send “big.png”: the file is over 5242880 bytes');
      assert.equal((await history(server, admin.token, id)).filter((m) => m.meta?.attachment).length, 2);
      await noErrors(page);
      await page.context().close();
    });

    test('a message typed while offline is shown pending and delivered exactly once after reconnecting; a resent message whose ack was lost is not doubled (XB4)', { timeout: TIMEOUT }, async () => {
      const page = await newPage(browser);
      // The test's handle on the page's sockets, to kill them as a network drop would.
      await page.context().addInitScript(() => {
        const Native = window.WebSocket;
        const live = new Set();
        class Tracked extends Native {
          constructor(...args) {
            super(...args);
            live.add(this);
            this.addEventListener('close', () => live.delete(this));
          }
        }
        Object.defineProperty(Tracked, 'killAll', {
          value: () => {
            const n = live.size;
            for (const s of live) s.close(4000, 'killed by the test');
            return n;
          },
        });
        window.WebSocket = Tracked;
      });
      page.dialogs = [];
      await page.goto(`${server.url}/demo/`);
      await openWidget(page);
      await send(page, 'First, while online');
      await sent(page, 'First, while online');
      const id = await storedConversation(page, server);

      await page.context().setOffline(true);
      await page.evaluate(() => WebSocket.killAll());
      await send(page, 'Typed while offline');
      const pending = w(page, '.item.visitor').filter({ hasText: 'Typed while offline' });
      await pending.waitFor();
      assert.equal(await pending.getAttribute('data-state'), 'pending');
      assert.match(await pending.locator('.state').textContent(), /Waiting for connection/);
      assert.match(await widgetText(page, '.state-notice'), /offline/i);
      const outbox = await page.evaluate((key) => JSON.parse(localStorage.getItem(key)), `charla:${server.url}:web:outbox`);
      assert.deepEqual(outbox.map((e) => e.body), ['Typed while offline']);
      await sleep(1500);
      assert.equal((await history(server, admin.token, id)).filter((m) => m.body === 'Typed while offline').length, 0);
      assert.equal(await pending.getAttribute('data-state'), 'pending');

      await page.context().setOffline(false);
      await sent(page, 'Typed while offline');
      await until('the outbox to empty', async () =>
        (await page.evaluate((key) => localStorage.getItem(key), `charla:${server.url}:web:outbox`)) === '[]',
      );
      let msgs = await history(server, admin.token, id);
      assert.equal(msgs.filter((m) => m.body === 'Typed while offline').length, 1);
      assert.equal(await w(page, '.item.visitor').filter({ hasText: 'Typed while offline' }).count(), 1);

      // An ack lost on the way: the outbox still holds a message the server has. After a
      // reload the widget resends it with its client_id; the server answers `duplicate`.
      const clientId = await pending.getAttribute('data-client-id');
      await page.evaluate(
        ({ key, clientId }) => localStorage.setItem(key, JSON.stringify([{ kind: 'message', client_id: clientId, body: 'Typed while offline', created_at: Date.now() }])),
        { key: `charla:${server.url}:web:outbox`, clientId },
      );
      await page.reload();
      await w(page, '.panel').waitFor();
      await until('the outbox to empty after the duplicate ack', async () =>
        (await page.evaluate((key) => localStorage.getItem(key), `charla:${server.url}:web:outbox`)) === '[]',
      );
      await sent(page, 'Typed while offline');
      assert.equal(await w(page, '.item.visitor').filter({ hasText: 'Typed while offline' }).count(), 1);
      msgs = await history(server, admin.token, id);
      assert.equal(msgs.filter((m) => m.body === 'Typed while offline').length, 1);
      await noErrors(page);
      await page.context().close();
    });

    test('markup in messages, names and file names is shown as text: no element made, no script run', { timeout: TIMEOUT }, async () => {
      const page = await demoPage(browser, server);
      await openWidget(page);
      const evilName = '<img src=x onerror=alert(1)>Eve';
      await w(page, '.card.name input[name="name"]').fill(evilName);
      await w(page, '.card.name button[type="submit"]').click();
      await w(page, '.card.name').waitFor({ state: 'detached' });
      const evilBody = '<script>alert(2)</script><b>bold?</b><img src=x onerror=alert(3)>';
      await send(page, evilBody);
      await sent(page, 'bold?');
      const id = await storedConversation(page, server);

      // An operator whose name is markup answers with markup and a file named like markup.
      const evilOperator = `<i>Mallory</i> ${++counter}`;
      const email = `mallory-${backend}-${counter}@example.com`;
      await http(server, admin.token, 'POST', '/api/operators', { email, name: evilOperator, password: PASSWORD });
      const malloryToken = await apiLogin(server, email, PASSWORD);
      const opBody = '<img src=x onerror=alert(4)><a href="javascript:alert(5)">click</a>';
      await http(server, malloryToken, 'POST', `/api/conversations/${id}/messages`, { client_id: `evil-${counter}`, body: opBody });
      const fileName = '<img src=x onerror=alert(6)>.txt';
      const up = await http(server, malloryToken, 'POST', `/api/uploads?name=${encodeURIComponent(fileName)}`, 'plain text', {
        raw: true,
        headers: { 'content-type': 'text/plain' },
      });
      await http(server, malloryToken, 'POST', `/api/conversations/${id}/messages`, { client_id: `evil-file-${counter}`, body: '', attachment: up.id });

      await w(page, '.item.event[data-event="form"]').filter({ hasText: evilName }).waitFor();
      assert.equal(await widgetText(page, '.item.visitor .bubble .text'), evilBody);
      const reply = w(page, '.item.operator').filter({ hasText: 'click' });
      await reply.waitFor();
      assert.equal((await reply.locator('.author').textContent()).trim(), evilOperator);
      assert.equal((await reply.locator('.bubble').textContent()).trim(), opBody);
      const link = w(page, '.item.operator .file-link');
      await link.waitFor();
      assert.equal((await link.textContent()).trim(), fileName);
      assert.match(await w(page, '.item.event[data-event="assigned"]').last().textContent(), /<i>Mallory<\/i>/);

      // Nothing in the list but what the widget itself makes.
      assert.equal(await countInWidget(page, '.messages script, .messages b, .messages i, .messages img, .messages [onerror], .forms img'), 0);
      assert.equal(await countInWidget(page, 'a[href^="javascript:"]'), 0);
      await sleep(300);
      await noErrors(page);
      await page.context().close();
    });

    test('no globals, no styles outside the shadow root, and hostile page CSS does not change the widget', { timeout: TIMEOUT }, async () => {
      // A bare page of the site; the script is added after taking stock of the window.
      const page = await newPage(browser);
      await page.goto(
        site.page('<!doctype html><html><head><link rel="icon" href="data:,"><title>bare</title></head><body><p id="para">Plain text</p><button id="btn">A page button</button></body></html>'),
      );
      const stock = () =>
        page.evaluate(() => ({
          keys: Object.keys(window).sort(),
          own: Object.getOwnPropertyNames(window).length,
          sheets: document.styleSheets.length,
          adopted: document.adoptedStyleSheets.length,
          head: document.head.children.length,
          bodyKids: Array.from(document.body.children).map((e) => e.tagName),
          htmlAttrs: Array.from(document.documentElement.attributes).map((a) => a.name),
          bodyAttrs: Array.from(document.body.attributes).map((a) => a.name),
          para: getComputedStyle(document.getElementById('para')).cssText || JSON.stringify(['font-size', 'color', 'font-family', 'margin'].map((p) => getComputedStyle(document.getElementById('para')).getPropertyValue(p))),
          btn: JSON.stringify(['font-size', 'color', 'background-color', 'border-top-width', 'padding-top'].map((p) => getComputedStyle(document.getElementById('btn')).getPropertyValue(p))),
          cookies: document.cookie,
        }));
      const before = await stock();
      await page.evaluate((src) => {
        const s = document.createElement('script');
        s.src = src;
        s.async = true;
        s.dataset.channel = 'web';
        document.body.appendChild(s);
      }, `${server.url}/widget/charla.js`);
      await page.locator(`${W} .launcher`).waitFor();
      await openWidget(page);
      await until('the widget to settle', async () => (await widgetText(page, '.title')) === 'Website');
      const afterLoad = await stock();
      assert.deepEqual(afterLoad.keys, before.keys, 'no window property was added');
      assert.equal(afterLoad.own, before.own, 'no non-enumerable window property either');
      assert.equal(afterLoad.sheets, before.sheets);
      assert.equal(afterLoad.adopted, before.adopted);
      assert.equal(afterLoad.head, before.head);
      assert.deepEqual(afterLoad.bodyKids, [...before.bodyKids, 'SCRIPT', 'DIV']);
      assert.deepEqual(afterLoad.htmlAttrs, before.htmlAttrs);
      assert.deepEqual(afterLoad.bodyAttrs, before.bodyAttrs);
      assert.equal(afterLoad.para, before.para);
      assert.equal(afterLoad.btn, before.btn);
      assert.equal(afterLoad.cookies, before.cookies);
      assert.equal(await page.locator('body > div[data-charla-widget]').count(), 1);
      const keys = await page.evaluate(() => Object.keys(localStorage));
      // The script is served without a charset: it must be ASCII to read the same on a page
      // in any encoding.
      const js = Buffer.from(await (await fetch(`${server.url}/widget/charla.js`)).arrayBuffer());
      assert.equal(js.findIndex((b) => b > 0x7f), -1, 'charla.js is pure ASCII');
      assert.ok(keys.length > 0 && keys.every((k) => k.startsWith(`charla:${server.url}:web:`)), keys.join(', '));

      // The widget's look on the bare page and on the demo page with its hostile rules.
      const look = async (p) => {
        // Away from the launcher, and past its hover transition.
        await p.mouse.move(1, 1);
        await sleep(400);
        return p.evaluate((host) => {
          const h = document.querySelector(host);
          const r = h.shadowRoot;
          const pick = (el, props) => props.map((x) => `${x}=${getComputedStyle(el).getPropertyValue(x)}`).join('; ');
          return {
            host: pick(h, ['border-top-width', 'padding-top', 'font-size', 'width', 'height', 'position']),
            input: pick(r.querySelector('.composer textarea'), ['font-size', 'font-family', 'border-top-width', 'background-color', 'line-height']),
            launcher: pick(r.querySelector('.launcher'), ['width', 'height', 'background-color', 'border-top-width', 'box-shadow', 'text-transform']),
            panel: pick(r.querySelector('.panel'), ['width', 'border-top-width', 'padding-top']),
            bubble: pick(r.querySelector('.greeting .bubble'), ['font-size', 'font-family', 'border-top-width', 'letter-spacing', 'line-height']),
            icon: pick(r.querySelector('.launcher svg'), ['width', 'height']),
            messages: pick(r.querySelector('.messages'), ['list-style-type', 'margin-left']),
          };
        }, W);
      };
      const bare = await look(page);
      assert.match(bare.input, /^font-size=16px;/);
      assert.match(bare.host, /border-top-width=0px; padding-top=0px/);
      const demo = await demoPage(browser, server);
      await openWidget(demo);
      assert.deepEqual(await look(demo), bare);
      // And the demo's rules do reach its own page.
      assert.equal(await demo.evaluate(() => getComputedStyle(document.querySelector('main p')).fontSize), '20px');
      await noErrors(page);
      await noErrors(demo);
      await page.context().close();
      await demo.context().close();
    });

    test('signed identity (ID8): a correct signature chats and the contact gets a verified external id; a forged one shows an error and opens nothing', { timeout: TIMEOUT }, async () => {
      const { identity_secret: secret } = await http(server, admin.token, 'GET', `/api/channels/${channels.members}/secret`);
      const userId = `member-${backend}-42`;
      const signature = crypto.createHmac('sha256', secret).update(userId).digest('hex');
      const page = await embedPage(browser, server, {
        attrs: { channel: 'members', 'user-id': userId, 'user-signature': signature, 'user-name': 'Marta Member', 'user-email': 'marta@example.com' },
      });
      await openWidget(page);
      await send(page, 'Hello, I am logged in');
      await sent(page, 'Hello, I am logged in');
      const id = await storedConversation(page, server, 'members');
      const conv = await http(server, admin.token, 'GET', `/api/conversations/${id}`);
      assert.ok(conv.conversation.contact, 'the conversation has a contact');
      const card = await http(server, admin.token, 'GET', `/api/contacts/${conv.conversation.contact.id}`);
      const ext = card.identifiers.find((i) => i.kind === 'external_id');
      assert.deepEqual({ value: ext.value, verified: ext.verified }, { value: `${channels.members}:${userId}`, verified: true });
      assert.equal(card.name, 'Marta Member');
      assert.equal(await w(page, '.card.name').count(), 0, 'the site gave the name: no name form');
      await noErrors(page);

      // On a shared computer the next signed-in user of the site does not get Marta's chat:
      // the stored token belonged to another user, so the widget starts afresh.
      const tokenKey = `charla:${server.url}:members:token`;
      const martaToken = await page.evaluate((key) => localStorage.getItem(key), tokenKey);
      const nextUser = `member-${backend}-44`;
      const nextSignature = crypto.createHmac('sha256', secret).update(nextUser).digest('hex');
      await page.goto(embedUrl(server, { attrs: { channel: 'members', 'user-id': nextUser, 'user-signature': nextSignature, 'user-name': 'Nico Next' } }));
      await w(page, '.panel').waitFor(); // it was open: it opens again
      await until('the greeting', async () => (await w(page, '.greeting .bubble').count()) === 1);
      await send(page, 'Hello, I am the next user');
      await sent(page, 'Hello, I am the next user');
      assert.equal(await w(page, '.item.visitor').filter({ hasText: 'I am logged in' }).count(), 0, "Marta's chat is not shown");
      const nextToken = await page.evaluate((key) => localStorage.getItem(key), tokenKey);
      assert.ok(nextToken && nextToken !== martaToken, 'a new visitor token');
      const nextId = await storedConversation(page, server, 'members');
      assert.notEqual(nextId, id);
      await noErrors(page);
      await page.context().close();

      const forged = await embedPage(browser, server, {
        attrs: { channel: 'members', 'user-id': 'member-43', 'user-signature': 'f'.repeat(64), 'user-name': 'Impostor' },
      });
      await forged.locator(`${W} .launcher`).click();
      await w(forged, '.notice.error').waitFor();
      assert.equal(
        await widgetText(forged, '.notice.error'),
        'We could not verify your account, so the chat cannot start. Please reload the page or sign in again.',
      );
      assert.equal(await w(forged, '.composer').isVisible(), false);
      const token = await forged.evaluate((key) => localStorage.getItem(key), `charla:${server.url}:members:token`);
      assert.equal(token, null, 'no visitor was made');
      const all = await http(server, admin.token, 'GET', '/api/conversations?channel=members&status=all');
      assert.deepEqual(all.map((c) => c.id).sort((a, b) => a - b), [id, nextId].sort((a, b) => a - b), 'the forged identity opened nothing');
      await noErrors(forged);
      await forged.context().close();
    });

    test('the conversation number shows in the header; a reload resumes with the same number and each message once (CF11, RT5)', { timeout: TIMEOUT }, async () => {
      const page = await demoPage(browser, server);
      await openWidget(page);
      assert.equal(await widgetText(page, '.subtitle-text'), 'We are online');
      await send(page, 'Where is my order?');
      await sent(page, 'Where is my order?');
      const id = await storedConversation(page, server);
      await until('the number', async () => (await widgetText(page, '.subtitle-text')) === `Conversation #${id}`);
      await http(server, admin.token, 'POST', `/api/conversations/${id}/messages`, { client_id: `resume-${++counter}`, body: 'It left today.' });
      await w(page, '.item.operator').filter({ hasText: 'It left today.' }).waitFor();

      const texts = () => w(page, '.item:not(.greeting) .bubble').allTextContents();
      const beforeReload = await texts();
      await page.reload();
      await w(page, '.panel').waitFor(); // it was open: it opens again
      assert.equal(await widgetText(page, '.subtitle-text'), `Conversation #${id}`);
      // A reply while the page was away arrives once, after what the cache held.
      await http(server, admin.token, 'POST', `/api/conversations/${id}/messages`, { client_id: `resume-${++counter}`, body: 'Tracking: ABC123' });
      await w(page, '.item.operator').filter({ hasText: 'Tracking: ABC123' }).waitFor();
      await sleep(500);
      assert.deepEqual(await texts(), [...beforeReload, 'Tracking: ABC123']);
      assert.equal(await w(page, '.item').filter({ hasText: 'Where is my order?' }).count(), 1);

      // A reload with the history cache lost: the server replays everything, once.
      await page.evaluate((prefix) => {
        localStorage.removeItem(`${prefix}history`);
        localStorage.removeItem(`${prefix}seq`);
      }, `charla:${server.url}:web:`);
      await page.reload();
      await w(page, '.item.operator').filter({ hasText: 'Tracking: ABC123' }).waitFor();
      await sleep(500);
      assert.deepEqual(await texts(), [...beforeReload, 'Tracking: ABC123']);
      assert.equal(await widgetText(page, '.subtitle-text'), `Conversation #${id}`);
      await noErrors(page);
      await page.context().close();
    });

    test('typing and seen both ways, closing and reopening by writing (XB5)', { timeout: TIMEOUT }, async () => {
      const page = await demoPage(browser, server);
      await openWidget(page);
      await send(page, 'Do you ship to Portugal?');
      await sent(page, 'Do you ship to Portugal?');
      const id = await storedConversation(page, server);
      await http(server, admin.token, 'POST', `/api/conversations/${id}/take`, { client_id: `take-${++counter}` });

      // The operator types: the visitor sees who.
      await desk.send('admin', { type: 'typing', conversation_id: id, on: true });
      await w(page, '.typing').filter({ hasText: 'Ana Admin is typing…' }).waitFor();
      // The visitor types: the operator's console hears it.
      await w(page, '.composer textarea').pressSequentially('Also to', { delay: 20 });
      await until('the visitor typing frame', async () =>
        (await desk.frames('admin')).some((f) => f.type === 'typing' && f.conversation_id === id && f.from === 'visitor' && f.on),
      );
      await w(page, '.composer textarea').fill('');

      // The operator reads: "Seen" under the visitor's last message.
      const mine = await sent(page, 'Do you ship to Portugal?');
      const seq = Number(await mine.first().getAttribute('data-seq'));
      await desk.send('admin', { type: 'read', conversation_id: id, seq });
      await mine.first().locator('.seen').waitFor();
      assert.equal(await mine.first().locator('.seen').textContent(), 'Seen');

      // The operator answers; the open widget tells the server the visitor has read it.
      const ack = await http(server, admin.token, 'POST', `/api/conversations/${id}/messages`, { client_id: `ship-${++counter}`, body: 'Yes, in 3 days.' });
      await w(page, '.item.operator').filter({ hasText: 'Yes, in 3 days.' }).waitFor();
      assert.equal(await w(page, '.typing').isVisible(), false, 'a message ends the typing line');
      await until('the visitor read mark', async () =>
        (await http(server, admin.token, 'GET', `/api/conversations/${id}`)).conversation.visitor_read_seq >= ack.seq,
      );
      await screenshot(page, 'widget-desktop.png');

      // Closed by the operator; the visitor's next message opens it again.
      await http(server, admin.token, 'POST', `/api/conversations/${id}/close`, { client_id: `close-${++counter}` });
      await w(page, '.item.event[data-event="closed"]').filter({ hasText: 'Conversation closed' }).waitFor();
      assert.match(await widgetText(page, '.state-notice'), /This conversation is closed/);
      await send(page, 'One more question');
      await sent(page, 'One more question');
      await w(page, '.item.event[data-event="reopened"]').filter({ hasText: 'Conversation reopened' }).waitFor();
      assert.equal((await http(server, admin.token, 'GET', `/api/conversations/${id}`)).conversation.status, 'open');
      await noErrors(page);
      await page.context().close();
    });

    test('replying to a message: a keyboard-reachable Reply action, the quote in the composer, reply_to on the wire, quotes shown as text both ways (OC10)', { timeout: TIMEOUT }, async () => {
      const page = await embedPage(browser, server);
      await openWidget(page);
      await send(page, 'Which sizes do you have?');
      await sent(page, 'Which sizes do you have?');
      const id = await storedConversation(page, server);
      const answer = await http(server, admin.token, 'POST', `/api/conversations/${id}/messages`, { client_id: `sizes-${++counter}`, body: 'S, M and <b>L</b>.' });
      const theirs = w(page, '.item.operator').filter({ hasText: 'S, M and' });
      await theirs.waitFor();

      // The action under the operator's message, by keyboard; Escape drops the quote only.
      const action = theirs.locator('.reply-action');
      assert.equal(await action.getAttribute('aria-label'), 'Reply to Ana Admin');
      await action.focus();
      await page.keyboard.press('Enter');
      await w(page, '.reply-bar').waitFor();
      assert.equal(await widgetText(page, '.reply-bar .reply-author'), 'Replying to Ana Admin');
      assert.equal(await widgetText(page, '.reply-bar .reply-text'), 'S, M and <b>L</b>.');
      assert.equal(await page.evaluate((host) => document.querySelector(host).shadowRoot.activeElement?.tagName, W), 'TEXTAREA');
      await page.keyboard.press('Escape');
      await w(page, '.reply-bar').waitFor({ state: 'hidden' });
      assert.ok(await w(page, '.panel').isVisible(), 'the first Escape only cancels the reply');
      await action.click();
      await w(page, '.reply-bar .reply-cancel').click();
      await w(page, '.reply-bar').waitFor({ state: 'hidden' });

      // Replying for real: the frame carries reply_to, the bubble shows the quote.
      await action.click();
      await send(page, 'M, please');
      await w(page, '.reply-bar').waitFor({ state: 'hidden' });
      const mine = await sent(page, 'M, please');
      assert.equal(await mine.locator('.quote .quote-author').textContent(), 'Ana Admin');
      assert.equal(await mine.locator('.quote .quote-text').textContent(), 'S, M and <b>L</b>.');
      let msgs = await history(server, admin.token, id);
      const reply = msgs.find((m) => m.body === 'M, please');
      assert.deepEqual(reply.meta, { reply_to: answer.seq });
      await send(page, 'And a plain one');
      await sent(page, 'And a plain one');
      msgs = await history(server, admin.token, id);
      assert.equal(msgs.find((m) => m.body === 'And a plain one').meta, undefined, 'the quote went with one message only');

      // The operator quotes the visitor: shown above the reply, as text.
      const question = msgs.find((m) => m.body === 'Which sizes do you have?');
      await http(server, admin.token, 'POST', `/api/conversations/${id}/messages`, { client_id: `quote-${++counter}`, body: 'About that: all in stock.', reply_to: question.seq });
      const quoted = w(page, '.item.operator').filter({ hasText: 'all in stock' });
      await quoted.waitFor();
      assert.equal(await quoted.locator('.quote .quote-author').textContent(), 'You');
      assert.equal(await quoted.locator('.quote .quote-text').textContent(), 'Which sizes do you have?');
      assert.equal(await countInWidget(page, '.quote b, .reply-bar b'), 0);

      // A quoted message the widget no longer holds: "a previous message".
      await page.evaluate(
        ({ key, seq }) => localStorage.setItem(key, JSON.stringify(JSON.parse(localStorage.getItem(key)).filter((m) => m.seq !== seq))),
        { key: `charla:${server.url}:web:history`, seq: answer.seq },
      );
      await page.reload();
      const again = w(page, '.item.visitor').filter({ hasText: 'M, please' });
      await again.waitFor();
      assert.equal(await again.locator('.quote .quote-text').textContent(), 'a previous message');
      assert.equal(await again.locator('.quote .quote-author').count(), 0);
      await noErrors(page);
      await page.context().close();
    });

    test('on a phone (390×844) the panel takes the whole screen and works, in Spanish', { timeout: TIMEOUT }, async () => {
      const page = await embedPage(browser, server, {
        attrs: { lang: 'es' },
        viewport: { width: 390, height: 844 },
        isMobile: true,
        hasTouch: true,
      });
      await w(page, '.launcher').tap();
      await w(page, '.panel').waitFor();
      const box = await w(page, '.panel').boundingBox();
      assert.deepEqual(box, { x: 0, y: 0, width: 390, height: 844 });
      assert.equal(await w(page, '.launcher').isVisible(), false, 'the panel covers the launcher');
      assert.equal(await w(page, '.composer textarea').getAttribute('placeholder'), 'Escriba un mensaje…');
      const input = await w(page, '.composer textarea').boundingBox();
      assert.ok(input.y + input.height <= 844 && input.x >= 0 && input.x + input.width <= 390, JSON.stringify(input));
      assert.equal(await w(page, '.composer textarea').evaluate((el) => getComputedStyle(el).fontSize), '16px');

      await w(page, '.composer textarea').tap();
      await w(page, '.composer textarea').fill('Hola desde el móvil');
      await w(page, '.composer .send').tap();
      await sent(page, 'Hola desde el móvil');
      const id = await storedConversation(page, server);
      await until('the number', async () => (await widgetText(page, '.subtitle-text')) === `Conversación #${id}`);
      await http(server, admin.token, 'POST', `/api/conversations/${id}/messages`, { client_id: `phone-${++counter}`, body: '¡Hola! ¿En qué le ayudo?' });
      await w(page, '.item.operator').filter({ hasText: '¿En qué le ayudo?' }).waitFor();
      await w(page, '.item.event[data-event="assigned"]').filter({ hasText: 'Ana Admin se ha unido a la conversación' }).waitFor();
      await screenshot(page, 'widget-phone.png');

      await w(page, '.header .icon-button').tap();
      await w(page, '.panel').waitFor({ state: 'hidden' });
      assert.ok(await w(page, '.launcher').isVisible());
      await noErrors(page);
      await page.context().close();
    });
  });
}

if (postgresProblem) {
  test('widget on postgres', () => {
    throw postgresProblem;
  });
} else if (!tested.includes('postgres')) {
  test('widget on postgres', { skip: postgresStatus().reason }, () => {});
}
