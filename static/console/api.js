// The HTTP API (docs/PROTOCOL.md, section 8): the bearer token kept in localStorage, JSON in
// and out, and errors as `ApiError` with the server's stable `code` and its human `message`.
// A 401 on an authenticated call ends the session (the app shows the login form).

const TOKEN_KEY = 'charla.console.token';

/** An HTTP error answered by the server (or a network failure, `status` 0). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let unauthorizedHandler = () => {};

/** What to do when an authenticated call gets 401 (the token expired or was logged out). */
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused (private mode): the session lasts as long as the page.
  }
}

/** Retryable answers (busy, storage_unavailable: docs/PROTOCOL.md section 7) are retried this often. */
const MAX_RETRIES = 3;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * One call: `method path`, an optional JSON body; resolves with the parsed answer (or null).
 * A 503 with a retry hint is retried after the hint when repeating is safe: reads, PUT and
 * PATCH, writes that carry a `client_id` (the server stores those once), and calls marked
 * `idempotent`.
 */
export async function request(method, path, body, options = {}) {
  const safe = options.idempotent || method === 'GET' || method === 'PUT' || method === 'PATCH' || (body && typeof body.client_id === 'string');
  for (let attempt = 0; ; attempt++) {
    try {
      return await requestOnce(method, path, body, options);
    } catch (e) {
      if (!(safe && e.status === 503 && e.retryAfter && attempt < MAX_RETRIES)) throw e;
      await sleep(e.retryAfter);
    }
  }
}

async function requestOnce(method, path, body, { auth = true, keepalive = false } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const token = getToken();
  if (auth && token) headers.authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, { method, headers, keepalive, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'network', e.message || 'network error');
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    const error = new ApiError(res.status, err.code || `http_${res.status}`, err.message || res.statusText || `HTTP ${res.status}`);
    error.retryAfter = err.retry_after_ms || 0;
    if (res.status === 401 && auth) unauthorizedHandler(error);
    throw error;
  }
  return data;
}

/**
 * Uploads a file (XB1): `POST /api/uploads?name=…` with the file as the body and the bearer
 * token. Resolves with the server's description `{id, name, type, size, url}`; a refusal
 * (type, size) is an `ApiError` with the server's message.
 */
async function upload(file) {
  const headers = { accept: 'application/json', 'content-type': file.type || 'application/octet-stream' };
  const token = getToken();
  if (token) headers.authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(`/api/uploads?name=${encodeURIComponent(file.name || 'file')}`, { method: 'POST', headers, body: file });
  } catch (e) {
    throw new ApiError(0, 'network', e.message || 'network error');
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    const error = new ApiError(res.status, err.code || `http_${res.status}`, err.message || res.statusText || `HTTP ${res.status}`);
    if (res.status === 401) unauthorizedHandler(error);
    throw error;
  }
  return data;
}

const enc = encodeURIComponent;

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The endpoints the console uses, by name. */
export const api = {
  setupState: () => request('GET', '/api/setup', undefined, { auth: false }),
  setup: (email, name, password) => request('POST', '/api/setup', { email, name, password }, { auth: false }),
  login: (email, password) => request('POST', '/api/login', { email, password }, { auth: false }),
  logout: () => request('POST', '/api/logout'),
  me: () => request('GET', '/api/me'),
  updateMe: (change) => request('PATCH', '/api/me', change),

  operators: () => request('GET', '/api/operators'),
  addOperator: (body) => request('POST', '/api/operators', body),
  updateOperator: (id, change) => request('PATCH', `/api/operators/${enc(id)}`, change),
  groups: () => request('GET', '/api/groups'),
  addGroup: (name, canChat) => request('POST', '/api/groups', { name, can_chat: canChat }),
  updateGroup: (id, canChat) => request('PATCH', `/api/groups/${enc(id)}`, { can_chat: canChat }),
  teams: () => request('GET', '/api/teams'),
  addTeam: (name) => request('POST', '/api/teams', { name }),
  channels: () => request('GET', '/api/channels'),
  addChannel: (body) => request('POST', '/api/channels', body),
  updateChannel: (id, body) => request('PATCH', `/api/channels/${enc(id)}`, body),
  routingSettings: () => request('GET', '/api/settings/routing'),
  putRoutingSettings: (body) => request('PUT', '/api/settings/routing', body),
  routing: () => request('GET', '/api/routing'),

  conversations: (filters) => request('GET', `/api/conversations${query(filters)}`),
  search: (q, limit = 30) => request('GET', `/api/search${query({ q, limit })}`),
  conversation: (id, afterSeq = 0) => request('GET', `/api/conversations/${enc(id)}${query({ after_seq: afterSeq || undefined })}`),
  assignments: (id) => request('GET', `/api/conversations/${enc(id)}/assignments`),
  assign: (id, operatorId, reason, clientId) =>
    request('POST', `/api/conversations/${enc(id)}/assign`, { operator_id: operatorId, reason: reason || null, client_id: clientId }),
  take: (id, clientId) => request('POST', `/api/conversations/${enc(id)}/take`, { client_id: clientId }),
  close: (id, clientId) => request('POST', `/api/conversations/${enc(id)}/close`, { client_id: clientId }),
  reopen: (id, clientId) => request('POST', `/api/conversations/${enc(id)}/reopen`, { client_id: clientId }),
  // Kept alive so a draft saved as the page goes away still reaches the server (XB3).
  saveDraft: (id, body, replyTo) =>
    request('PUT', `/api/conversations/${enc(id)}/draft`, { body, reply_to: body ? replyTo || null : null }, { keepalive: true }),
  saveContact: (id, name) => request('POST', `/api/conversations/${enc(id)}/contact`, { name }),
  linkContact: (id, contactId) => request('POST', `/api/conversations/${enc(id)}/contact`, { contact_id: contactId }),
  contacts: (q) => request('GET', `/api/contacts${query({ q })}`),
  contact: (id) => request('GET', `/api/contacts/${enc(id)}`),
  updateContact: (id, change) => request('PATCH', `/api/contacts/${enc(id)}`, change),
  mergeContact: (id, into) => request('POST', `/api/contacts/${enc(id)}/merge`, { into }),
  exportContact: (id) => request('GET', `/api/contacts/${enc(id)}/export`),
  eraseContact: (id) => request('DELETE', `/api/contacts/${enc(id)}`),
  suggestions: () => request('GET', '/api/suggestions?status=pending'),
  acceptSuggestion: (id) => request('POST', `/api/suggestions/${enc(id)}/accept`),
  rejectSuggestion: (id) => request('POST', `/api/suggestions/${enc(id)}/reject`),
  askEmail: (id, clientId) => request('POST', `/api/conversations/${enc(id)}/ask-email`, { client_id: clientId }),
  emails: (id) => request('GET', `/api/conversations/${enc(id)}/emails`),
  upload: (file) => upload(file),
  // The chat is created on first use and the same one answered after: safe to repeat.
  internal: (target) => request('POST', '/api/internal', target, { idempotent: true }),
};
