// Browser tests of the widget's e-mail features (docs/WIDGET.md, docs/PROTOCOL.md section
// 10): the transcript offer after closing (CF5), the operator's e-mail card (EC3), and
// "continue the conversation" links from e-mails (CF8, CF9, XB10), both to the server's
// /continue page and to a customer's site (`site_url`, `#charla-continue=`).
//
// The server sends its e-mails to a small SMTP sink this file runs on a loopback port, so
// the tests read the real e-mails, and follow the real links in them. `CHARLA_SECRET_KEY`
// is set too, so a test can sign an expired code for the (conversation, visitor) a real
// link names.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { addOperator, apiLogin, backends, launchBrowser, newPage, postgresStatus, startServer } from './harness.mjs';
import {
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
  widgetText,
} from './fixtures/widget-kit.mjs';

const TIMEOUT = 60_000;
const PASSWORD = 'a long widget password';
const SECRET = crypto.randomBytes(24).toString('hex');

let counter = 0;

// ---------------------------------------------------------------------------------------
// An SMTP sink: accepts every message and keeps it (no TLS, no auth)

function startSmtp() {
  const mails = [];
  const server = net.createServer((sock) => {
    sock.setEncoding('utf8');
    let buf = '';
    let mail = null;
    let inData = false;
    const reply = (text) => sock.write(`${text}\r\n`);
    sock.on('error', () => {});
    reply('220 sink.test ESMTP');
    sock.on('data', (chunk) => {
      buf += chunk;
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) break;
          mail.raw = buf.slice(0, end).replace(/^\.\./gm, '.');
          buf = buf.slice(end + 5);
          inData = false;
          mails.push({ ...mail, ...parseMail(mail.raw) });
          reply('250 2.0.0 kept');
          continue;
        }
        const i = buf.indexOf('\r\n');
        if (i < 0) break;
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const verb = line.split(' ')[0].toUpperCase();
        if (verb === 'EHLO') reply('250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8');
        else if (verb === 'HELO' || verb === 'RSET' || verb === 'NOOP') reply('250 ok');
        else if (verb === 'MAIL') {
          mail = { from: line.slice(10), to: [] };
          reply('250 ok');
        } else if (verb === 'RCPT') {
          mail.to.push(line.replace(/^RCPT TO:\s*<?([^>]*)>?.*$/i, '$1').toLowerCase());
          reply('250 ok');
        } else if (verb === 'DATA') {
          inData = true;
          reply('354 go on');
        } else if (verb === 'QUIT') {
          reply('221 bye');
          sock.end();
        } else reply('502 not here');
      }
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: server.address().port,
        mails,
        /** The first e-mail to `to` that `pred` accepts, waiting up to `ms`. */
        waitFor: (to, pred = () => true, ms = 15_000) =>
          until(`an e-mail to ${to}`, () => mails.find((m) => m.to.includes(to.toLowerCase()) && pred(m)), ms),
        stop: () => new Promise((r) => server.close(() => r())),
      }),
    ),
  );
}

/** Headers (unfolded, lower-case names, encoded words decoded) and the text and HTML parts. */
function parseMail(raw) {
  const split = (s) => {
    const i = s.indexOf('\r\n\r\n');
    const head = i < 0 ? s : s.slice(0, i);
    const body = i < 0 ? '' : s.slice(i + 4);
    const headers = {};
    for (const line of head.replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
      const c = line.indexOf(':');
      if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = decodeWords(line.slice(c + 1).trim());
    }
    return { headers, body };
  };
  const decode = (body, enc = '') => {
    enc = enc.toLowerCase();
    if (enc === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
    if (enc === 'quoted-printable') {
      // Literal % first, then =XX as %XX: one percent-decoding gives the UTF-8 text.
      const escaped = body.replace(/=\r\n/g, '').replace(/%/g, '%25').replace(/=([0-9A-F]{2})/gi, '%$1');
      return decodeURIComponent(escaped);
    }
    return body;
  };
  const top = split(raw);
  const out = { headers: top.headers, text: '', html: '' };
  const boundary = /boundary="?([^";]+)"?/i.exec(top.headers['content-type'] || '');
  const parts = boundary ? top.body.split(`--${boundary[1]}`).slice(1, -1) : [raw];
  for (const p of parts) {
    const part = split(p.replace(/^\r\n/, ''));
    const type = (part.headers['content-type'] || top.headers['content-type'] || 'text/plain').toLowerCase();
    const text = decode(part.body, part.headers['content-transfer-encoding'] || top.headers['content-transfer-encoding']);
    if (type.startsWith('text/html')) out.html += text;
    else if (type.startsWith('text/plain')) out.text += text;
  }
  return out;
}

/** RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`). */
function decodeWords(s) {
  return s.replace(/=\?[^?]+\?([bq])\?([^?]*)\?=\s*/gi, (_, enc, text) =>
    enc.toLowerCase() === 'b'
      ? Buffer.from(text, 'base64').toString('utf8')
      : decodeURIComponent(text.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, '%$1')),
  );
}

/** A continue code signed with the server's key (docs/PROTOCOL.md section 10). */
function signCode(conversation, visitor, expires) {
  const sig = crypto.createHmac('sha256', SECRET).update(`continue:${conversation}:${visitor}:${expires}`).digest('hex');
  return `${conversation}.${visitor}.${expires}.${sig.slice(0, 32)}`;
}

/** The first http(s) link of a text. */
function linkIn(text, prefix) {
  const m = text.match(/https?:\/\/\S+/g) || [];
  return m.find((u) => u.startsWith(prefix)) || null;
}

// ---------------------------------------------------------------------------------------

let browser;
let site;
let smtp;

before(async () => {
  browser = await launchBrowser();
  site = await startSite();
  smtp = await startSmtp();
});

after(async () => {
  await browser?.close();
  await site?.stop();
  await smtp?.stop();
});

let tested = ['sqlite'];
let postgresProblem = null;
try {
  tested = backends();
} catch (e) {
  postgresProblem = e;
}

