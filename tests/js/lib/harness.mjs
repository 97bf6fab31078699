// The world each black-box test builds for itself: a server process (or a cluster of them) on a free
// port with its own database and Redis prefix, real socket.io clients, and the helpers to talk to it.
// Every wait is bounded, so a broken server fails a test instead of hanging the run.

import { spawn } from 'node:child_process';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe } from 'node:test';
import pg from 'pg';
import { io } from 'socket.io-client';
import ioV2 from 'socket.io-client-v2';

export const NEXUS_BIN = process.env.NEXUS_BIN || '/root/.cache/nexus-target/debug/nexus-chat';
export const PG_ADMIN_URL = process.env.PG_ADMIN_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';
export const MODES = (process.env.TEST_MODES || 'sqlite,postgres')
  .split(',')
  .map((m) => m.trim())
  .filter(Boolean);
export const READY_TIMEOUT_MS = 30_000;
export const DEFAULT_TIMEOUT_MS = 5_000;

/** Passed as the payload to emit an event with no payload argument at all. */
export const NO_PAYLOAD = Symbol('no payload');

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO_MS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const isUuid = (s) => typeof s === 'string' && UUID_RE.test(s);
export const isIsoMillis = (s) => typeof s === 'string' && ISO_MS_RE.test(s);

const LIVE_LOG = Boolean(process.env.TEST_LOG);

// Variables a developer's shell may carry that must never leak into a test's server.
export const SCRUBBED_ENV = [
  'PORT', 'HOST', 'DATA_DIR', 'DATABASE_URL', 'REDIS_URL', 'REDIS_PREFIX', 'JWT_SECRET',
  'RATE_LIMIT_BURST', 'RATE_LIMIT_PER_SEC', 'MAX_MESSAGE_CHARS', 'INSTANCE_ID',
  'USER_RATE_LIMIT_BURST', 'USER_RATE_LIMIT_PER_SEC', 'ACCESS_REFRESH_MS',
];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const randomName = (prefix = 'user') => `${prefix}_${randomBytes(5).toString('hex')}`;

/** Runs `fn(mode)` inside one `describe` per backend selected by TEST_MODES. */
export function forEachMode(fn) {
  for (const mode of MODES) describe(`on ${mode}`, () => fn(mode));
}

