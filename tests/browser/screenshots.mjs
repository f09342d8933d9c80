// Screenshots of the operator console for docs/CONSOLE.md. Run by hand, not by the test
// runner (the name does not end in .test.mjs):
//
//   cargo build --bin charla && node tests/browser/screenshots.mjs
//   node tests/browser/screenshots.mjs card        # only console-card.png (also: desktop,
//                                                  # phone, popup, admin)
//
// Starts the real server over a fresh SQLite database, fills it with demo data through the
// API and visitor websockets (customers writing in Spanish and English, a customer saved to
// the CRM, a note with a mention, a reassignment, a queued visitor, internal chats, a draft),
// and writes docs/screenshots/console-{desktop,phone,popup,admin,card}.png. The customer
// card's data (names, address, VIP, a signed identity, a merge, a pending suggestion) is
// added after the first four pictures, so they do not change with it.

import fs from 'node:fs';
import path from 'node:path';
import { REPO, addOperator, apiLogin, launchBrowser, newPage, startServer } from './harness.mjs';

const OUT = path.join(REPO, 'docs', 'screenshots');
const PASSWORD = 'demo password 2026';
const TOKEN_KEY = 'charla.console.token';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The pictures asked for on the command line (by name, without `console-`), else all. */
const ONLY = process.argv.slice(2);
const wanted = (name) => !ONLY.length || ONLY.includes(name);

/** One API call; a 503 with a retry hint is retried (docs/PROTOCOL.md, section 7). */
async function http(server, token, method, p, body) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${server.url}${p}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status === 503 && attempt < 5) {
      await sleep(JSON.parse(text).error?.retry_after_ms || 200);
      continue;
    }
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }
}