for (const backend of tested) {
  describe(`widget e-mail on ${backend}`, { timeout: 10 * TIMEOUT }, () => {
    let server;
    let admin;
    let desk;
    const channels = {};
    const addr = (who) => `${who}-${backend}@example.com`;

    before(async () => {
      server = await startServer({
        backend,
        env: {
          CHARLA_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
          CHARLA_MAIL_FROM: 'Tienda Ejemplo <tienda@example.com>',
          CHARLA_REPLY_DOMAIN: 'reply.example.com',
          CHARLA_SECRET_KEY: SECRET,
          CHARLA_UNREAD_EMAIL_SECS: '1',
        },
      });
      const email = `admin-${backend}@example.com`;
      await addOperator(server, { email, name: 'Ana Admin', password: PASSWORD, admin: true });
      admin = { token: await apiLogin(server, email, PASSWORD) };
      await http(server, admin.token, 'PUT', '/api/settings/routing', { distribution: false, default_assignee_id: null, auto_close_minutes: 0 });
      // PATCH merges settings: only what these tests need changes.
      await http(server, admin.token, 'PATCH', '/api/channels/1', {
        title: 'Website',
        settings: { language: 'en', name_form: false, transcript_delay_secs: 1 },
      });
      channels.web = 1;
      channels.pre = (
        await http(server, admin.token, 'POST', '/api/channels', {
          name: 'pre',
          title: 'Pre-chat',
          kind: 'web',
          settings: { language: 'en', name_form: false, transcript_delay_secs: 1, prechat: { name: 'off', email: 'required', phone: 'off' } },
        })
      ).id;
      // The administrator's console is online: the channels answer (no offline form).
      desk = await openDesk(browser, server);
      await desk.connect('admin', admin.token);
    });

    after(async () => {
      await desk?.page.context().close();
      await server?.stop();
    });

    test('closing shows the transcript card within seconds, pre-filled; the address is checked; the copy is e-mailed and the card stays answered after a reload (CF5)', { timeout: TIMEOUT }, async () => {
      const page = await embedPage(browser, server, { attrs: { channel: 'pre' } });
      await openWidget(page);
      const given = `Tina.${backend}@Example.com`;
      await w(page, '.card.prechat input[name="email"]').fill(given);
      await w(page, '.card.prechat button[type="submit"]').click();
      await w(page, '.composer').waitFor();
      await send(page, 'Can I return the shoes?');
      await sent(page, 'Can I return the shoes?');
      const id = await storedConversation(page, server, 'pre');
      await http(server, admin.token, 'POST', `/api/conversations/${id}/take`, {});
      await http(server, admin.token, 'POST', `/api/conversations/${id}/messages`, { client_id: `tr-${++counter}`, body: 'Yes, within 30 days.' });
      await w(page, '.item.operator').filter({ hasText: 'Yes, within 30 days.' }).waitFor();
      assert.equal(await w(page, '.item.offer').count(), 0, 'no card before closing');

      const closedAt = Date.now();
      await http(server, admin.token, 'POST', `/api/conversations/${id}/close`, {});
      const card = w(page, '.item.offer[data-offer="transcript"] form');
      await card.waitFor({ timeout: 8000 });
      const waited = Date.now() - closedAt;
      assert.ok(waited >= 900 && waited < 5000, `the card came ${waited} ms after closing (transcript_delay_secs: 1)`);
      assert.equal(await widgetText(page, '.item.offer .card-text'), 'Send a copy of this conversation to your e-mail?');
      const field = w(page, '.item.offer input[name="email"]');
      assert.equal(await field.inputValue(), given, 'the address this browser gave is filled in');

      // Checked here first, then by the server.
      await field.fill('');
      await w(page, '.item.offer button[type="submit"]').click();
      assert.equal(await widgetText(page, '.item.offer .form-error'), 'Please fill in: E-mail.');
      await field.fill('tina@nowhere');
      await w(page, '.item.offer button[type="submit"]').click();
      await until('the server refusal', async () => /not valid/.test(await widgetText(page, '.item.offer .form-error')));
      assert.match(await widgetText(page, '.item.offer .form-error'), /^The form was not accepted: the e-mail address is not valid/);

      const copyTo = addr('tina-copy');
      await field.fill(copyTo);
      await w(page, '.item.offer button[type="submit"]').click();
      const done = w(page, '.item.offer[data-offer="transcript"] .offer-card.done');
      await done.waitFor();
      assert.equal((await done.textContent()).trim(), `We will e-mail you a copy at ${copyTo}.`);
      const form = (await history(server, admin.token, id)).find((m) => m.kind === 'event' && m.body === 'form' && m.meta.form === 'transcript');
      assert.ok(form, 'a transcript form event in the history');
      assert.deepEqual(form.meta.fields, { email: copyTo });
      assert.equal((await http(server, admin.token, 'GET', `/api/conversations/${id}`)).conversation.status, 'closed', 'answering does not reopen');

      // The copy goes out, with the whole conversation.
      const mail = await smtp.waitFor(copyTo);
      assert.match(mail.text, /Can I return the shoes\?/);
      assert.match(mail.text, /Yes, within 30 days\./);
      assert.match(mail.headers.subject, new RegExp(`\\[#${id}\\]`));
      const kinds = (await http(server, admin.token, 'GET', `/api/conversations/${id}/emails`)).map((e) => e.kind);
      assert.deepEqual(kinds, ['transcript'], 'a visitor reading in real time gets no unread e-mail (EC4)');

      await page.reload();
      await done.waitFor();
      assert.equal(await w(page, '.item.offer form').count(), 0, 'answered: no form after a reload');
      await noErrors(page);
      await page.context().close();
    });

    test('the e-mail card: No thanks hides it for good, asked again it is answered, the contact gets the address; an unread reply is e-mailed with a link that opens the same conversation in another browser (EC3, CF8, CF9, XB10)', { timeout: TIMEOUT }, async () => {
      const page = await embedPage(browser, server);
      await openWidget(page);
      await send(page, 'Do you have it in blue?');
      await sent(page, 'Do you have it in blue?');
      const id = await storedConversation(page, server);
      await http(server, admin.token, 'POST', `/api/conversations/${id}/take`, {});

      await http(server, admin.token, 'POST', `/api/conversations/${id}/ask-email`, { client_id: `ask-${++counter}` });
      const first = w(page, '.item.offer[data-offer="email"]').first();
      await first.locator('form').waitFor();
      assert.equal((await first.locator('.card-text').textContent()).trim(), 'Leave your e-mail so we can answer you by e-mail.');
      assert.equal(await first.locator('input[name="email"]').inputValue(), '', 'no address known yet');
      await first.locator('button.secondary').click();
      await first.waitFor({ state: 'hidden' });
      await page.reload();
      await w(page, '.item.operator, .item.visitor').first().waitFor();
      await sleep(300);
      assert.equal(await w(page, '.item.offer:visible').count(), 0, 'dismissed stays dismissed after a reload');
      const emailsBefore = await http(server, admin.token, 'GET', `/api/conversations/${id}/emails`);
      assert.deepEqual(emailsBefore, []);

      // Asked again: a new card, answered this time.
      await http(server, admin.token, 'POST', `/api/conversations/${id}/ask-email`, { client_id: `ask-${++counter}` });
      const card = w(page, '.item.offer[data-offer="email"]:visible');
      await card.locator('form').waitFor();
      const given = addr('Blue');
      await card.locator('input[name="email"]').fill(given);
      await card.locator('input[name="email"]').press('Enter');
      await card.locator('.offer-card.done').waitFor();
      assert.equal((await card.locator('.offer-card.done').textContent()).trim(), `Thanks, we will write to you at ${given}.`);
      const conv = await http(server, admin.token, 'GET', `/api/conversations/${id}`);
      const form = conv.messages.find((m) => m.body === 'form' && m.meta.form === 'email');
      assert.deepEqual(form.meta.fields, { email: given.toLowerCase() });
      const contact = await http(server, admin.token, 'GET', `/api/contacts/${conv.conversation.contact.id}`);
      assert.equal(contact.email, given.toLowerCase());

      // The visitor leaves; the answer goes by e-mail with a continue link (CF8, XB10).
      await page.context().close();
      await http(server, admin.token, 'POST', `/api/conversations/${id}/messages`, { client_id: `blue-${++counter}`, body: 'Blue is back in stock.' });
      const mail = await smtp.waitFor(given, (m) => /Blue is back in stock/.test(m.text));
      assert.match(mail.text, /Do you have it in blue\?/, 'the question is quoted');
      assert.match(mail.headers['reply-to'], new RegExp(`reply\\+c${id}-[0-9a-f]+@reply\\.example\\.com`));
      const link = linkIn(mail.text, `${server.url}/continue?code=`);
      assert.ok(link, `a continue link in:\n${mail.text}`);

      // Opened in another browser: the same conversation, its history, and the chat goes on.
      const other = await newPage(browser);
      other.dialogs = [];
      const res = await other.goto(link);
      assert.equal(res.status(), 200);
      await w(other, '.panel').waitFor();
      await w(other, '.item.operator').filter({ hasText: 'Blue is back in stock.' }).waitFor();
      assert.equal(await w(other, '.item.visitor').filter({ hasText: 'Do you have it in blue?' }).count(), 1);
      assert.equal(await widgetText(other, '.subtitle-text'), `Conversation #${id}`);
      // This browser never saw the cards: the history says the last one was answered (and
      // the one before it was replaced by it).
      await w(other, '.item.offer[data-offer="email"] .offer-card.done').waitFor();
      assert.equal(await widgetText(other, '.item.offer .offer-card.done'), `Thanks, we will write to you at ${given.toLowerCase()}.`);
      assert.equal(await w(other, '.item.offer form').count(), 0);
      await send(other, 'Great, I will order it');
      await sent(other, 'Great, I will order it');
      const mine = (await history(server, admin.token, id)).find((m) => m.body === 'Great, I will order it');
      assert.equal(mine?.author.kind, 'visitor');
      const key = `charla:${server.url}:web:token`;
      const token = await other.evaluate((k) => localStorage.getItem(k), key);
      assert.ok(token, 'the new visitor token is kept');

      // A reload of the link's page resumes without asking for another token.
      await other.reload();
      await w(other, '.item.visitor').filter({ hasText: 'Great, I will order it' }).waitFor();
      await sleep(300);
      assert.equal(await w(other, '.item.visitor').filter({ hasText: 'Great, I will order it' }).count(), 1);
      assert.equal(await other.evaluate((k) => localStorage.getItem(k), key), token);
      await noErrors(other);
      await other.context().close();
    });

    test('a link to the customer’s site (#charla-continue=) opens the widget there and leaves the address clean; expired and tampered links are refused, and the widget carries on (CF8, XB10)', { timeout: TIMEOUT }, async () => {
      const siteUrl = embedUrl(server, { attrs: { channel: 'site' } });
      await http(server, admin.token, 'POST', '/api/channels', {
        name: 'site',
        title: 'Shop site',
        kind: 'web',
        settings: { language: 'en', name_form: false, site_url: siteUrl, prechat: { name: 'off', email: 'required', phone: 'off' } },
      });
      const page = await newPage(browser);
      page.dialogs = [];
      await page.goto(siteUrl);
      await openWidget(page);
      const given = addr('sofia');
      await w(page, '.card.prechat input[name="email"]').fill(given);
      await w(page, '.card.prechat button[type="submit"]').click();
      await w(page, '.composer').waitFor();
      await send(page, 'Is the store open on Sunday?');
      await sent(page, 'Is the store open on Sunday?');
      const id = await storedConversation(page, server, 'site');
      await noErrors(page);
      await page.context().close();

      await http(server, admin.token, 'POST', `/api/conversations/${id}/messages`, { client_id: `sun-${++counter}`, body: 'Yes, 10 to 14.' });
      const mail = await smtp.waitFor(given, (m) => /Yes, 10 to 14/.test(m.text));
      const link = linkIn(mail.text, `${siteUrl}#charla-continue=`);
      assert.ok(link, `a link to the site in:\n${mail.text}`);

      const other = await newPage(browser);
      other.dialogs = [];
      await other.goto(link);
      await w(other, '.item.operator').filter({ hasText: 'Yes, 10 to 14.' }).waitFor();
      assert.ok(await w(other, '.panel').isVisible(), 'the panel opens');
      assert.equal(other.url(), siteUrl, 'the code is taken out of the address bar');
      assert.equal(await widgetText(other, '.subtitle-text'), `Conversation #${id}`);
      await send(other, 'Thanks, see you Sunday');
      await sent(other, 'Thanks, see you Sunday');
      assert.ok((await history(server, admin.token, id)).some((m) => m.body === 'Thanks, see you Sunday' && m.author.kind === 'visitor'));

      // The same code signed with an expiry in the past: refused by the server, said in the
      // panel, and the widget goes on with the token it holds (the link came while the
      // page was open: only the fragment changed).
      const [, visitor] = link.split('#charla-continue=')[1].split('.');
      const expired = signCode(id, visitor, Date.now() - 60_000);
      await other.evaluate((code) => {
        location.hash = `charla-continue=${code}`;
      }, expired);
      await w(other, '.alert').waitFor();
      assert.match(await widgetText(other, '.alert .alert-text'), /^This conversation link cannot be used: this link has expired/);
      await until('the fragment to go', async () => other.url() === siteUrl);
      await w(other, '.item.visitor').filter({ hasText: 'Thanks, see you Sunday' }).waitFor();
      await send(other, 'Still here');
      await sent(other, 'Still here');
      assert.equal(await widgetText(other, '.subtitle-text'), `Conversation #${id}`);
      assert.ok((await history(server, admin.token, id)).some((m) => m.body === 'Still here'));
      await noErrors(other);
      await other.context().close();

      // The server's own page: a tampered link is 400, an expired one 410, never a trace.
      for (const [code, status, words] of [
        ['1.2.3.abc', 400, /not valid/],
        [link.split('#charla-continue=')[1].replace(/.$/, (c) => (c === '0' ? '1' : '0')), 400, /not valid/],
        [expired, 410, /expired/],
      ]) {
        const res = await fetch(`${server.url}/continue?code=${encodeURIComponent(code)}`);
        const body = await res.text();
        assert.equal(res.status, status, code);
        assert.match(res.headers.get('content-type'), /^text\/html/);
        assert.match(body, words);
        assert.doesNotMatch(body, /panicked|backtrace|src\/|\.rs:|data-continue/);
      }
      // A fresh browser with a broken code in the fragment: the message, then a normal start.
      const fresh = await newPage(browser);
      fresh.dialogs = [];
      await fresh.goto(`${siteUrl}#charla-continue=1.2.3.abc`);
      await w(fresh, '.alert').waitFor();
      assert.equal(await widgetText(fresh, '.alert .alert-text'), 'This conversation link cannot be used: this link is not valid');
      assert.equal(fresh.url(), siteUrl);
      await w(fresh, '.card.prechat').waitFor();
      assert.equal(await w(fresh, '.item.visitor').count(), 0, 'nobody else’s conversation');
      await noErrors(fresh);
      await fresh.context().close();
    });
  });
}

if (postgresProblem) {
  test('widget e-mail on postgres', () => {
    throw postgresProblem;
  });
} else if (!tested.includes('postgres')) {
  test('widget e-mail on postgres', { skip: postgresStatus().reason }, () => {});
}
