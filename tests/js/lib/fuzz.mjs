// A socket-level fuzzer for the Socket.io endpoint: raw WebSocket connections and HTTP long-polling
// sessions sending malformed Engine.IO / Socket.io packets, events of the wrong shape, payloads just
// under and over MAX_PAYLOAD_BYTES, deeply nested JSON, binary attachments, unknown events — while
// two legitimate users keep chatting through socket.io-client and must keep getting every message.
//
// Library:    fuzzScenario({url, seconds, ...}) runs all of it and returns a report;
//             fuzz({url, seconds, ...}) is the fuzzer alone.
// Standalone: node lib/fuzz.mjs <url> <seconds> [--pid PID] [--concurrency N] [--seed S]
//                                               [--max-payload BYTES]
//             e.g. node lib/fuzz.mjs http://127.0.0.1:3000 600 --pid <that server's pid>
//             registers its own users on the target, prints a JSON report, exits 1 on a failure.

import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Users whose tokens the chaos and polling sessions use. */
const FUZZ_USERS = 8;

// ---------------------------------------------------------------------------------------------
// Reproducible randomness

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  constructor(seed) { this.next = mulberry32(seed); }
  int(n) { return Math.floor(this.next() * n); }
  pick(xs) { return xs[this.int(xs.length)]; }
  chance(p) { return this.next() < p; }
  bytes(n) { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = this.int(256); return b; }
  text(n) {
    // ASCII, JSON punctuation, control characters, multi-byte and astral characters.
    const alphabet = ['a', 'Z', '0', '9', '"', '\\', '[', ']', '{', '}', ',', ':', '-', '\u0000', '\u001e', '\n', 'é', '中', '😀', '\u2028', '/'];
    let s = '';
    for (let i = 0; i < n; i++) s += this.pick(alphabet);
    return s;
  }
}

// ---------------------------------------------------------------------------------------------
// Packet generators: each returns a list of frames; a frame is a string (text), a Buffer (binary),
// or {invalidUtf8: Buffer} (a text frame that is not UTF-8).

const EVENTS = ['message:send', 'message:history', 'message:sync', 'user:init'];
const deep = (depth, open, close, inner = '1') => open.repeat(depth) + inner + close.repeat(depth);

/** JSON values of every wrong type and a few edge values. */
function weirdValue(r, ctx) {
  return r.pick([
    () => null, () => true, () => 0, () => -1, () => 1e308, () => -1e308, () => 2 ** 53 + 1,
    () => '', () => ' ', () => 'x'.repeat(r.int(200)), () => r.text(r.int(50)), () => [], () => {},
    () => [ctx.peerId], () => ({ receiverId: ctx.peerId }), () => ctx.peerId, () => ctx.peerId.toUpperCase(),
    () => '00000000-0000-0000-0000-000000000000', () => `${ctx.peerId} `, () => ({ toString: 1 }),
    () => 'c'.repeat(65), () => r.int(1e6), () => -0.5, () => '1e309', () => ({ $gt: '' }),
  ])();
}

function weirdPayload(r, ctx) {
  const event = r.pick(EVENTS);
  const base = {
    'message:send': { receiverId: ctx.peerId, content: 'fuzz', clientMsgId: `f${r.int(1e9)}` },
    'message:history': { receiverId: ctx.peerId, limit: 10 },
    'message:sync': { after: ctx.peerId, limit: 10 },
    'user:init': null,
  }[event];
  const shape = r.int(4);
  let payload;
  if (shape === 0 || base === null) payload = weirdValue(r, ctx);
  else if (shape === 1) {
    payload = { ...base };
    const keys = Object.keys(payload);
    payload[r.pick(keys)] = weirdValue(r, ctx);
  } else if (shape === 2) {
    payload = { ...base, [r.pick(['__proto__', 'constructor', 'receiverid', 'content ', ''])]: weirdValue(r, ctx) };
  } else {
    payload = base;
  }
  return [event, payload];
}

/** Text of `n` bytes, JSON-safe. */
const filler = (n) => 'x'.repeat(Math.max(0, n));

