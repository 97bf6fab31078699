// The benchmark baseline: the Nexus Chat wire contract implemented the way a typical Node.js
// deployment would — Express + bcryptjs + jsonwebtoken for REST, Socket.IO 4 with the Redis
// adapter for fan-out across instances, a pg Pool with named (prepared) statements, presence in
// Redis. It is meant to be a fair, idiomatic opponent, not a strawman.
//
// Environment: PORT, HOST (127.0.0.1), DATABASE_URL, REDIS_URL, REDIS_PREFIX, JWT_SECRET,
// INSTANCE_ID, BCRYPT_COST (10), DB_POOL_SIZE (16).
'use strict';

const crypto = require('node:crypto');
const http = require('node:http');
const express = require('express');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const Redis = require('ioredis');
const { Pool } = require('pg');
const bcrypt = require('bcryptjs');
const jwt = require('jsonwebtoken');

const PORT = Number(process.env.PORT || 3000);
const HOST = process.env.HOST || '127.0.0.1';
const DATABASE_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/chat';
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const PREFIX = process.env.REDIS_PREFIX || 'chat';
const JWT_SECRET = process.env.JWT_SECRET;
const INSTANCE_ID = process.env.INSTANCE_ID || `node-${process.pid}`;
const BCRYPT_COST = Number(process.env.BCRYPT_COST || 10);
const POOL_SIZE = Number(process.env.DB_POOL_SIZE || 16);
const MAX_CHARS = 10000;

if (!JWT_SECRET) {
  console.error('JWT_SECRET is required');
  process.exit(1);
}

// A KeyObject made once: given a plain string, jsonwebtoken 9 first tries (and fails) to parse
// it as a PEM public key on every call, which costs about a millisecond per handshake.
const JWT_KEY = crypto.createSecretKey(Buffer.from(JWT_SECRET, 'utf8'));

const pool = new Pool({ connectionString: DATABASE_URL, max: POOL_SIZE });
const redis = new Redis(REDIS_URL);
const pub = new Redis(REDIS_URL);
const sub = pub.duplicate();

const keys = {
  onlineCount: `${PREFIX}:online:count`,
  onlineProfile: `${PREFIX}:online:profile`,
};

const SCHEMA = `
CREATE TABLE IF NOT EXISTS users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  username text NOT NULL,
  password_hash text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS users_username_lower_idx ON users (lower(username));
CREATE TABLE IF NOT EXISTS messages (
  seq bigserial PRIMARY KEY,
  id uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  sender_id uuid NOT NULL REFERENCES users (id),
  receiver_id uuid NOT NULL REFERENCES users (id),
  peer_lo uuid NOT NULL,
  peer_hi uuid NOT NULL,
  content text NOT NULL,
  client_msg_id text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS messages_conversation_idx ON messages (peer_lo, peer_hi, seq);
CREATE INDEX IF NOT EXISTS messages_sender_idx ON messages (sender_id, seq);
CREATE INDEX IF NOT EXISTS messages_receiver_idx ON messages (receiver_id, seq);
CREATE UNIQUE INDEX IF NOT EXISTS messages_sender_client_msg_key ON messages (sender_id, client_msg_id);
`;

// Named statements: pg prepares each once per connection and reuses the plan.
const Q = {
  createUser: {
    name: 'create_user',
    text: 'INSERT INTO users (username, password_hash) VALUES ($1, $2) RETURNING id, username, created_at',
  },
  userByName: {
    name: 'user_by_name',
    text: 'SELECT id, username, password_hash FROM users WHERE lower(username) = lower($1)',
  },
  userById: { name: 'user_by_id', text: 'SELECT id, username, created_at FROM users WHERE id = $1' },
  insertMessage: {
    name: 'insert_message',
    text: `INSERT INTO messages (sender_id, receiver_id, peer_lo, peer_hi, content, client_msg_id)
           VALUES ($1, $2, LEAST($1::uuid, $2::uuid), GREATEST($1::uuid, $2::uuid), $3, $4)
           ON CONFLICT (sender_id, client_msg_id) DO NOTHING
           RETURNING id, content, sender_id, receiver_id, created_at`,
  },
  messageByClientId: {
    name: 'message_by_client_id',
    text: `SELECT id, content, sender_id, receiver_id, created_at FROM messages
           WHERE sender_id = $1 AND client_msg_id = $2`,
  },
  latest: {
    name: 'history_latest',
    text: `SELECT id, content, sender_id, receiver_id, created_at FROM messages
           WHERE peer_lo = LEAST($1::uuid, $2::uuid) AND peer_hi = GREATEST($1::uuid, $2::uuid)
           ORDER BY seq DESC LIMIT $3`,
  },
  before: {
    name: 'history_before',
    text: `SELECT id, content, sender_id, receiver_id, created_at FROM messages
           WHERE peer_lo = LEAST($1::uuid, $2::uuid) AND peer_hi = GREATEST($1::uuid, $2::uuid)
             AND seq < (SELECT seq FROM messages WHERE id = $3)
           ORDER BY seq DESC LIMIT $4`,
  },
  sync: {
    name: 'sync_after',
    text: `SELECT id, content, sender_id, receiver_id, created_at FROM messages
           WHERE (sender_id = $1 OR receiver_id = $1) AND seq > (SELECT seq FROM messages WHERE id = $2)
           ORDER BY seq LIMIT $3`,
  },
};

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const USERNAME_RE = /^[A-Za-z0-9_.-]{3,32}$/;

