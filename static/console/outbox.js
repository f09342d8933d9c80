// The outbox: every message I send stays here, with its client_id, until its `ack` says it is
// durable (docs/PROTOCOL.md section 4). A dropped socket resends it with the same client_id on
// reconnect (answered as a duplicate if it was stored already); `busy` and
// `storage_unavailable` are retried after the server's hint; any other error marks it failed
// with its reason (OC15), and Retry sends it again with the same client_id.

import { state, emit } from './model.js';
import { newClientId } from './util.js';
import { sendFrame } from './feed.js';

/** How often a retryable error (busy, storage_unavailable) is retried before giving up. */
const MAX_AUTO_RETRIES = 5;

/** Pending and failed messages by client_id. */
export const outbox = new Map();

function frameOf(item) {
  const frame = { type: 'message', conversation_id: item.conversation_id, client_id: item.client_id, body: item.body };
  if (item.kind === 'note') frame.kind = 'note';
  if (item.reply_to) frame.reply_to = item.reply_to;
  if (item.mentions?.length) frame.mentions = item.mentions;
  if (item.attachment) frame.attachment = item.attachment.id;
  return frame;
}

function transmit(item) {
  if (item.state !== 'queued') return;
  // Without a socket it stays queued; `resendAll` sends it once the feed is back.
  sendFrame(frameOf(item));
}

/** Queues and sends a message (text, note, or a file with an optional text); returns the outbox item. */
export function sendMessage({ conversation_id, body, kind = 'text', reply_to = null, mentions = [], attachment = null }) {
  const item = {
    client_id: newClientId('o'),
    conversation_id,
    body,
    kind,
    reply_to,
    mentions,
    /** An uploaded file (XB1): `{id, name, type, size}` as POST /api/uploads answered. */
    attachment,
    state: 'queued',
    error: null,
    retries: 0,
    created_at: Date.now(),
  };
  outbox.set(item.client_id, item);
  emit('outbox', { item });
  transmit(item);
  return item;
}

/** Sends a failed message again, with the same client_id. */
export function retry(clientId) {
  const item = outbox.get(clientId);
  if (!item) return;
  item.state = 'queued';
  item.error = null;
  item.retries = 0;
  emit('outbox', { item });
  transmit(item);
}

/** Everything still queued, after the feed (re)connects. */
export function resendAll() {
  for (const item of outbox.values()) transmit(item);
}

/** The outbox items of a conversation, oldest first. */
export function pendingFor(conversationId) {
  return [...outbox.values()].filter((i) => i.conversation_id === conversationId).sort((a, b) => a.created_at - b.created_at);
}

/** The committed message an item became, as the history shows it. */
function committed(item, seq, createdAt) {
  const meta = {};
  if (item.reply_to) meta.reply_to = item.reply_to;
  if (item.mentions?.length) meta.mentions = item.mentions;
  if (item.attachment) meta.attachment = { id: item.attachment.id, name: item.attachment.name, type: item.attachment.type, size: item.attachment.size };
  return {
    conversation_id: item.conversation_id,
    seq,
    kind: item.kind,
    author: { kind: 'operator', id: state.me?.id, name: state.me?.name },
    body: item.body,
    client_id: item.client_id,
    created_at: createdAt || item.created_at,
    meta: Object.keys(meta).length ? meta : undefined,
  };
}

/** An `ack`: the message is durable under `seq`. Returns the committed message, if it was mine. */
export function handleAck(frame) {
  const item = outbox.get(frame.client_id);
  if (!item) return null;
  outbox.delete(frame.client_id);
  const message = committed(item, frame.seq);
  emit('outbox', { item, committed: message });
  return message;
}

/** A `message` frame of mine (a replay after a reconnect) settles its outbox item. */
export function claim(message) {
  if (!message.client_id || message.author?.kind !== 'operator' || message.author?.id !== state.me?.id) return;
  const item = outbox.get(message.client_id);
  if (!item || item.conversation_id !== message.conversation_id) return;
  outbox.delete(message.client_id);
  emit('outbox', { item, committed: message });
}

/** An `error` frame. Returns true when it was about an outbox message. */
export function handleError(frame) {
  if (frame.code === 'rate_limited') {
    // It names no client_id: everything unacknowledged is still pending (section 4).
    setTimeout(resendAll, frame.retry_after_ms || 1000);
    return true;
  }
  const item = frame.client_id ? outbox.get(frame.client_id) : null;
  if (!item) return false;
  if (frame.retryable && item.retries < MAX_AUTO_RETRIES) {
    item.retries++;
    setTimeout(() => transmit(item), frame.retry_after_ms || 500);
    return true;
  }
  item.state = 'failed';
  item.error = { code: frame.code, message: frame.message };
  emit('outbox', { item });
  return true;
}