export const GENERATORS = {
  randomBytes: (r) => [r.bytes(1 + r.int(r.chance(0.1) ? 70_000 : 300))],
  randomText: (r) => [r.text(1 + r.int(300))],
  invalidUtf8Text: (r) => [{ invalidUtf8: Buffer.concat([Buffer.from('42["message:send",{"content":"'), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]), Buffer.from('"}]')]) }],
  emptyAndTiny: (r) => [r.pick(['', '4', '42', '42[', '4[]', '40', '41', '43', '44', '45', '46', '4-', '42-', '4 ', '2', '3', '6', '1'])],
  truncated: (r, ctx) => {
    const full = `420${r.int(1000)}${JSON.stringify(['message:send', { receiverId: ctx.peerId, content: 'truncated', clientMsgId: 'x' }])}`;
    return [full.slice(0, 1 + r.int(full.length - 1))];
  },
  wrongEngineType: (r) => [`${r.pick(['7', '8', '9', 'a', 'Z', '-', '{', '\u0000', '5', '0', '1'])}${r.pick(['', '["x"]', '{}', r.text(20)])}`],
  wrongSocketType: (r) => [`4${r.pick(['7', '8', '9', 'x', '/', '{', '[', '-1', '99'])}${r.pick(['', '["message:send",{}]', '{}', r.text(20)])}`],
  badAckIds: (r, ctx) => {
    const body = JSON.stringify(['message:send', { receiverId: ctx.peerId, content: 'ack id fuzz' }]);
    return [`42${r.pick(['99999999999999999999999999', '-1', '1e309', '0x10', '18446744073709551616', '4294967296', '007', ' 1', '1.5', 'NaN'])}${body}`];
  },
  ackForUnknownId: (r) => [`43${r.int(1e9)}${r.pick(['["ok"]', '[]', '{}', '[' + deep(100, '[', ']') + ']'])}`, `43${r.pick(['', '-1', '99999999999999999999999'])}["x"]`],
  hugeNumbers: (r, ctx) => [
    `42${JSON.stringify(['message:history', { receiverId: ctx.peerId, limit: 1 }]).replace('1}', r.pick(['1e308}', '-1e308}', '123456789012345678901234567890}', '1e400}', '-0}', '1.0000000000000000000001}', '18446744073709551616}']))}`,
    `42["message:sync",{"after":"${ctx.peerId}","limit":${r.pick(['1e999', '9'.repeat(400), '-9223372036854775809', '0.000001'])}}]`,
  ],
  wrongTypedEvents: (r, ctx) => {
    const [event, payload] = weirdPayload(r, ctx);
    const ack = r.chance(0.7) ? String(r.int(1e6)) : '';
    return [`42${ack}${JSON.stringify([event, payload])}`];
  },
  wrongArity: (r, ctx) => [r.pick([
    '42[]', '42{}', '42"message:send"', '42[1,2,3]', '42[null]', '42[{"a":1}]', '42[["message:send"]]',
    `421["message:send"]`, `421["message:send",{"receiverId":"${ctx.peerId}","content":"a"},{"extra":1},2]`,
    '42[true]', '421["user:init",null,null,null]',
  ])],
  unknownEvents: (r) => [`42${r.chance(0.5) ? r.int(1000) : ''}${JSON.stringify([r.pick(['nope', '__proto__', 'constructor', 'connect', 'disconnect', 'disconnecting', 'error', 'newListener', 'message', 'x'.repeat(5000), '', 'message:send ', 'MESSAGE:SEND', 'user:online']), { a: 1 }])}`],
  namespaces: (r, ctx) => [r.pick([
    '40/admin,', '40/admin,{}', `40/admin,{"token":"${ctx.token}"}`, '40/../,', '40/,{}', '42/admin,["message:send",{}]',
    '41/admin,', '40/' + 'n'.repeat(3000) + ',', '40/\u0000,', '40{"token":' + JSON.stringify('x'.repeat(10_000)) + '}',
  ])],
  reconnectPackets: (r, ctx) => [r.pick(['40', `40{"token":"${ctx.token}"}`, '40{"token":null}', '40{"token":123}', '40[]', '40"str"', '41', '41{}'])],
  engineControl: (r) => [r.pick(['2probe', '3probe', '5', '6', '2', '3', '1', '2'.repeat(1000)])],
  nearMaxPayload: (r, ctx) => {
    const overhead = 200;
    const size = ctx.maxPayloadBytes - overhead - r.int(500);
    return [`421${JSON.stringify(['message:send', { receiverId: ctx.peerId, content: filler(size), clientMsgId: `big${r.int(1e6)}` }])}`];
  },
  overMaxPayload: (r, ctx) => [`421${JSON.stringify(['message:send', { receiverId: ctx.peerId, content: filler(ctx.maxPayloadBytes + 1 + r.int(100_000)) }])}`],
  deepArrays: (r, ctx) => [`421["message:send",${deep(10_000, '[', ']')}]`, `42${deep(r.chance(0.5) ? 10_000 : 129, '[', ']')}`],
  deepObjects: (r, ctx) => [`421["message:send",${deep(10_000, '{"a":', '}', '1')}]`, `421["message:history",{"receiverId":${deep(10_000, '{"receiverId":', '}', `"${ctx.peerId}"`)}}]`],
  binaryAttachment: (r, ctx) => {
    const payload = { receiverId: ctx.peerId, content: { _placeholder: true, num: 0 } };
    const variants = [
      ['451-["message:send",{"_placeholder":true,"num":0}]', r.bytes(1 + r.int(64))],
      [`451-${r.int(100)}${JSON.stringify(['message:send', payload])}`, r.bytes(16)],
      ['451-["message:send",{"_placeholder":true,"num":5}]', r.bytes(8)],
      ['451-["message:send",{"_placeholder":true,"num":-1}]', r.bytes(8)],
      ['451-["message:send",{"_placeholder":true,"num":"0"}]', r.bytes(8)],
      ['452-["message:send",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]', r.bytes(8)],
      ['459999999999-["message:send",{"_placeholder":true,"num":0}]', r.bytes(8)],
      ['451-["message:send",{"_placeholder":true,"num":0}]', '42["user:init",null]'],
      ['451-["message:send",{"_placeholder":true,"num":0}]'],
      [r.bytes(32)],
      ['460-["x",{"_placeholder":true,"num":0}]', r.bytes(8)],
      ['461-7[{"_placeholder":true,"num":0}]', r.bytes(8)],
      ['451-' + JSON.stringify(['message:send', payload]), r.bytes(ctx.maxPayloadBytes + 10)],
    ];
    return r.pick(variants);
  },
  flood: (r, ctx) => Array.from({ length: 50 + r.int(200) }, (_, i) => (i % 3 ? '3' : `42["user:init",null]`)),
  validTraffic: (r, ctx) => [
    `42${r.int(1e6)}${JSON.stringify(['message:send', { receiverId: ctx.peerId, content: `valid fuzz ${r.int(1e6)}`, clientMsgId: `v${r.int(1e4)}` }])}`,
    `42${r.int(1e6)}${JSON.stringify(['message:history', { receiverId: ctx.peerId, limit: 1 + r.int(100) }])}`,
    `42${r.int(1e6)}["user:init",null]`,
  ],
};