const userView = (u, online) => ({
  id: u.id,
  username: u.username,
  status: online ? 'online' : 'offline',
  createdAt: new Date(u.created_at).toISOString(),
});
const messageView = (m) => ({
  id: m.id,
  content: m.content,
  senderId: m.sender_id,
  receiverId: m.receiver_id,
  createdAt: new Date(m.created_at).toISOString(),
});
const ackError = (code, message) => ({ error: { code, message } });

// ---------------------------------------------------------------- REST

const REASONS = { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 409: 'Conflict' };
const fail = (res, status, message) =>
  res.status(status).json(status >= 500
    ? { statusCode: status, message: 'Internal server error' }
    : { statusCode: status, message, error: REASONS[status] });

const app = express();
app.disable('x-powered-by');
app.use((req, res, next) => {
  res.setHeader('Access-Control-Allow-Origin', '*');
  if (req.method === 'OPTIONS') {
    res.setHeader('Access-Control-Allow-Methods', 'GET,HEAD,PUT,PATCH,POST,DELETE');
    const h = req.headers['access-control-request-headers'];
    if (h) res.setHeader('Access-Control-Allow-Headers', h);
    return res.sendStatus(204);
  }
  next();
});
app.use(express.json({ limit: '1mb' }));

const credentials = (body) => {
  const { username, password } = body || {};
  if (typeof username !== 'string' || !USERNAME_RE.test(username)) return null;
  if (typeof password !== 'string' || password.length < 1 || password.length > 72) return null;
  return { username, password };
};

app.post('/auth/register', async (req, res) => {
  const c = credentials(req.body);
  if (!c) return fail(res, 400, 'username and password are required');
  try {
    const hash = await bcrypt.hash(c.password, BCRYPT_COST);
    const { rows } = await pool.query({ ...Q.createUser, values: [c.username, hash] });
    res.status(201).json(userView(rows[0], false));
  } catch (err) {
    if (err.code === '23505') return fail(res, 409, 'Username already exists');
    console.error('register failed', err);
    fail(res, 500);
  }
});

app.post('/auth/login', async (req, res) => {
  const c = credentials(req.body);
  if (!c) return fail(res, 401, 'Invalid credentials');
  try {
    const { rows } = await pool.query({ ...Q.userByName, values: [c.username] });
    const user = rows[0];
    if (!user || !(await bcrypt.compare(c.password, user.password_hash))) {
      return fail(res, 401, 'Invalid credentials');
    }
    const access_token = jwt.sign({ sub: user.id, username: user.username }, JWT_KEY, { algorithm: 'HS256', expiresIn: '1d' });
    res.status(201).json({ access_token, user: { id: user.id, username: user.username } });
  } catch (err) {
    console.error('login failed', err);
    fail(res, 500);
  }
});

app.get('/health', (req, res) => res.json({ status: 'ok' }));
app.get('/ready', async (req, res) => {
  try {
    await pool.query('SELECT 1');
    await redis.ping();
    res.json({ status: 'ready' });
  } catch (err) {
    res.status(503).json({ status: 'unavailable', error: String(err.message || err) });
  }
});
app.get('/api/instance', (req, res) => res.json({ instanceId: INSTANCE_ID, version: 'baseline' }));
app.use((err, req, res, next) => {
  if (err && err.type === 'entity.parse.failed') return fail(res, 400, 'malformed JSON');
  next(err);
});

// ---------------------------------------------------------------- Socket.IO

const server = http.createServer(app);
const io = new Server(server, { cors: { origin: '*' } });
io.adapter(createAdapter(pub, sub, { key: `${PREFIX}#socket.io` }));

io.use(async (socket, next) => {
  try {
    let token = socket.handshake.auth && socket.handshake.auth.token;
    const header = socket.handshake.headers.authorization;
    if (!token && header && header.startsWith('Bearer ')) token = header.slice(7);
    if (!token) return next(new Error('Unauthorized'));
    const claims = jwt.verify(token, JWT_KEY, { algorithms: ['HS256'] });
    const { rows } = await pool.query({ ...Q.userById, values: [claims.sub] });
    if (!rows[0]) return next(new Error('Unauthorized'));
    socket.data.user = rows[0];
    next();
  } catch (err) {
    next(new Error('Unauthorized'));
  }
});

