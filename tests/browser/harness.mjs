// Browser-test harness: starts the real `charla` binary on a free loopback port over a
// fresh database (a SQLite file in a temporary folder, or a new PostgreSQL database), adds
// operators with the binary's own CLI, and drives Debian's Chromium with playwright-core.
// See README.md beside this file.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

/** The repository root (two folders above this file). */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** How long `startServer` waits for `GET /healthz` to answer 200. */
export const START_TIMEOUT_MS = 20_000;

/** How long `stop()` waits after SIGTERM before it sends SIGKILL. */
const STOP_TIMEOUT_MS = 20_000;

/** The Chromium flags that work on this project's machines (see README.md). */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The `charla` binary the tests run: `CHARLA_BIN`, else `target/debug/charla`. */
export function charlaBin() {
  return process.env.CHARLA_BIN || path.join(REPO, 'target', 'debug', 'charla');
}

/** The Chromium executable: `CHROMIUM_PATH`, else Debian's `/usr/bin/chromium`. */
export function chromiumPath() {
  return process.env.CHROMIUM_PATH || '/usr/bin/chromium';
}

// ---------------------------------------------------------------------------------------
// PostgreSQL

/** `CHARLA_TEST_POSTGRES` (server URL without a database), default the local server. */
export function postgresBase() {
  return (process.env.CHARLA_TEST_POSTGRES || 'postgres://postgres@127.0.0.1:5432').replace(/\/+$/, '');
}

function postgresRequired() {
  return process.env.CHARLA_REQUIRE_POSTGRES === '1';
}

function psqlArgs(sql) {
  return ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', `${postgresBase()}/postgres`, '-c', sql];
}

const psqlEnv = () => ({ ...process.env, PGCONNECT_TIMEOUT: '5' });

/** Runs one SQL statement with psql on the server's `postgres` database, synchronously. */
function psqlSync(sql) {
  const r = spawnSync('psql', psqlArgs(sql), { env: psqlEnv(), encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new Error(`psql: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`psql ${JSON.stringify(sql)} exited ${r.status}: ${(r.stderr || '').trim()}`);
  return r.stdout.trim();
}

/** Runs one SQL statement with psql on the server's `postgres` database. */
function psql(sql) {
  return new Promise((resolve, reject) => {
    const child = spawn('psql', psqlArgs(sql), { env: psqlEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', (e) => reject(new Error(`psql: ${e.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve(out.trim());
      else reject(new Error(`psql ${JSON.stringify(sql)} exited ${code}: ${err.trim()}`));
    });
  });
}

function hasCommand(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
  return r.status === 0;
}

let pgStatus;

/**
 * Whether the PostgreSQL server at `CHARLA_TEST_POSTGRES` answers a `SELECT 1` through
 * psql: `{ ok: true }` or `{ ok: false, reason }`. Checked once per process.
 */
export function postgresStatus() {
  if (pgStatus) return pgStatus;
  if (!hasCommand('psql')) {
    pgStatus = { ok: false, reason: 'psql is not installed' };
  } else {
    try {
      psqlSync('SELECT 1');
      pgStatus = { ok: true };
    } catch (e) {
      const why = e.message.replace(/\s+/g, ' ').trim();
      pgStatus = { ok: false, reason: `PostgreSQL at ${postgresBase()} is unreachable (${why})` };
    }
  }
  return pgStatus;
}

/**
 * The backends to test: `sqlite`, plus `postgres` when PostgreSQL is reachable. With
 * `CHARLA_REQUIRE_POSTGRES=1` an unreachable PostgreSQL throws instead.
 */
export function backends() {
  const list = ['sqlite'];
  const pg = postgresStatus();
  if (pg.ok) {
    list.push('postgres');
  } else if (postgresRequired()) {
    throw new Error(`CHARLA_REQUIRE_POSTGRES=1 but ${pg.reason}`);
  }
  return list;
}

let dbCounter = 0;

async function createPostgresDatabase() {
  const pg = postgresStatus();
  if (!pg.ok) throw new Error(`cannot use the postgres backend: ${pg.reason}`);
  const name = `charla_browser_${process.pid}_${dbCounter++}`;
  await psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await psql(`CREATE DATABASE ${name}`);
  const markers = process.env.CHARLA_PG_MARKER_DIR;
  if (markers) {
    // scripts/test counts these to prove the PostgreSQL tests really ran.
    fs.mkdirSync(markers, { recursive: true });
    fs.writeFileSync(path.join(markers, name), '');
  }
  return name;
}