/** Relative weights: the heavy generators are rarer. */
const WEIGHTS = {
  randomBytes: 6, randomText: 6, invalidUtf8Text: 2, emptyAndTiny: 6, truncated: 6, wrongEngineType: 5,
  wrongSocketType: 5, badAckIds: 5, ackForUnknownId: 3, hugeNumbers: 5, wrongTypedEvents: 12, wrongArity: 5,
  unknownEvents: 4, namespaces: 3, reconnectPackets: 3, engineControl: 3, nearMaxPayload: 1,
  overMaxPayload: 1, deepArrays: 2, deepObjects: 2, binaryAttachment: 6, flood: 1, validTraffic: 6,
};
const WEIGHTED = Object.entries(WEIGHTS).flatMap(([k, w]) => Array(w).fill(k));

/**
 * A well-framed event with a wrong (or right) payload and an ack id: the server must answer every
 * one of these for a known event (with `{error}` or a result) and keep the connection open.
 */
function semanticPacket(r, ctx, ackId) {
  const kind = r.int(10);
  if (kind === 0) {
    // An unknown event: ignored, no ack (as socket.io does).
    return { frame: `42${ackId}${JSON.stringify([r.pick(['nope', 'message:delete', 'MESSAGE:SEND', 'user:online', 'x'.repeat(300)]), weirdValue(r, ctx)])}`, expectAck: false };
  }
  if (kind === 1) {
    // A known event with no payload, or with extra arguments.
    const event = r.pick(EVENTS);
    const args = r.chance(0.5) ? [event] : [event, weirdValue(r, ctx), weirdValue(r, ctx)];
    return { frame: `42${ackId}${JSON.stringify(args)}`, expectAck: true };
  }
  if (kind === 2 && r.chance(0.3)) {
    const size = ctx.maxPayloadBytes - 300 - r.int(500);
    return { frame: `42${ackId}${JSON.stringify(['message:send', { receiverId: ctx.peerId, content: filler(size) }])}`, expectAck: true };
  }
  const [event, payload] = weirdPayload(r, ctx);
  return { frame: `42${ackId}${JSON.stringify([event, payload])}`, expectAck: true };
}