/** A free TCP port on the loopback interface (for servers a test starts itself). */
export async function freePort() {
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

async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL and Redis worlds

async function pgAdmin(fn) {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates an empty database `nexus_test_<random>` and returns its name and URL. */
export async function createTestDatabase() {
  const name = `nexus_test_${randomBytes(6).toString('hex')}`;
  await pgAdmin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return { name, url: url.toString() };
}

export async function dropTestDatabase(name) {
  await pgAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}

/**
 * The Redis nodes REDIS_URL names: one for `redis://host:port`; for a Redis Cluster
 * (`redis-cluster://host:port?node=host:port&…`, or `host:port,host:port` as the server also
 * accepts) every seed node given.
 */
export const REDIS_IS_CLUSTER = /^rediss?-cluster:\/\//.test(REDIS_URL);
function redisSeeds() {
  const rest = REDIS_URL.replace(/^[a-z-]+:\/\//, '');
  const [authority, query = ''] = rest.split('?');
  const hostPart = authority.replace(/^.*@/, '').replace(/\/.*$/, '');
  const seeds = hostPart.split(',').filter(Boolean);
  for (const pair of query.split('&')) if (pair.startsWith('node=')) seeds.push(decodeURIComponent(pair.slice(5)));
  return seeds.map((hp) => {
    const i = hp.lastIndexOf(':');
    return i < 0 ? { host: hp, port: 6379 } : { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
  });
}

/**
 * Sends commands to one Redis node on one connection and resolves with their replies in order
 * (an error reply is an Error in the list). A tiny RESP client: the suite only needs a few
 * commands, which is not worth a dependency.
 */
export async function redisPipelineAt({ host, port }, commands) {
  const sock = net.connect(port, host);
  const payload = commands
    .map((args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('')}`)
    .join('');
  return withTimeout(
    new Promise((resolve, reject) => {
      let buf = Buffer.alloc(0);
      sock.on('error', reject);
      sock.on('connect', () => sock.write(payload));
      sock.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        const replies = [];
        let pos = 0;
        while (replies.length < commands.length) {
          const parsed = parseResp(buf, pos);
          if (!parsed) return;
          replies.push(parsed.value);
          pos = parsed.end;
        }
        sock.end();
        resolve(replies);
      });
    }),
    10_000,
    `redis ${commands[0]?.[0]} at ${host}:${port}`,
  ).finally(() => sock.destroy());
}

async function redisCommandAt(node, args) {
  const [reply] = await redisPipelineAt(node, [args]);
  if (reply instanceof Error) throw reply;
  return reply;
}

/** The masters of the Redis Cluster that REDIS_URL names (those not marked failed). */
export async function redisMasters() {
  if (!REDIS_IS_CLUSTER) return redisSeeds().slice(0, 1);
  let lastError;
  for (const seed of redisSeeds()) {
    try {
      const nodes = await redisCommandAt(seed, ['CLUSTER', 'NODES']);
      return nodes
        .split('\n')
        .map((line) => line.split(' '))
        .filter((f) => f.length > 8 && f[2].includes('master') && !f[2].includes('fail'))
        .map((f) => {
          const addr = f[1].split('@')[0];
          const i = addr.lastIndexOf(':');
          return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)), id: f[0], slots: f.slice(8) };
        });
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

/**
 * One Redis command. On a Redis Cluster it follows MOVED redirections, and `KEYS` asks every
 * master.
 */
export async function redisCommand(...args) {
  if (!REDIS_IS_CLUSTER) return redisCommandAt(redisSeeds()[0], args);
  if (String(args[0]).toUpperCase() === 'KEYS') {
    const all = [];
    for (const master of await redisMasters()) all.push(...(await redisCommandAt(master, args)));
    return all;
  }
  // A seed may be the master that a failover test killed: try the others.
  const seeds = redisSeeds();
  let node = seeds.shift();
  for (let hop = 0; hop < 5 + seeds.length; hop++) {
    try {
      return await redisCommandAt(node, args);
    } catch (err) {
      const moved = /^MOVED \d+ (\S+):(\d+)/.exec(err.message);
      if (moved) node = { host: moved[1], port: Number(moved[2]) };
      else if (err.code === 'ECONNREFUSED' && seeds.length) node = seeds.shift();
      else throw err;
    }
  }
  throw new Error(`redis ${args[0]}: too many redirections`);
}

/** Deletes every Redis key that starts with `prefix`. */
export async function deleteRedisKeys(prefix) {
  await deleteMatching(`${prefix}*`);
}

function parseResp(buf, pos) {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+': return { value: line, end: next };
    case '-': return { value: new Error(line), end: next };
    case ':': return { value: Number(line), end: next };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, end: next };
      if (buf.length < next + len + 2) return null;
      return { value: buf.toString('utf8', next, next + len), end: next + len + 2 };
    }
    case '*': {
      const n = Number(line);
      const items = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const item = parseResp(buf, p);
        if (!item) return null;
        items.push(item.value);
        p = item.end;
      }
      return { value: items, end: p };
    }
    default: throw new Error(`unexpected RESP type ${type}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Server processes

/**
 * Spawns `$NEXUS_BIN serve` on a free port and waits for `GET /ready`.
 *
 * mode 'sqlite' gets a fresh DATA_DIR (unless `dataDir` is given), mode 'postgres' a fresh database
 * (unless `databaseUrl` is given, as the cluster does); what is given is the caller's to remove. Output is kept in a buffer: `log()` returns it, and it is printed live
 * when TEST_LOG is set. `nofile` runs it under `ulimit -n nofile`. `stop()` sends SIGTERM (then SIGKILL after 10 s) and removes what was created;
 * `kill()` sends SIGKILL, like a crashed machine.
 */
export async function startServer({ mode = 'sqlite', env = {}, databaseUrl, dataDir, label = '', nofile } = {}) {
  const owned = { dataDir: null, database: null };
  let dbUrl = databaseUrl;
  if (mode === 'postgres' && !dbUrl) {
    const db = await createTestDatabase();
    owned.database = db.name;
    dbUrl = db.url;
  } else if (mode !== 'postgres' && mode !== 'sqlite') {
    throw new Error(`unknown mode ${mode}`);
  }

  const cleanup = async () => {
    if (owned.dataDir) await rm(owned.dataDir, { recursive: true, force: true }).catch(() => {});
    if (owned.database) await dropTestDatabase(owned.database).catch(() => {});
    owned.dataDir = owned.database = null;
  };

  const baseEnv = { ...process.env };
  for (const k of SCRUBBED_ENV) delete baseEnv[k];
  const jwtSecret = env.JWT_SECRET ?? randomBytes(24).toString('hex');

  let lastError;
  // The port is free when we pick it but another process may take it before the server binds:
  // try a few ports before giving up.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const childEnv = {
      ...baseEnv,
      HOST: '127.0.0.1',
      PORT: String(port),
      JWT_SECRET: jwtSecret,
      RUST_LOG: process.env.RUST_LOG || 'info',
      ...env,
    };
    if (mode === 'sqlite' && dataDir) {
      childEnv.DATA_DIR = dataDir;
    } else if (mode === 'sqlite') {
      owned.dataDir ??= await mkdtemp(path.join(tmpdir(), 'nexus-test-'));
      childEnv.DATA_DIR = owned.dataDir;
    } else {
      childEnv.DATABASE_URL = dbUrl;
    }

    const server = spawnServer(port, childEnv, label, { nofile });
    try {
      await server.waitReady();
    } catch (err) {
      lastError = err;
      server.kill();
      await server.exited;
      if (/address (already )?in use|AddrInUse/i.test(server.log())) continue;
      await cleanup();
      throw err;
    }
    return {
      ...server,
      mode,
      jwtSecret,
      env: childEnv,
      async stop() {
        await server.stop();
        await cleanup();
      },
      cleanup,
    };
  }
  await cleanup();
  throw lastError;
}

function spawnServer(port, childEnv, label, { nofile } = {}) {
  if (!NEXUS_BIN) throw new Error('NEXUS_BIN is empty');
  const url = `http://127.0.0.1:${port}`;
  const chunks = [];
  const tag = `[nexus${label ? ` ${label}` : ''} :${port}] `;
  // With `nofile`, the server runs under `ulimit -n nofile` (bash execs it: the pid is the server's).
  const [cmd, args] = nofile
    ? ['bash', ['-c', `ulimit -n ${Number(nofile)} && exec "$0" serve`, NEXUS_BIN]]
    : [NEXUS_BIN, ['serve']];
  const proc = spawn(cmd, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let spawnError = null;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
    // A binary that cannot be spawned never emits 'exit'.
    proc.on('error', (err) => {
      spawnError = err;
      chunks.push(`spawn error: ${err.message}\n`);
      resolve({ code: null, signal: null, error: err });
    });
  });
  let exitInfo = null;
  exited.then((info) => { exitInfo = info; });
  for (const stream of [proc.stdout, proc.stderr]) {
    stream.on('data', (d) => {
      const text = d.toString();
      chunks.push(text);
      if (LIVE_LOG) process.stderr.write(text.replace(/^/gm, tag));
    });
  }
  const log = () => chunks.join('');

  async function waitReady() {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let last = 'no answer yet';
    while (Date.now() < deadline) {
      if (spawnError) throw new Error(`could not start ${NEXUS_BIN}: ${spawnError.message}`);
      if (exitInfo) {
        throw new Error(
          `server ${label ? `${label} ` : ''}at ${url} exited before it was ready (code ${exitInfo.code}, signal ${exitInfo.signal}); its log:\n${log()}`,
        );
      }
      try {
        const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(2_000) });
        if (res.status === 200) return;
        last = `status ${res.status}: ${await res.text()}`;
      } catch (err) {
        last = err.message;
      }
      await sleep(50);
    }
    throw new Error(
      `server ${label ? `${label} ` : ''}at ${url} was not ready within ${READY_TIMEOUT_MS} ms (last /ready: ${last}); its log:\n${log()}`,
    );
  }

  return {
    url,
    port,
    proc,
    exited,
    log,
    waitReady,
    isRunning: () => !exitInfo && !spawnError,
    kill() {
      if (!exitInfo && !spawnError) proc.kill('SIGKILL');
    },
    async stop() {
      if (exitInfo || spawnError) return exitInfo;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      const info = await exited;
      clearTimeout(timer);
      return info;
    },
  };
}

/**
 * Starts `n` instances sharing one fresh PostgreSQL database, one random REDIS_PREFIX and one
 * JWT_SECRET. `stop()` stops them all, drops the database and deletes the prefix's keys.
 */
export async function startCluster(n, { env = {}, nofile } = {}) {
  const db = await createTestDatabase();
  let cluster;
  try {
    cluster = await startClusterOn(n, { databaseUrl: db.url, env, nofile });
  } catch (err) {
    await dropTestDatabase(db.name).catch(() => {});
    throw err;
  }
  return {
    ...cluster,
    database: db.name,
    async stop() {
      await cluster.stop();
      await dropTestDatabase(db.name).catch(() => {});
    },
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP

/** Sends a JSON request and returns `{status, headers, body, text}` (body is parsed JSON or null). */
export async function http(url, { method = 'GET', body, rawBody, token, headers = {} } = {}) {
  const h = { ...headers };
  let payload;
  if (rawBody !== undefined) {
    payload = rawBody;
    h['content-type'] ??= 'application/json';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  if (token) h.authorization = `Bearer ${token}`;
  const res = await fetch(url, { method, body: payload, headers: h, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, body: json, text };
}

export async function register(url, username, password = 'correct horse battery') {
  return http(`${url}/auth/register`, { method: 'POST', body: { username, password } });
}

export async function login(url, username, password = 'correct horse battery') {
  return http(`${url}/auth/login`, { method: 'POST', body: { username, password } });
}

/** Registers a fresh user and logs in: `{user: {id, username, createdAt}, token}`. */
export async function registerAndLogin(url, name = randomName(), password = 'correct horse battery') {
  const reg = await register(url, name, password);
  if (reg.status !== 201) throw new Error(`register ${name} answered ${reg.status}: ${reg.text}`);
  const res = await login(url, name, password);
  if (res.status !== 201) throw new Error(`login ${name} answered ${res.status}: ${res.text}`);
  return { user: reg.body, token: res.body.access_token, password };
}

// ---------------------------------------------------------------------------------------------
// JWT

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Signs an HS256 JWT the way the server is expected to verify it. */
export function signJwt(claims, secret) {
  const head = b64url({ alg: 'HS256', typ: 'JWT' });
  const body = b64url(claims);
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

export function decodeJwt(token) {
  const [head, body] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(head, 'base64url').toString()),
    claims: JSON.parse(Buffer.from(body, 'base64url').toString()),
  };
}

// ---------------------------------------------------------------------------------------------
// Sockets

/**
 * Connects a socket.io 4.x client and resolves once connected; rejects with the `connect_error`.
 * Defaults: websocket only (like the React client), no reconnection, a fresh Manager.
 * Pass `token: null` for no auth payload.
 */
export function connect(url, token, opts = {}) {
  const { timeoutMs = DEFAULT_TIMEOUT_MS, ...ioOpts } = opts;
  const socket = io(url, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: timeoutMs,
    ...(token != null ? { auth: { token } } : {}),
    ...ioOpts,
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`socket did not connect to ${url} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('connect_error');
      resolve(socket);
    });
    socket.once('connect_error', (err) => {
      clearTimeout(timer);
      socket.close();
      err.socket = socket;
      reject(err);
    });
  });
}

/** Resolves with the `connect_error` of a connection attempt that should be refused. */
export async function connectError(url, token, opts = {}) {
  try {
    const socket = await connect(url, token, opts);
    socket.close();
  } catch (err) {
    if (/did not connect/.test(err.message)) throw err;
    return err;
  }
  throw new Error('the server accepted a connection it should have refused');
}

/**
 * Connects a socket.io-client 2.x (Engine.IO protocol v3 / Socket.IO protocol v4) client. Resolves
 * with the socket once connected; rejects with the `error` event's payload (how v2 reports a refused
 * handshake) or a connect error.
 */
export function connectV2(url, opts = {}) {
  const { timeoutMs = DEFAULT_TIMEOUT_MS, ...ioOpts } = opts;
  const socket = ioV2(url, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: timeoutMs,
    ...ioOpts,
  });
  return new Promise((resolve, reject) => {
    const fail = (err) => {
      clearTimeout(timer);
      socket.close();
      reject(Object.assign(err instanceof Error ? err : new Error(String(err)), { payload: err, socket }));
    };
    const timer = setTimeout(
      () => fail(new Error(`v2 socket did not connect to ${url} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', fail);
    socket.once('connect_error', fail);
  });
}

/**
 * Emits `event` with `payload` (or no argument with NO_PAYLOAD) and resolves with the ack's first
 * argument. Works with 4.x and 2.x clients.
 */
export function emitAck(socket, event, payload, timeoutMs = DEFAULT_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no ack for ${event} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const args = payload === NO_PAYLOAD ? [] : [payload];
    socket.emit(event, ...args, (response) => {
      clearTimeout(timer);
      resolve(response);
    });
  });
}

/** Resolves with the first `event` whose payload satisfies `predicate`. Attach before acting. */
export function waitForEvent(socket, event, predicate = () => true, timeoutMs = DEFAULT_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const onEvent = (payload) => {
      if (!predicate(payload)) return;
      clearTimeout(timer);
      socket.off(event, onEvent);
      resolve(payload);
    };
    const timer = setTimeout(() => {
      socket.off(event, onEvent);
      reject(new Error(`no ${event} event matching the predicate within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on(event, onEvent);
  });
}

/** Records every `event` a socket receives from now on into the returned array. */
export function recordEvents(socket, event) {
  const seen = [];
  socket.on(event, (payload) => seen.push(payload));
  return seen;
}

/** Polls `condition` until it is true or `timeoutMs` passes; throws with `what` on timeout. */
export async function eventually(condition, what, timeoutMs = DEFAULT_TIMEOUT_MS, intervalMs = 20) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(intervalMs);
  }
}

/** Resolves once the socket is disconnected (bounded). */
export function waitForDisconnect(socket, timeoutMs = DEFAULT_TIMEOUT_MS) {
  if (!socket.connected) return Promise.resolve();
  return waitForEvent(socket, 'disconnect', () => true, timeoutMs);
}

// ---------------------------------------------------------------------------------------------
// Worlds

/**
 * One test's world: a server plus everything the test opens on it, all closed at the end.
 * `user()` registers and logs in; `connect()`/`connectV2()` track their sockets.
 */
export class World {
  constructor(server) {
    this.server = server;
    this.url = server.url;
    this.sockets = new Set();
  }

  user(name) {
    return registerAndLogin(this.url, name);
  }

  async connect(token, opts = {}, url = this.url) {
    const socket = await connect(url, token, opts);
    this.sockets.add(socket);
    return socket;
  }

  async connectV2(opts = {}, url = this.url) {
    const socket = await connectV2(url, opts);
    this.sockets.add(socket);
    return socket;
  }

  /** A registered user with `tabs` connected sockets: `{user, token, socket, sockets}`. */
  async online(name, { tabs = 1, url = this.url, opts = {} } = {}) {
    const { user, token } = await registerAndLogin(url, name);
    const sockets = [];
    for (let i = 0; i < tabs; i++) sockets.push(await this.connect(token, opts, url));
    return { user, token, socket: sockets[0], sockets };
  }

  closeSockets() {
    for (const s of this.sockets) s.close();
    this.sockets.clear();
  }
}

/**
 * Wraps a test body: starts a server with `opts` (see startServer), hands the body a World, and
 * always tears it down. The server log is printed when the body fails (or live with TEST_LOG).
 */
export function withServer(opts, body) {
  return async (t) => {
    const server = await startServer(opts);
    const world = new World(server);
    try {
      await body(world, t);
    } catch (err) {
      if (!LIVE_LOG) process.stderr.write(`----- server log (${server.url}, ${server.mode}) -----\n${server.log()}\n`);
      throw err;
    } finally {
      world.closeSockets();
      await server.stop();
    }
  };
}

/** Like withServer, for a cluster of `n` instances: the body gets `(world, cluster, t)`. */
export function withCluster(n, opts, body) {
  return async (t) => {
    const cluster = await startCluster(n, opts);
    const world = new World(cluster.nodes[0]);
    try {
      await body(world, cluster, t);
    } catch (err) {
      if (!LIVE_LOG) process.stderr.write(`----- cluster log -----\n${cluster.log()}\n`);
      throw err;
    } finally {
      world.closeSockets();
      await cluster.stop();
    }
  };
}

export { randomUUID };

// ---------------------------------------------------------------------------------------------
// Fault, soak and fuzz helpers

/**
 * Like startCluster, on a PostgreSQL database the caller owns (e.g. a throwaway PostgreSQL
 * cluster): `databaseUrl` is used as is and never dropped; the Redis prefix's keys are deleted.
 */
export async function startClusterOn(n, { databaseUrl, env = {}, nofile } = {}) {
  if (!databaseUrl) throw new Error('startClusterOn needs a databaseUrl');
  const redisPrefix = `nexus_test_${randomBytes(6).toString('hex')}`;
  const jwtSecret = env.JWT_SECRET ?? randomBytes(24).toString('hex');
  const sharedEnv = { REDIS_URL, REDIS_PREFIX: redisPrefix, JWT_SECRET: jwtSecret, ...env };
  const nodes = [];
  const cleanup = () => deleteDeploymentKeys(redisPrefix).catch(() => {});
  try {
    for (let i = 0; i < n; i++) {
      nodes.push(
        await startServer({
          mode: 'postgres',
          databaseUrl,
          label: `node${i}`,
          nofile,
          env: { ...sharedEnv, INSTANCE_ID: `${redisPrefix}-node${i}` },
        }),
      );
    }
  } catch (err) {
    await Promise.all(nodes.map((s) => s.stop()));
    await cleanup();
    throw err;
  }
  return {
    nodes,
    urls: nodes.map((s) => s.url),
    jwtSecret,
    redisPrefix,
    log: () => nodes.map((s, i) => `----- node${i} (${s.url}) -----\n${s.log()}`).join('\n'),
    async stop() {
      await Promise.all(nodes.map((s) => s.stop()));
      await cleanup();
    },
  };
}

/**
 * Resident memory and open file descriptors of a process (a server from startServer, or a pid),
 * from /proc: `{rssBytes, fds}`; null when the process is gone.
 */
export async function processStats(serverOrPid) {
  const pid = typeof serverOrPid === 'number' ? serverOrPid : serverOrPid.proc.pid;
  const { readFile, readdir } = await import('node:fs/promises');
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? NaN);
    const fds = (await readdir(`/proc/${pid}/fd`)).length;
    return { rssBytes: kb * 1024, fds };
  } catch {
    return null;
  }
}

// A deployment's keys are `<prefix>:…` plus the hash-tagged presence keys `{<prefix>:presence}:…`
// (which deleteRedisKeys(prefix) does not match).
const redisPatterns = (prefix) => [`${prefix}*`, `{${prefix}:*`];

/** Every key matching `pattern`, from every master: `[{node, keys}]`. */
async function scanNodes(pattern) {
  const found = [];
  for (const node of await redisMasters()) {
    const keys = [];
    let cursor = '0';
    do {
      const [nextCursor, page] = await redisCommandAt(node, ['SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000]);
      keys.push(...page);
      cursor = nextCursor;
    } while (cursor !== '0');
    found.push({ node, keys });
  }
  return found;
}

async function scanKeys(pattern) {
  return (await scanNodes(pattern)).flatMap((n) => n.keys);
}

/** Deletes the keys matching `pattern` where they live (one key per UNLINK: a cluster's keys span slots). */
async function deleteMatching(pattern) {
  for (const { node, keys } of await scanNodes(pattern)) {
    for (let i = 0; i < keys.length; i += 500) {
      await redisPipelineAt(node, keys.slice(i, i + 500).map((k) => ['UNLINK', k]));
    }
  }
}

/** How many Redis keys a deployment with `prefix` holds, presence keys included (SCAN). */
export async function countRedisKeys(prefix) {
  let n = 0;
  for (const pattern of redisPatterns(prefix)) n += (await scanKeys(pattern)).length;
  return n;
}

/** Deletes every key of a deployment with `prefix`, the `{prefix:presence}` keys included. */
export async function deleteDeploymentKeys(prefix) {
  for (const pattern of redisPatterns(prefix)) await deleteMatching(pattern);
}

/** Parses Prometheus text exposition into `Map<sample name with labels, number>`. */
export function parsePrometheus(text) {
  const samples = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (m) samples.set(m[1], Number(m[2]));
  }
  return samples;
}
