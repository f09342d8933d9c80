// The operator's live feed: one websocket to /ws/operator (docs/PROTOCOL.md 2.2, 3.2). It
// authenticates with the bearer token, keeps the `epoch` of the last `ready` and the highest
// event id (`eid`) handled, and after a drop reconnects with backoff and asks to resume from
// there (XB14). Frames with an `eid` already handled are dropped, so a replay never doubles
// anything; whatever cannot be resumed is reported (`ready` with `resumed: false`) for the
// app to reload.

/** Reconnection delays: doubled from BASE up to MAX, with jitter. */
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15_000;
/** The app-level keep-alive: a `ping` this often, and a socket silent this long is dead. */
const PING_EVERY_MS = 15_000;
const SILENCE_LIMIT_MS = 40_000;

/**
 * Events (`addEventListener`): `state` (detail: 'connecting' | 'connected' | 'reconnecting'
 * | 'offline'), `ready` (detail: the ready frame), `frame` (detail: any other frame),
 * `unauthorized` (the login ended: stop and log in again).
 */
export class Feed extends EventTarget {
  constructor(token) {
    super();
    this.token = token;
    this.ws = null;
    this.epoch = null;
    this.lastEid = 0;
    this.attempt = 0;
    this.state = 'connecting';
    this.stopped = false;
    this.everReady = false;
    this.timer = null;
    this.keepAlive = null;
    this.lastHeard = 0;
    this.onOnline = () => {
      if (!this.stopped && !this.ws) this.connect();
    };
    this.onOffline = () => {
      // The browser says the network is gone: the socket may look open for a long time,
      // so give it up now and come back on `online`.
      if (this.stopped) return;
      this.drop();
      this.setState('offline');
    };
  }

  start() {
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    this.drop();
  }

  get connected() {
    return this.state === 'connected' && this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a frame; false when there is no authenticated socket (the caller keeps it). */
  send(frame) {
    if (!this.connected) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: state }));
  }

  /** Forgets the current socket (its late events are ignored) and closes it. */
  drop() {
    clearTimeout(this.timer);
    this.timer = null;
    clearInterval(this.keepAlive);
    this.keepAlive = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
  }

  connect() {
    if (this.stopped) return;
    this.drop();
    if (navigator.onLine === false) {
      this.setState('offline');
      return; // `online` brings us back
    }
    this.setState(this.everReady ? 'reconnecting' : 'connecting');
    const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws/operator`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.retryLater();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      const auth = { type: 'auth', token: this.token };
      if (this.epoch) auth.resume = { epoch: this.epoch, last_eid: this.lastEid };
      ws.send(JSON.stringify(auth));
      this.lastHeard = Date.now();
      this.keepAlive = setInterval(() => this.checkAlive(), PING_EVERY_MS);
    };
    ws.onmessage = (e) => {
      this.lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      this.handle(frame);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.keepAlive);
      this.keepAlive = null;
      if (e.code === 1008 && /login/.test(e.reason || '')) {
        this.stop();
        this.dispatchEvent(new CustomEvent('unauthorized'));
        return;
      }
      this.retryLater();
    };
    ws.onerror = () => {
      // `close` follows and schedules the retry.
    };
  }

  checkAlive() {
    if (!this.ws) return;
    if (Date.now() - this.lastHeard > SILENCE_LIMIT_MS) {
      this.drop();
      this.retryLater();
      return;
    }
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send('{"type":"ping"}');
  }

  retryLater() {
    if (this.stopped) return;
    if (navigator.onLine === false) {
      this.setState('offline');
      return;
    }
    this.setState(this.everReady ? 'reconnecting' : 'connecting');
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt = Math.min(this.attempt + 1, 10);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  handle(frame) {
    if (frame.type === 'ready') {
      if (frame.epoch !== this.epoch) {
        // Another server process: its event ids start again.
        this.epoch = frame.epoch;
        this.lastEid = 0;
      }
      this.attempt = 0;
      this.everReady = true;
      this.setState('connected');
      this.dispatchEvent(new CustomEvent('ready', { detail: frame }));
      return;
    }
    if (frame.type === 'error' && frame.code === 'unauthorized') {
      this.stop();
      this.dispatchEvent(new CustomEvent('unauthorized'));
      return;
    }
    if (frame.type === 'pong') return;
    if (typeof frame.eid === 'number') {
      if (frame.eid <= this.lastEid) return; // already handled (a replay overlapping live frames)
      this.lastEid = frame.eid;
    }
    this.dispatchEvent(new CustomEvent('frame', { detail: frame }));
  }
}

/** The feed of the current login (replaced at each login), for the modules that send frames. */
export const live = { feed: null };

/** Sends a frame on the current feed; false when there is none or it is not connected. */
export function sendFrame(frame) {
  return live.feed ? live.feed.send(frame) : false;
}