/** Visitors: websockets opened from a page of the server's origin. */
async function visitorHost(browser, server) {
  const page = await newPage(browser);
  await page.goto(`${server.url}/`);
  await page.evaluate(() => {
    window.visitors = {};
    window.visitorOpen = (key, channel, identity) =>
      new Promise((resolve) => {
        const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/ws/visitor`);
        const v = { ws, frames: [] };
        window.visitors[key] = v;
        ws.onmessage = (e) => {
          const f = JSON.parse(e.data);
          v.frames.push(f);
          if (f.type === 'welcome') resolve();
        };
        ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', channel, identity: identity || undefined }));
      });
    window.visitorSay = (key, body, replyTo) =>
      new Promise((resolve) => {
        const v = window.visitors[key];
        const cid = `c-${Math.random().toString(36).slice(2)}`;
        const onAck = (e) => {
          const f = JSON.parse(e.data);
          if (f.type === 'ack' && f.client_id === cid) {
            v.ws.removeEventListener('message', onAck);
            resolve(f);
          }
        };
        v.ws.addEventListener('message', onAck);
        v.ws.send(JSON.stringify({ type: 'message', client_id: cid, body, reply_to: replyTo ?? null }));
      });
    window.visitorSend = (key, frame) => window.visitors[key].ws.send(JSON.stringify(frame));
  });
  let n = 0;
  return {
    page,
    async visitor(channel = 'web', identity = null) {
      const key = `v${++n}`;
      await page.evaluate(([k, c, i]) => window.visitorOpen(k, c, i), [key, channel, identity]);
      return {
        say: (body, replyTo) => page.evaluate(([k, b, r]) => window.visitorSay(k, b, r), [key, body, replyTo]),
        send: (frame) => page.evaluate(([k, f]) => window.visitorSend(k, f), [key, frame]),
      };
    },
  };
}

/** An operator's console, logged in, on `hash`. */
async function consoleOf(browser, server, token, { viewport = { width: 1440, height: 900 }, hash = '', ...options } = {}) {
  const page = await newPage(browser, { viewport, deviceScaleFactor: 1, ...options });
  await page.goto(`${server.url}/console/`);
  await page.evaluate(([k, t, h]) => {
    localStorage.setItem(k, t);
    if (h) history.replaceState(null, '', h);
  }, [TOKEN_KEY, token, hash]);
  await page.reload();
  await page.waitForSelector('#conn[data-state=connected]');
  return page;
}

/** Operators' replies and notes, through the HTTP form of the `message` frame. */
async function operatorWrite(server, token, frames) {
  for (const f of frames) await http(server, token, 'POST', `/api/conversations/${f.conversation_id}/messages`, f.body);
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const server = await startServer({ backend: 'sqlite' });
  const browser = await launchBrowser();
  const shots = [];
  try {
    // People, channels, routing.
    await addOperator(server, { email: 'ana@tienda.example', name: 'Ana García', password: PASSWORD, admin: true });
    const ana = await apiLogin(server, 'ana@tienda.example', PASSWORD);
    const people = {};
    for (const [key, name, email] of [
      ['luis', 'Luis Martín', 'luis@tienda.example'],
      ['sofia', 'Sofía Ruiz', 'sofia@tienda.example'],
      ['james', 'James Carter', 'james@tienda.example'],
    ]) {
      const op = await http(server, ana, 'POST', '/api/operators', { email, name, password: PASSWORD });
      people[key] = { ...op, token: await apiLogin(server, email, PASSWORD) };
    }
    const me = await http(server, ana, 'GET', '/api/me');
    const team = await http(server, ana, 'POST', '/api/teams', { name: 'Soporte' });
    for (const id of [me.id, people.luis.id, people.sofia.id]) await http(server, ana, 'PATCH', `/api/operators/${id}`, { teams: [team.id] });
    await http(server, ana, 'POST', '/api/groups', { name: 'Ventas', can_chat: true });
    await http(server, ana, 'POST', '/api/channels', { name: 'whatsapp', title: 'WhatsApp tienda', kind: 'whatsapp', team_id: null });
    await http(server, ana, 'POST', '/api/channels', { name: 'email', title: 'Correo de soporte', kind: 'email', team_id: null });
    await http(server, ana, 'POST', '/api/channels', { name: 'telegram', title: 'Telegram', kind: 'telegram', team_id: team.id });
    await http(server, ana, 'PUT', '/api/settings/routing', { distribution: false, default_assignee_id: null, auto_close_minutes: 120 });

    const host = await visitorHost(browser, server);

    // Colleagues online (the work area shows their load).
    const luisPage = await consoleOf(browser, server, people.luis.token);
    const jamesPage = await consoleOf(browser, server, people.james.token);

    // 1. Tom (English, web): answered by Luis.
    const tom = await host.visitor('web');
    const t1 = await tom.say('Hello, is the blue rain jacket available in size M?');
    await operatorWrite(server, people.luis.token, [
      { conversation_id: t1.conversation_id, body: { client_id: 'l-1', body: 'Hi Tom! Yes, we have two left in M. Shall I reserve one for you?' } },
    ]);
    await tom.say('Yes please, I will pick it up tomorrow.');
    await operatorWrite(server, people.luis.token, [
      { conversation_id: t1.conversation_id, body: { client_id: 'l-2', body: 'Done, it is reserved under your name until Saturday.' } },
    ]);

    // 2. Peter (English, WhatsApp): Luis takes it, hands it to James.
    const peter = await host.visitor('whatsapp');
    const p1 = await peter.say('Hi! Do you ship to the Canary Islands? How long does it usually take?');
    await http(server, people.luis.token, 'POST', `/api/conversations/${p1.conversation_id}/take`, {});
    await http(server, people.luis.token, 'POST', `/api/conversations/${p1.conversation_id}/assign`, { operator_id: people.james.id, reason: 'English-speaking customer' });
    await operatorWrite(server, people.james.token, [
      { conversation_id: p1.conversation_id, body: { client_id: 'j-1', body: 'Hi Peter, yes we do: 3 to 5 working days, customs included.' } },
    ]);
    await peter.say('Perfect, thanks! Ordering now.');

    // 3. Lucía (Spanish, e-mail): unassigned, waiting for someone to take it.
    const lucia = await host.visitor('email');
    await lucia.send({ type: 'form', client_id: 'f-1', form: 'prechat', fields: { name: 'Lucía Fernández', email: 'lucia@empresa.example' } });
    await sleep(200);
    await lucia.say('Buenas tardes, necesito la factura de mi última compra a nombre de mi empresa (CIF B12345678).');

    // 4. Carmen (Spanish, web): two unread messages, and Ana's draft.
    const carmen = await host.visitor('web');
    const c1 = await carmen.say('¡Hola! ¿Tenéis tienda física en Valencia?');
    await carmen.say('Me gustaría probarme las zapatillas antes de comprarlas.');

    // 5. María (Spanish, web): the conversation on screen.
    const maria = await host.visitor('web');
    const m1 = await maria.say('Hola, hice un pedido el lunes (n.º 10234) y todavía no ha llegado. ¿Me podéis decir dónde está?');
    await http(server, ana, 'POST', `/api/conversations/${m1.conversation_id}/take`, {});
    await http(server, ana, 'POST', `/api/conversations/${m1.conversation_id}/contact`, { name: 'María López' });
    await operatorWrite(server, ana, [
      { conversation_id: m1.conversation_id, body: { client_id: 'a-1', body: '¡Hola María! Déjame revisarlo un momento.' } },
      { conversation_id: m1.conversation_id, body: { client_id: 'a-2', kind: 'note', body: '@Luis Martín ¿puedes confirmar con el almacén si el 10234 salió el martes?', mentions: [people.luis.id] } },
    ]);
    await operatorWrite(server, people.luis.token, [
      { conversation_id: m1.conversation_id, body: { client_id: 'l-3', kind: 'note', body: 'Sí, salió el martes con SEUR. Seguimiento: 5400 1234 5678.' } },
    ]);
    const a3 = await http(server, ana, 'POST', `/api/conversations/${m1.conversation_id}/messages`, {
      client_id: 'a-3', body: 'Tu pedido salió el martes con SEUR. El número de seguimiento es 5400 1234 5678; debería llegarte mañana.', reply_to: m1.seq,
    });
    await maria.send({ type: 'read', seq: a3.seq });
    await maria.say('¡Genial, muchas gracias! ¿Podría cambiar la dirección de entrega al trabajo?');

    // Internal chats.
    const direct = await http(server, people.luis.token, 'POST', '/api/internal', { operator_id: me.id });
    await operatorWrite(server, people.luis.token, [
      { conversation_id: direct.conversation_id, body: { client_id: 'l-4', body: 'Ana, ¿te encargas tú de los pedidos de Canarias esta semana?' } },
    ]);
    await operatorWrite(server, ana, [
      { conversation_id: direct.conversation_id, body: { client_id: 'a-4', body: 'Sí, pásamelos a mí.' } },
    ]);
    const teamChat = await http(server, people.sofia.token, 'POST', '/api/internal', { team_id: team.id });
    await operatorWrite(server, people.sofia.token, [
      { conversation_id: teamChat.conversation_id, body: { client_id: 's-1', body: 'Recordad: el viernes cerramos a las 15:00.' } },
    ]);

    // 6. Chen (English, Telegram): queued, nobody free (capacities full, distribution on).
    await http(server, ana, 'PATCH', `/api/operators/${me.id}`, { capacity: 2 });
    await http(server, ana, 'PATCH', `/api/operators/${people.luis.id}`, { capacity: 1 });
    await http(server, ana, 'PATCH', `/api/operators/${people.james.id}`, { capacity: 1 });
    await http(server, ana, 'POST', `/api/conversations/${c1.conversation_id}/assign`, { operator_id: people.luis.id, reason: 'Tienda de Valencia' });
    await http(server, people.luis.token, 'POST', `/api/conversations/${c1.conversation_id}/assign`, { operator_id: me.id, reason: 'Ana conoce la tienda' });
    await http(server, ana, 'PUT', '/api/settings/routing', { distribution: true, default_assignee_id: null, auto_close_minutes: 120 });

    // Ana's console: María open, a draft for Carmen.
    const desk = await consoleOf(browser, server, ana, { hash: `#/c/${m1.conversation_id}` });
    await desk.waitForSelector('#messages li.msg-note');
    const chen = await host.visitor('telegram');
    await chen.say('Hello, can I change the colour of my order #10311 before it ships?');
    await desk.waitForSelector('#conv-list .badge-waiting');
    await desk.click(`#conv-list li[data-conversation-id="${c1.conversation_id}"] a`);
    await desk.waitForSelector('#messages li.msg-visitor');
    await desk.type('#composer-input', 'Sí, en la calle Colón 12, abierta de 10:00 a 20:30.');
    await sleep(600);
    await desk.click(`#conv-list li[data-conversation-id="${m1.conversation_id}"] a`);
    await desk.waitForSelector('#messages li.msg-note');
    await maria.send({ type: 'typing', on: true });
    await desk.waitForFunction(() => document.querySelector('#typing').textContent !== '');
    await desk.evaluate(() => {
      document.activeElement?.blur();
      document.querySelector('#toasts').replaceChildren();
    });
    await desk.evaluate(() => {
      const s = document.querySelector('#messages-scroll');
      s.scrollTop = s.scrollHeight;
    });
    await sleep(300);
    if (wanted('desktop')) shots.push(['console-desktop.png', await desk.screenshot({ path: path.join(OUT, 'console-desktop.png') })]);

    // The phone: Ana's conversation with María.
    const phone = await consoleOf(browser, server, ana, {
      viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2, hash: `#/c/${m1.conversation_id}`,
    });
    await phone.waitForSelector('#messages li.msg-note');
    await phone.evaluate(() => {
      document.querySelector('#toasts').replaceChildren();
      const s = document.querySelector('#messages-scroll');
      s.scrollTop = s.scrollHeight;
    });
    await sleep(300);
    if (wanted('phone')) shots.push(['console-phone.png', await phone.screenshot({ path: path.join(OUT, 'console-phone.png') })]);

    // Pop-up display: the work area with the chat floating over it.
    await http(server, ana, 'PATCH', '/api/me', { display_mode: 'popup' });
    const popup = await consoleOf(browser, server, ana, { hash: `#/c/${direct.conversation_id}` });
    await popup.waitForSelector('#overview-operators li');
    await popup.waitForSelector('#messages li.msg');
    await popup.waitForSelector('#overview-mine li a');
    await popup.evaluate(() => document.querySelector('#toasts').replaceChildren());
    await sleep(300);
    if (wanted('popup')) shots.push(['console-popup.png', await popup.screenshot({ path: path.join(OUT, 'console-popup.png') })]);
    await http(server, ana, 'PATCH', '/api/me', { display_mode: 'section' });

    // Administration.
    const admin = await consoleOf(browser, server, ana, { hash: '#/admin' });
    await admin.waitForSelector('#admin-channels');
    await admin.evaluate(() => document.querySelector('#toasts').replaceChildren());
    // Tall enough for the whole panel.
    const height = await admin.evaluate(() => document.querySelector('#admin-pane').scrollHeight + document.querySelector('.topbar').offsetHeight);
    await admin.setViewportSize({ width: 1440, height: Math.min(3000, Math.max(900, height)) });
    await sleep(200);
    if (wanted('admin')) shots.push(['console-admin.png', await admin.screenshot({ path: path.join(OUT, 'console-admin.png') })]);

    // The customer card (OC16, OC20, XB11): María's names, address and VIP tag; a signed
    // identity from the shop's login (verified) merged in with its conversation; a phone she
    // typed; someone else typing her e-mail (a pending suggestion); text selected in her
    // message with the "Set as" menu open.
    const mariaContact = (await http(server, ana, 'GET', `/api/conversations/${m1.conversation_id}`)).conversation.contact.id;
    await http(server, ana, 'PATCH', `/api/contacts/${mariaContact}`, {
      first_name: 'María', last_name: 'López Navarro', address: 'Calle de Alcalá 120, 3.º B, 28009 Madrid', vip: true,
      email: 'maria.lopez@correo.example', phone: '+34 612 345 678',
    });
    const web = (await http(server, ana, 'GET', '/api/channels')).find((c) => c.name === 'web');
    const secret = await http(server, ana, 'GET', `/api/channels/${web.id}/secret`);
    const shopper = await host.visitor('web', { user_id: secret.example.user_id, signature: secret.example.signature, name: 'María López' });
    const s1 = await shopper.say('Hola, ¿el pedido 10180 se puede devolver en tienda?');
    const shopperContact = (await http(server, ana, 'GET', `/api/conversations/${s1.conversation_id}`)).conversation.contact.id;
    await http(server, ana, 'POST', `/api/conversations/${s1.conversation_id}/close`, {});
    await http(server, ana, 'POST', `/api/contacts/${shopperContact}/merge`, { into: mariaContact });
    const other = await host.visitor('web');
    await other.say('Buenas, quería preguntar por un pedido');
    await other.send({ type: 'form', client_id: 'f-2', form: 'prechat', fields: { name: 'M. López', email: 'maria.lopez@correo.example' } });
    await sleep(300);
    await maria.say('Mejor enviadlo a Calle Serrano 45, 2.º izquierda, 28001 Madrid, por favor.');
    const card = await consoleOf(browser, server, ana, { viewport: { width: 1440, height: 1180 }, hash: `#/c/${m1.conversation_id}` });
    await card.waitForSelector('#details-body .card-suggestions .suggestion');
    await card.waitForSelector('#details-body .identifier.is-verified');
    await card.evaluate(() => {
      document.querySelector('#toasts').replaceChildren();
      const s = document.querySelector('#messages-scroll');
      s.scrollTop = s.scrollHeight;
    });
    // Select the new address in her last message, as a mouse drag would.
    await card.evaluate(() => {
      const bodies = [...document.querySelectorAll('#messages li.msg-visitor .msg-body')];
      const body = bodies[bodies.length - 1];
      const node = body.firstChild;
      const needle = 'Calle Serrano 45, 2.º izquierda, 28001 Madrid';
      const at = node.data.indexOf(needle);
      const range = document.createRange();
      range.setStart(node, at);
      range.setEnd(node, at + needle.length);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      body.dispatchEvent(new MouseEvent('mouseup', { bubbles: true }));
    });
    await card.waitForSelector('#set-as-menu');
    await card.hover('#set-as-menu [data-field=address]');
    await sleep(300);
    if (wanted('card')) shots.push(['console-card.png', await card.screenshot({ path: path.join(OUT, 'console-card.png') })]);

    const errors = [desk, phone, popup, admin, card, luisPage, jamesPage].flatMap((p) => p.errors);
    if (errors.length) throw new Error(`console errors:\n${errors.join('\n')}`);
    for (const [name] of shots) console.log(`wrote docs/screenshots/${name}`);
  } catch (e) {
    e.message += `\n--- server output ---\n${server.output().split('\n').slice(-30).join('\n')}`;
    throw e;
  } finally {
    await browser.close();
    await server.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