// ---------------------------------------------------------------------------------------------
// Raw transports

function wsUrl(url) {
  const u = new URL(url);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = '/socket.io/';
  u.search = '?EIO=4&transport=websocket';
  return u.toString();
}

/** One raw WebSocket session: open, maybe CONNECT, a burst of fuzz frames, close somehow. */
async function websocketSession(r, baseCtx, stats) {
  const ctx = { ...baseCtx, token: r.pick(baseCtx.tokens) };
  const ws = new WebSocket(wsUrl(ctx.url), { perMessageDeflate: false, handshakeTimeout: 3_000, maxPayload: 64 * 1024 * 1024 });
  stats.connections.websocket++;
  let closedByServer = false;
  const closed = new Promise((resolve) => {
    ws.on('close', (code) => {
      closedByServer = !ws._fuzzClosing;
      stats.closeCodes[code] = (stats.closeCodes[code] ?? 0) + 1;
      resolve();
    });
    ws.on('error', () => { stats.transportErrors++; resolve(); });
  });
  const acked = new Set();
  let connected = false;
  ws.on('message', (data, isBinary) => {
    stats.received++;
    const s = isBinary ? '' : data.toString();
    if (s === '2') ws.readyState === WebSocket.OPEN && ws.send('3');
    else if (s.startsWith('43')) {
      stats.acksReceived++;
      const id = /^43(\d+)/.exec(s)?.[1];
      if (id) acked.add(id);
    } else if (s.startsWith('44')) stats.connectErrors++;
    else if (s.startsWith('40')) connected = true;
  });
  const opened = await Promise.race([
    new Promise((resolve) => ws.once('open', () => resolve(true))),
    closed.then(() => false),
    sleep(4_000).then(() => false),
  ]);
  if (!opened) {
    ws.terminate();
    return;
  }
  const send = (frame) => {
    if (ws.readyState !== WebSocket.OPEN) return false;
    if (Buffer.isBuffer(frame)) ws.send(frame, { binary: true });
    else if (frame && frame.invalidUtf8) ws.send(frame.invalidUtf8, { binary: false });
    else ws.send(String(frame));
    stats.packets++;
    stats.bytes += Buffer.isBuffer(frame) ? frame.length : frame?.invalidUtf8 ? frame.invalidUtf8.length : Buffer.byteLength(String(frame));
    return true;
  };
  if (r.chance(ctx.semanticShare)) {
    // A well-behaved client sending well-framed events with wrong payloads: every known event is
    // acked and the connection stays open.
    stats.connections.semantic++;
    send(`40${JSON.stringify({ token: ctx.semanticToken })}`);
    await Promise.race([(async () => { while (!connected) await sleep(5); })(), closed, sleep(3_000)]);
    if (!connected) {
      stats.semantic.notConnected++;
      ws.terminate();
      return;
    }
    const expected = [];
    const n = 5 + r.int(40);
    for (let i = 0; i < n && ws.readyState === WebSocket.OPEN; i++) {
      const ackId = String(1 + i);
      const { frame, expectAck } = semanticPacket(r, ctx, ackId);
      stats.byKind.semantic = (stats.byKind.semantic ?? 0) + 1;
      if (expectAck) expected.push({ ackId, frame });
      send(frame);
      if (r.chance(0.3)) await sleep(r.int(10));
    }
    stats.semantic.acksExpected += expected.length;
    const deadline = Date.now() + 5_000;
    while (expected.some((e) => !acked.has(e.ackId)) && ws.readyState === WebSocket.OPEN && Date.now() < deadline) await sleep(20);
    const missing = expected.filter((e) => !acked.has(e.ackId));
    stats.semantic.acksMissing += missing.length;
    for (const m of missing.slice(0, 3)) if (stats.semantic.missingExamples.length < 10) stats.semantic.missingExamples.push(m.frame.slice(0, 300));
    if (ws.readyState !== WebSocket.OPEN) {
      stats.semantic.closedByServer++;
      if (stats.semantic.closeExamples.length < 10) stats.semantic.closeExamples.push(expected.at(-1)?.frame.slice(0, 300) ?? '');
    }
    ws._fuzzClosing = true;
    ws.close(1000);
    await Promise.race([closed, sleep(2_000)]);
    ws.terminate();
    return;
  }
  stats.connections.chaos++;
  // How the session starts: CONNECT with the valid token, none, or garbage; or straight to fuzz.
  const start = r.int(10);
  if (start < 5) send(`40${JSON.stringify({ token: ctx.token })}`);
  else if (start < 6) send('40');
  else if (start < 7) send(`40${JSON.stringify({ token: r.text(40) })}`);
  if (start < 7) await Promise.race([sleep(30 + r.int(100)), closed]);

  const n = 1 + r.int(25);
  for (let i = 0; i < n && ws.readyState === WebSocket.OPEN; i++) {
    const kind = r.pick(WEIGHTED);
    stats.byKind[kind] = (stats.byKind[kind] ?? 0) + 1;
    for (const frame of GENERATORS[kind](r, ctx)) if (!send(frame)) break;
    if (r.chance(0.5)) await Promise.race([sleep(r.int(20)), closed]);
  }
  await Promise.race([sleep(r.int(200)), closed]);
  if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
    ws._fuzzClosing = true;
    if (r.chance(0.5)) ws.terminate(); // abrupt: no close frame, like a dropped connection
    else ws.close(r.pick([1000, 1001, 4000, 1008]));
  }
  await Promise.race([closed, sleep(2_000)]);
  if (closedByServer) stats.closedByServer++;
  ws.terminate();
}

