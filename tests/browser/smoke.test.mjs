// Smoke test of the browser-test infrastructure: Chromium loads the server's home page, an
// operator added with the CLI logs in over HTTP, and the page itself opens the visitor and
// operator websockets. Runs once per backend (SQLite, and PostgreSQL when reachable).

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

const TIMEOUT = 60_000;

// Opens a websocket from inside the page, sends `first`, and resolves with the first frame
// whose type is `want` (rejects on an `error` frame, a close, or after 10 s).
function wsRoundTrip(page, path, first, want) {
  return page.evaluate(
    ({ path, first, want }) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}${path}`);
        const timer = setTimeout(() => {
          ws.close();
          reject(new Error(`no ${want} frame within 10 s`));
        }, 10_000);
        const fail = (msg) => {
          clearTimeout(timer);
          reject(new Error(msg));
        };
        ws.onopen = () => ws.send(JSON.stringify(first));
        ws.onmessage = (e) => {
          const frame = JSON.parse(e.data);
          if (frame.type === want) {
            clearTimeout(timer);
            ws.close(1000);
            resolve(frame);
          } else if (frame.type === 'error') {
            ws.close();
            fail(`error frame: ${e.data}`);
          }
        };
        ws.onerror = () => fail(`websocket ${path} failed`);
        ws.onclose = (e) => fail(`websocket ${path} closed (${e.code}) before ${want}`);
      }),
    { path, first, want },
  );
}

let browser;

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

// `backends()` throws when CHARLA_REQUIRE_POSTGRES=1 and PostgreSQL is unreachable: the
// SQLite half still runs, and the PostgreSQL half fails with the reason.
let tested = ['sqlite'];
let postgresProblem = null;
try {
  tested = backends();
} catch (e) {
  postgresProblem = e;
}

for (const backend of tested) {
  describe(`smoke on ${backend}`, { timeout: 4 * TIMEOUT }, () => {
    let server;
    let page;

    before(async () => {
      server = await startServer({ backend });
      page = await newPage(browser);
    });

    after(async () => {
      await page?.context().close();
      await server?.stop();
    });

    test('Chromium shows the home page without console errors', { timeout: TIMEOUT }, async () => {
      const res = await page.goto(`${server.url}/`);
      assert.equal(res.status(), 200);
      assert.equal(await page.title(), 'Charla');
      assert.equal((await page.locator('h1').textContent()).trim(), 'Charla is running');
      assert.deepEqual(page.errors, []);
    });

    test('an operator added with the CLI logs in over HTTP and its socket authenticates', { timeout: TIMEOUT }, async () => {
      const email = `admin-${backend}@example.com`;
      const password = 'a long browser password';
      await addOperator(server, { email, name: 'Ana Admin', password, admin: true });
      const token = await apiLogin(server, email, password);
      assert.match(token, /\S{16,}/);
      await assert.rejects(apiLogin(server, email, 'a wrong password'), /answered 401/);

      if (!page.url().startsWith(server.url)) await page.goto(`${server.url}/`);
      const ready = await wsRoundTrip(page, '/ws/operator', { type: 'auth', token }, 'ready');
      assert.equal(ready.type, 'ready');
      assert.deepEqual(page.errors, []);
    });

    test('the page opens /ws/visitor and gets a welcome with a visitor token', { timeout: TIMEOUT }, async () => {
      if (!page.url().startsWith(server.url)) await page.goto(`${server.url}/`);
      const welcome = await wsRoundTrip(page, '/ws/visitor', { type: 'hello', v: 1 }, 'welcome');
      assert.equal(welcome.type, 'welcome');
      assert.equal(typeof welcome.visitor_token, 'string');
      assert.ok(welcome.visitor_token.length > 0, JSON.stringify(welcome));
      assert.deepEqual(page.errors, []);
    });
  });
}

if (postgresProblem) {
  test('smoke on postgres', () => {
    throw postgresProblem;
  });
} else if (!tested.includes('postgres')) {
  test('smoke on postgres', { skip: postgresStatus().reason }, () => {});
}