// ---------------------------------------------------------------------------------------
// The server

/** Servers not stopped yet, killed and cleaned up if the process exits without `stop()`. */
const live = new Set();

process.on('exit', () => {
  for (const s of live) {
    try {
      s.child.kill('SIGKILL');
    } catch {}
    try {
      fs.rmSync(s.dir, { recursive: true, force: true });
    } catch {}
    if (s.pgName) {
      try {
        psqlSync(`DROP DATABASE IF EXISTS ${s.pgName} WITH (FORCE)`);
      } catch {}
    }
  }
});

/** A free TCP port on 127.0.0.1 (free when asked; the server binds it right after). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `promise`, or `fallback` after `ms`; the timer does not outlive the race. */
async function within(promise, ms, fallback = null) {
  let timer;
  const timeout = new Promise((r) => (timer = setTimeout(() => r(fallback), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Keeps the last `max` characters of a stream. */
function tail(stream, max = 16_384) {
  const t = { text: '' };
  stream.setEncoding('utf8');
  stream.on('data', (d) => {
    t.text += d;
    if (t.text.length > max) t.text = t.text.slice(-max);
  });
  return t;
}

/**
 * Starts `charla serve` on a free loopback port over a fresh database and waits until
 * `GET /healthz` answers 200. `env` adds or overrides `CHARLA_*` settings.
 *
 * Returns `{ url, port, dir, dbUrl, backend, env, output(), stop() }`: `url` is
 * `http://127.0.0.1:<port>`, `dir` a temporary folder removed by `stop()`, `dbUrl` the
 * value of `CHARLA_DATABASE_URL`, `output()` the server's recent stdout and stderr.
 * `stop()` sends SIGTERM, waits for the exit, removes `dir` and drops the PostgreSQL
 * database; it may be called more than once.
 */
export async function startServer({ backend = 'sqlite', env = {} } = {}) {
  const bin = charlaBin();
  if (!fs.existsSync(bin)) {
    throw new Error(`no charla binary at ${bin}: run \`cargo build --bin charla\` first, or set CHARLA_BIN`);
  }
  if (backend !== 'sqlite' && backend !== 'postgres') throw new Error(`unknown backend ${backend}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'charla-browser-'));
  let pgName = null;
  let dbUrl;
  try {
    if (backend === 'postgres') {
      pgName = await createPostgresDatabase();
      dbUrl = `${postgresBase()}/${pgName}`;
    } else {
      dbUrl = path.join(dir, 'charla.db');
    }
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  // A port that was free may be taken before the server binds it: try a few.
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const serverEnv = {
      CHARLA_ADDR: `127.0.0.1:${port}`,
      CHARLA_DATABASE_URL: dbUrl,
      CHARLA_STATIC_DIR: path.join(REPO, 'static'),
      CHARLA_LOG: 'warn',
      CHARLA_RATE_PER_SEC: '0',
      ...env,
    };
    const child = spawn(bin, ['serve'], {
      cwd: dir,
      env: { ...process.env, ...serverEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = tail(child.stdout);
    const err = tail(child.stderr);
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    let exit = null;
    exited.then((e) => (exit = e));
    child.on('error', () => {}); // reported through `exit` / the health check

    const url = `http://127.0.0.1:${port}`;
    const state = { child, dir, pgName };
    live.add(state);

    let stopping;
    const server = {
      url,
      port,
      dir,
      dbUrl,
      backend,
      env: serverEnv,
      bin,
      /** The server's recent stdout and stderr. */
      output: () => `${out.text}${err.text}`,
      stop() {
        stopping ??= (async () => {
          if (exit === null) {
            child.kill('SIGTERM');
            const done = await within(exited, STOP_TIMEOUT_MS);
            if (done === null) {
              child.kill('SIGKILL');
              await exited;
            }
          }
          fs.rmSync(dir, { recursive: true, force: true });
          if (pgName) await psql(`DROP DATABASE IF EXISTS ${pgName} WITH (FORCE)`);
          live.delete(state);
        })();
        return stopping;
      },
    };

    const deadline = Date.now() + START_TIMEOUT_MS;
    let healthy = false;
    let lastStatus = 'no answer';
    while (Date.now() < deadline && exit === null) {
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        if (res.status === 200) {
          healthy = true;
          break;
        }
        lastStatus = `status ${res.status}`;
      } catch (e) {
        lastStatus = e.cause?.code || e.message;
      }
      await sleep(100);
    }
    if (healthy) return server;

    // Wait a moment for an exiting process so its last words are in the message.
    await within(exited, 200);
    const why =
      exit !== null
        ? `charla serve exited (code ${exit.code}, signal ${exit.signal}) before /healthz answered`
        : `GET ${url}/healthz did not answer 200 within ${START_TIMEOUT_MS / 1000} s (last: ${lastStatus})`;
    lastError = new Error(`${why}\n--- server output ---\n${server.output()}`);
    const addrInUse = exit !== null && /address already in use|AddrInUse|os error 98/i.test(server.output());
    // Keep the database for a retry; drop it (and the folder) once giving up.
    if (!addrInUse || attempt === 2) {
      await server.stop().catch(() => {});
      throw lastError;
    }
    if (exit === null) child.kill('SIGKILL');
    await exited;
    live.delete(state);
  }
  throw lastError;
}

/**
 * Adds an operator with `charla operator add EMAIL NAME [--admin]` on the server's
 * database, the password on standard input. Throws with the CLI's output on failure.
 */
export async function addOperator(server, { email, name = 'Test Operator', password, admin = false }) {
  if (!email || !password) throw new Error('addOperator needs an email and a password');
  const args = ['operator', 'add', email, name];
  if (admin) args.push('--admin');
  const child = spawn(server.bin || charlaBin(), args, {
    cwd: server.dir,
    env: { ...process.env, ...server.env, CHARLA_DATABASE_URL: server.dbUrl },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const closed = new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  child.stdin.on('error', () => {}); // the CLI may exit before reading (invalid e-mail)
  child.stdin.end(`${password}\n`);
  const { code, signal } = await closed;
  if (code !== 0) {
    throw new Error(`charla ${args.join(' ')} failed (code ${code}, signal ${signal}):\n${out.trim()}`);
  }
}

/** Logs in over `POST /api/login`; returns the bearer token. Throws on any other answer. */
export async function apiLogin(server, email, password) {
  const res = await fetch(`${server.url}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST /api/login answered ${res.status}: ${text}`);
  const body = JSON.parse(text);
  if (typeof body.token !== 'string' || !body.token) throw new Error(`POST /api/login gave no token: ${text}`);
  return body.token;
}

// ---------------------------------------------------------------------------------------
// The browser

/**
 * Launches Chromium (`CHROMIUM_PATH`, default `/usr/bin/chromium`) with a fresh profile.
 * `HEADFUL=1` shows the window (needs a display, e.g. `xvfb-run` or a desktop);
 * `SLOWMO=<ms>` slows every action down. `options` go to playwright's `launch`.
 */
export async function launchBrowser(options = {}) {
  const headful = process.env.HEADFUL === '1';
  const executablePath = chromiumPath();
  if (!fs.existsSync(executablePath)) {
    throw new Error(`no Chromium at ${executablePath}: run scripts/setup (apt package chromium), or set CHROMIUM_PATH`);
  }
  return chromium.launch({
    executablePath,
    headless: !headful,
    args: headful ? CHROMIUM_ARGS : ['--headless', ...CHROMIUM_ARGS],
    slowMo: Number(process.env.SLOWMO || 0) || undefined,
    timeout: 30_000,
    ...options,
  });
}

/**
 * Console errors `newPage` ignores by default: Chromium asks every site for /favicon.ico and
 * logs its 404 as a console error, which says nothing about the page under test.
 */
export const IGNORED_CONSOLE_ERRORS = [/^Failed to load resource: .*\b404\b.*\(\S*\/favicon\.ico:\d+\)$/];

/**
 * A page in a new browser context (its own cookies and storage). `page.errors` collects
 * every console error and uncaught page error as a string, so a test can assert
 * `assert.deepEqual(page.errors, [])`; console errors matching a pattern of `ignore`
 * (default `IGNORED_CONSOLE_ERRORS`) are left out. Other options go to `newContext`.
 * Closing the browser closes it too.
 */
export async function newPage(
  browser,
  { viewport = { width: 1280, height: 800 }, ignore = IGNORED_CONSOLE_ERRORS, ...contextOptions } = {},
) {
  const context = await browser.newContext({ viewport, ...contextOptions });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.setDefaultNavigationTimeout(20_000);
  page.errors = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const loc = msg.location();
    const line = `${msg.text()}${loc?.url ? ` (${loc.url}:${loc.lineNumber})` : ''}`;
    if (ignore.some((re) => re.test(line))) return;
    page.errors.push(`console.error: ${line}`);
  });
  page.on('pageerror', (err) => page.errors.push(`pageerror: ${err.message}`));
  return page;
}