async function httpRequest(ctx, stats, query, init = {}) {
  stats.packets++;
  if (init.body) stats.bytes += typeof init.body === 'string' ? Buffer.byteLength(init.body) : init.body.length;
  try {
    const res = await fetch(`${ctx.url}/socket.io/?${query}`, { ...init, signal: AbortSignal.timeout(3_000) });
    const text = await res.text();
    stats.httpStatus[res.status] = (stats.httpStatus[res.status] ?? 0) + 1;
    return { status: res.status, text };
  } catch {
    stats.transportErrors++;
    return { status: 0, text: '' };
  }
}

/** One long-polling session: handshake GET, then fuzz POST bodies (and some bad requests). */
async function pollingSession(r, baseCtx, stats) {
  const ctx = { ...baseCtx, token: r.pick(baseCtx.tokens) };
  stats.connections.polling++;
  const bad = r.int(8);
  if (bad === 0) {
    // Requests that never had a session, or a broken one.
    const q = r.pick([
      'EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAA', 'EIO=4&transport=polling&sid=', 'EIO=99&transport=polling',
      'EIO=3&transport=polling&sid=x', 'EIO=4&transport=carrier-pigeon', 'EIO=4', 'transport=polling', 'EIO=-1&transport=polling',
      `EIO=4&transport=polling&sid=${'s'.repeat(5000)}`,
    ]);
    await httpRequest(ctx, stats, q, r.chance(0.5) ? { method: 'POST', body: r.text(100) } : {});
    return;
  }
  const eio = r.chance(0.85) ? '4' : '3';
  const open = await httpRequest(ctx, stats, `EIO=${eio}&transport=polling&t=${r.int(1e9)}`);
  const m = /"sid":"([^"]+)"/.exec(open.text);
  if (!m) return;
  const q = `EIO=${eio}&transport=polling&sid=${encodeURIComponent(m[1])}`;
  const sep = eio === '4' ? '\x1e' : '';
  const frame = (p) => (eio === '4' ? p : `${p.length}:${p}`);
  if (r.chance(0.6)) await httpRequest(ctx, stats, q, { method: 'POST', body: frame(`40${JSON.stringify({ token: ctx.token })}`) });
  const n = 1 + r.int(6);
  for (let i = 0; i < n; i++) {
    const kind = r.pick(WEIGHTED);
    stats.byKind[kind] = (stats.byKind[kind] ?? 0) + 1;
    const frames = GENERATORS[kind](r, ctx);
    let body;
    if (frames.some((f) => Buffer.isBuffer(f) || f?.invalidUtf8)) {
      // Binary over polling: base64 ("b" prefix) in v4 framing, or raw bytes with a binary type.
      body = r.chance(0.5)
        ? frames.map((f) => (Buffer.isBuffer(f) ? `b${f.toString('base64')}` : f?.invalidUtf8 ? f.invalidUtf8.toString('latin1') : f)).join(sep)
        : Buffer.concat(frames.map((f) => (Buffer.isBuffer(f) ? f : f?.invalidUtf8 ?? Buffer.from(String(f)))));
    } else {
      body = r.chance(0.8) ? frames.map(frame).join(sep) : frames.join(r.pick(['', '\x1e\x1e', ':', '\n']));
    }
    const headers = { 'content-type': r.pick(['text/plain;charset=UTF-8', 'application/octet-stream', 'application/json', 'multipart/form-data; boundary=x']) };
    await httpRequest(ctx, stats, q, { method: 'POST', body, headers });
    if (r.chance(0.1)) {
      // Two POSTs at once on one session (the protocol allows one at a time).
      await Promise.all([httpRequest(ctx, stats, q, { method: 'POST', body: '6' }), httpRequest(ctx, stats, q, { method: 'POST', body: '6' })]);
    }
  }
  if (r.chance(0.5)) await httpRequest(ctx, stats, q, { method: 'POST', body: frame('1') }); // close
}

