// A raw Socket.io session over a WebSocket (the `ws` package): what a client library would refuse to
// send (frames over the server's limit) can be written byte for byte, and a reader can stop reading
// its TCP connection. Speaks Engine.IO v4 / Socket.IO v5 on the `/` namespace.

import WebSocket from 'ws';

import { DEFAULT_TIMEOUT_MS } from './harness.mjs';

/** The WebSocket URL of a server's Socket.io endpoint. */
export function socketIoWsUrl(url) {
  const u = new URL(url);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = '/socket.io/';
  u.search = '?EIO=4&transport=websocket';
  return u.toString();
}

/**
 * Opens a raw session and sends CONNECT with `token`; resolves once the server confirms it.
 * The returned session answers pings, records every frame, and offers:
 * - `sendRaw(text)`: writes one text frame as is;
 * - `emitRaw(event, payload, ackId)`: writes `42<ackId>[event,payload]`;
 * - `ack(ackId)`: a promise of the ack's first argument;
 * - `closed`: a promise of `{code}` when the connection ends, whoever ends it;
 * - `events(name)`: payloads of server events received so far.
 */
export function rawConnect(url, token, { timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  const ws = new WebSocket(socketIoWsUrl(url), { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });
  const acks = new Map();
  const waiting = new Map();
  const received = [];
  let isClosed = false;
  const closed = new Promise((resolve) => {
    ws.on('close', (code) => {
      isClosed = true;
      resolve({ code });
    });
  });
  ws.on('error', () => {});
  ws.on('message', (data) => {
    const text = data.toString();
    if (text === '2') {
      if (ws.readyState === WebSocket.OPEN) ws.send('3');
      return;
    }
    if (text.startsWith('43')) {
      const m = /^43(\d+)(.*)$/s.exec(text);
      if (!m) return;
      const [value] = JSON.parse(m[2]);
      const id = Number(m[1]);
      acks.set(id, value);
      waiting.get(id)?.(value);
      return;
    }
    if (text.startsWith('42')) {
      const [event, payload] = JSON.parse(text.slice(2));
      received.push({ event, payload });
    }
  });
  const session = {
    ws,
    closed,
    get isClosed() { return isClosed; },
    sendRaw(text) {
      if (ws.readyState === WebSocket.OPEN) ws.send(text);
    },
    emitRaw(event, payload, ackId) {
      session.sendRaw(`42${ackId}${JSON.stringify([event, payload])}`);
    },
    /** Resolves with the ack, or with `undefined` if the connection ends first. */
    ack(ackId) {
      if (acks.has(ackId)) return Promise.resolve(acks.get(ackId));
      return Promise.race([
        new Promise((resolve) => waiting.set(ackId, resolve)),
        closed.then(() => acks.get(ackId)),
      ]);
    },
    events(name) {
      return received.filter((r) => r.event === name).map((r) => r.payload);
    },
    close() {
      ws.terminate();
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`raw socket did not connect within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (data) => {
      const text = data.toString();
      if (text.startsWith('0')) {
        ws.send(`40${JSON.stringify({ token })}`);
      } else if (text.startsWith('40')) {
        clearTimeout(timer);
        ws.off('message', onMessage);
        resolve(session);
      } else if (text.startsWith('44')) {
        clearTimeout(timer);
        ws.terminate();
        reject(new Error(`connect_error ${text.slice(2)}`));
      }
    };
    ws.on('message', onMessage);
    closed.then(() => {
      clearTimeout(timer);
      reject(new Error('the server closed the raw socket before it connected'));
    });
  });
}