io.on('connection', async (socket) => {
  const me = socket.data.user;
  socket.join(`user:${me.id}`);

  socket.on('user:init', async (_payload, ack) => {
    if (typeof ack !== 'function') return;
    try {
      const profiles = await redis.hvals(keys.onlineProfile);
      const users = profiles.map((p) => JSON.parse(p));
      if (!users.some((u) => u.id === me.id)) users.push(userView(me, true));
      ack(users);
    } catch (err) {
      console.error('user:init failed', err);
      ack(ackError('internal', 'internal error'));
    }
  });

  socket.on('message:send', async (payload, ack) => {
    if (typeof ack !== 'function') ack = () => {};
    const p = payload || {};
    if (typeof p.receiverId !== 'string' || !UUID_RE.test(p.receiverId) || typeof p.content !== 'string') {
      return ack(ackError('invalid_payload', 'receiverId and content are required'));
    }
    const trimmed = p.content.trim();
    if (!trimmed) return ack(ackError('invalid_payload', 'content must not be empty'));
    if (trimmed.length > MAX_CHARS) return ack(ackError('content_too_long', 'content is too long'));
    if (p.receiverId === me.id) return ack(ackError('invalid_payload', 'receiverId must be another user'));
    const clientMsgId = typeof p.clientMsgId === 'string' && p.clientMsgId.length <= 64 ? p.clientMsgId : null;
    try {
      const { rows } = await pool.query({
        ...Q.insertMessage,
        values: [me.id, p.receiverId, p.content, clientMsgId],
      });
      if (!rows[0]) {
        // A retry of a stored message: answer with the original, emit nothing.
        const found = await pool.query({ ...Q.messageByClientId, values: [me.id, clientMsgId] });
        return ack(messageView(found.rows[0]));
      }
      const view = messageView(rows[0]);
      ack(view);
      io.to(`user:${p.receiverId}`).to(`user:${me.id}`).emit('message:new', { ...view, senderUsername: me.username });
    } catch (err) {
      if (err.code === '23503') return ack(ackError('unknown_receiver', 'receiverId names no user'));
      console.error('message:send failed', err);
      ack(ackError('unavailable', 'the message was not stored'));
    }
  });

  socket.on('message:history', async (payload, ack) => {
    if (typeof ack !== 'function') return;
    const p = payload || {};
    if (typeof p.receiverId !== 'string' || !UUID_RE.test(p.receiverId)) {
      return ack(ackError('invalid_payload', 'receiverId is required'));
    }
    const limit = Number.isInteger(p.limit) && p.limit >= 1 && p.limit <= 100 ? p.limit : 100;
    try {
      let rows;
      if (typeof p.before === 'string' && UUID_RE.test(p.before)) {
        ({ rows } = await pool.query({ ...Q.before, values: [me.id, p.receiverId, p.before, limit] }));
      } else {
        ({ rows } = await pool.query({ ...Q.latest, values: [me.id, p.receiverId, limit] }));
      }
      ack(rows.reverse().map(messageView));
    } catch (err) {
      console.error('message:history failed', err);
      ack(ackError('internal', 'internal error'));
    }
  });

  socket.on('message:sync', async (payload, ack) => {
    if (typeof ack !== 'function') return;
    const p = payload || {};
    if (typeof p.after !== 'string' || !UUID_RE.test(p.after)) {
      return ack(ackError('invalid_payload', 'after is required'));
    }
    const limit = Number.isInteger(p.limit) && p.limit >= 1 && p.limit <= 100 ? p.limit : 100;
    try {
      const { rows } = await pool.query({ ...Q.sync, values: [me.id, p.after, limit + 1] });
      ack({ messages: rows.slice(0, limit).map(messageView), hasMore: rows.length > limit });
    } catch (err) {
      console.error('message:sync failed', err);
      ack(ackError('internal', 'internal error'));
    }
  });

  socket.on('disconnect', async () => {
    try {
      const left = await redis.hincrby(keys.onlineCount, me.id, -1);
      if (left <= 0) {
        await redis.multi().hdel(keys.onlineCount, me.id).hdel(keys.onlineProfile, me.id).exec();
        socket.broadcast.emit('user:offline', me.id);
      }
    } catch (err) {
      console.error('presence update failed', err);
    }
  });

  try {
    const count = await redis.hincrby(keys.onlineCount, me.id, 1);
    if (count === 1) {
      const view = userView(me, true);
      await redis.hset(keys.onlineProfile, me.id, JSON.stringify(view));
      io.emit('user:online', view);
    }
  } catch (err) {
    console.error('presence update failed', err);
  }
});

// ---------------------------------------------------------------- start-up

async function migrate() {
  const client = await pool.connect();
  try {
    // Instances start together: one creates the schema, the others wait for it.
    await client.query('SELECT pg_advisory_lock(7301)');
    await client.query(SCHEMA);
  } finally {
    await client.query('SELECT pg_advisory_unlock(7301)').catch(() => {});
    client.release();
  }
}

migrate()
  .then(() => {
    server.listen(PORT, HOST, () => console.log(`baseline ${INSTANCE_ID} listening on ${HOST}:${PORT}`));
  })
  .catch((err) => {
    console.error('start-up failed', err);
    process.exit(1);
  });

const shutdown = () => {
  io.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