/**
 * Runs `concurrency` fuzz loops against `url` for `seconds`. `tokens` are valid tokens (of users
 * whose peer is `peerId`) so sessions also get past CONNECT: several, because abandoned polling
 * sessions stay connected until the ping timeout (45 s) and one user would soon hit
 * MAX_SOCKETS_PER_USER. `semanticToken` (another user) is for the well-behaved sessions only.
 * Returns the statistics.
 */
export async function fuzz({ url, seconds, tokens, semanticToken, peerId, maxPayloadBytes = 1_000_000, concurrency = 6, seed = Date.now() & 0xffffffff, pollingShare = 0.2, semanticShare = 0.35 }) {
  const ctx = { url, tokens, semanticToken: semanticToken ?? tokens[0], peerId, maxPayloadBytes, semanticShare };
  const stats = {
    seed, seconds, concurrency, packets: 0, bytes: 0, received: 0, acksReceived: 0, connectErrors: 0,
    closedByServer: 0, transportErrors: 0, connections: { websocket: 0, chaos: 0, semantic: 0, polling: 0 }, closeCodes: {}, httpStatus: {}, byKind: {},
    semantic: { acksExpected: 0, acksMissing: 0, closedByServer: 0, notConnected: 0, missingExamples: [], closeExamples: [] },
  };
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async (_, worker) => {
    const r = new Rng(seed + worker * 7919);
    while (Date.now() < deadline) {
      try {
        if (r.chance(pollingShare)) await pollingSession(r, ctx, stats);
        else await websocketSession(r, ctx, stats);
      } catch (err) {
        stats.fuzzerErrors = (stats.fuzzerErrors ?? 0) + 1;
        stats.lastFuzzerError = String(err?.stack ?? err);
      }
    }
  }));
  return stats;
}

// ---------------------------------------------------------------------------------------------
// The scenario: two legitimate users chat through the fuzz

async function postJson(url, body) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: await res.json().catch(() => null) };
}

async function account(url, prefix) {
  const username = `${prefix}_${randomBytes(5).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  const reg = await postJson(`${url}/auth/register`, { username, password });
  if (reg.status !== 201) throw new Error(`register ${username}: ${reg.status} ${JSON.stringify(reg.body)}`);
  const log = await postJson(`${url}/auth/login`, { username, password });
  if (log.status !== 201) throw new Error(`login ${username}: ${log.status} ${JSON.stringify(log.body)}`);
  return { user: reg.body, token: log.body.access_token };
}

function socketFor(url, token) {
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token }, timeout: 10_000 });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => { socket.close(); reject(err); });
  });
}

/** RSS (bytes) of a pid, from /proc; null if unknown. */
export async function rssOf(pid) {
  if (!pid) return null;
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)[1]) * 1024;
  } catch {
    return null;
  }
}

/**
 * Two legitimate users (alice and bob, socket.io-client over websocket) send each other a message
 * every `chatEveryMs` with a clientMsgId while `fuzz` runs; then every acked message must have
 * reached its receiver live, /health and /ready must answer 200, and a fresh socket must work.
 * Returns `{fuzz, legit, health, failures}`; `failures` is empty when all is well.
 */
export async function fuzzScenario({ url, seconds, concurrency, seed, maxPayloadBytes = 1_000_000, chatEveryMs = 100, log = () => {} }) {
  const failures = [];
  const [alice, bob, fuzzPeer, semantic] = [
    await account(url, 'alice'), await account(url, 'bob'), await account(url, 'fuzzpeer'), await account(url, 'semantic'),
  ];
  const fuzzers = [];
  for (let i = 0; i < FUZZ_USERS; i++) fuzzers.push(await account(url, `fuzzer${i}`));
  const sockets = { alice: await socketFor(url, alice.token), bob: await socketFor(url, bob.token) };
  const disconnects = [];
  const inbox = { alice: new Set(), bob: new Set() };
  for (const who of ['alice', 'bob']) {
    sockets[who].on('disconnect', (reason) => disconnects.push(`${who}: ${reason}`));
    sockets[who].on('message:new', (m) => inbox[who].add(m.id));
  }
  const legit = { sent: 0, acked: 0, failed: 0, timedOut: 0, missing: 0, errors: {}, maxAckMs: 0 };
  const acked = [];
  let chatting = true;
  const chat = (async () => {
    let i = 0;
    const pending = new Set();
    while (chatting) {
      const [from, to, peer] = i % 2 ? ['bob', 'alice', alice] : ['alice', 'bob', bob];
      const started = Date.now();
      const n = i++;
      legit.sent++;
      const p = new Promise((resolve) => {
        const timer = setTimeout(() => { legit.timedOut++; resolve(); }, 10_000);
        sockets[from].emit('message:send', { receiverId: peer.user.id, content: `legit ${n}`, clientMsgId: `legit-${n}` }, (ack) => {
          clearTimeout(timer);
          legit.maxAckMs = Math.max(legit.maxAckMs, Date.now() - started);
          if (ack && !ack.error) { legit.acked++; acked.push({ to, id: ack.id }); } else {
            legit.failed++;
            const code = ack?.error?.code ?? 'no-ack-body';
            legit.errors[code] = (legit.errors[code] ?? 0) + 1;
          }
          resolve();
        });
      });
      pending.add(p);
      p.then(() => pending.delete(p));
      await sleep(chatEveryMs / 2);
    }
    await Promise.all([...pending]);
  })();

  log(`fuzzing ${url} for ${seconds} s (seed ${seed})`);
  const stats = await fuzz({
    url, seconds, tokens: fuzzers.map((f) => f.token), semanticToken: semantic.token, peerId: fuzzPeer.user.id, maxPayloadBytes, concurrency, seed,
  });
  chatting = false;
  await chat;
  // Every acked message reaches its receiver live (bounded wait).
  const deadline = Date.now() + 10_000;
  const undelivered = () => acked.filter((a) => !inbox[a.to].has(a.id));
  while (undelivered().length && Date.now() < deadline) await sleep(100);
  legit.missing = undelivered().length;
  if (legit.missing) failures.push(`${legit.missing} acked legit messages never reached their receiver`);
  if (legit.failed || legit.timedOut) failures.push(`legit sends failed: ${legit.failed} error acks ${JSON.stringify(legit.errors)}, ${legit.timedOut} without an ack in 10 s`);
  if (disconnects.length) failures.push(`legit sockets disconnected: ${disconnects.join(', ')}`);
  if (legit.acked < Math.max(5, seconds)) failures.push(`too few legit messages got through: ${legit.acked}`);
  const sem = stats.semantic;
  if (sem.acksMissing) failures.push(`${sem.acksMissing} of ${sem.acksExpected} well-framed events of known names got no ack, e.g. ${JSON.stringify(sem.missingExamples.slice(0, 3))}`);
  if (sem.notConnected) failures.push(`${sem.notConnected} well-behaved sessions with a valid token could not connect`);
  if (sem.closedByServer) failures.push(`the server closed ${sem.closedByServer} well-behaved sessions, e.g. after ${JSON.stringify(sem.closeExamples.slice(0, 3))}`);

  const health = {};
  for (const p of ['/health', '/ready']) {
    try {
      health[p] = (await fetch(`${url}${p}`, { signal: AbortSignal.timeout(5_000) })).status;
    } catch (err) {
      health[p] = String(err.message);
    }
    if (health[p] !== 200) failures.push(`${p} answered ${health[p]} after the fuzz`);
  }
  try {
    const fresh = await socketFor(url, alice.token);
    const ack = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no ack')), 5_000);
      fresh.emit('message:send', { receiverId: bob.user.id, content: 'after the fuzz' }, (a) => { clearTimeout(timer); resolve(a); });
    });
    health.freshSocket = ack && !ack.error ? 'ok' : JSON.stringify(ack);
    fresh.close();
  } catch (err) {
    health.freshSocket = err.message;
  }
  if (health.freshSocket !== 'ok') failures.push(`a fresh socket after the fuzz: ${health.freshSocket}`);
  sockets.alice.close();
  sockets.bob.close();
  return { fuzz: stats, legit, health, failures };
}

// ---------------------------------------------------------------------------------------------
// Standalone

function parseArgs(argv) {
  const out = { positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) out[a.slice(2)] = argv[++i];
    else out.positional.push(a);
  }
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = parseArgs(process.argv.slice(2));
  const [url, secs] = args.positional;
  if (!url) {
    console.error('usage: node lib/fuzz.mjs <url> <seconds> [--pid PID] [--concurrency N] [--seed S] [--max-payload BYTES]');
    process.exit(2);
  }
  const u = new URL(url);
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(u.hostname)) {
    console.error(`refusing to fuzz a non-loopback target: ${u.hostname}`);
    process.exit(2);
  }
  const seconds = Number(secs ?? 60);
  const pid = args.pid ? Number(args.pid) : null;
  const rssBefore = await rssOf(pid);
  // RSS every 10 s: the allocator's high-water mark is reached within the first minute, so a long
  // run is judged by its growth after warm-up (at a quarter of the run, at most 60 s in).
  const rssSamples = [];
  const started = Date.now();
  const sampler = pid ? setInterval(async () => {
    const v = await rssOf(pid);
    if (v != null) rssSamples.push({ t: Math.round((Date.now() - started) / 1000), mb: Math.round((v / 2 ** 20) * 10) / 10 });
  }, 10_000) : null;
  const report = await fuzzScenario({
    url: url.replace(/\/$/, ''),
    seconds,
    concurrency: Number(args.concurrency ?? 6),
    seed: Number(args.seed ?? (Date.now() & 0xffffffff)),
    maxPayloadBytes: Number(args['max-payload'] ?? 1_000_000),
    log: (s) => console.error(s),
  });
  if (pid) {
    clearInterval(sampler);
    await sleep(5_000);
    const rssAfter = await rssOf(pid);
    const warmAt = Math.min(60, seconds / 4);
    const warm = rssSamples.find((x) => x.t >= warmAt)?.mb ?? rssBefore / 2 ** 20;
    const mb = (b) => Math.round((b / 2 ** 20) * 10) / 10;
    report.rss = { beforeMB: mb(rssBefore), warmMB: warm, warmAtSeconds: warmAt, afterSettleMB: mb(rssAfter ?? 0), samples: rssSamples };
    if (rssAfter == null) report.failures.push(`process ${pid} is gone`);
    else if (rssAfter > Math.max(rssBefore + 50 * 2 ** 20, (warm + 25) * 2 ** 20)) {
      report.failures.push(`RSS grew: ${mb(rssBefore)} MB cold, ${warm} MB warm (${warmAt} s), ${mb(rssAfter)} MB after the fuzz (bound max(cold + 50, warm + 25))`);
    }
  }
  console.log(JSON.stringify(report, null, 2));
  console.log(report.failures.length ? `FAILED: ${report.failures.join('; ')}` : `OK: ${report.fuzz.packets} fuzz packets, ${report.legit.acked} legit messages delivered`);
  process.exit(report.failures.length ? 1 : 0);
}
