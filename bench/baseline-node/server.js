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
CREATE TABLE IF NOT EXISTS rooms (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  owner_id uuid NOT NULL REFERENCES users (id),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS room_members (
  room_id uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id),
  role text NOT NULL,
  joined_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (room_id, user_id)
);
CREATE INDEX IF NOT EXISTS room_members_user_idx ON room_members (user_id);
CREATE TABLE IF NOT EXISTS room_messages (
  seq bigserial PRIMARY KEY,
  id uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  room_id uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
  sender_id uuid NOT NULL REFERENCES users (id),
  content text NOT NULL,
  client_msg_id text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS room_messages_room_idx ON room_messages (room_id, seq);
CREATE UNIQUE INDEX IF NOT EXISTS room_messages_sender_client_msg_key ON room_messages (sender_id, client_msg_id);
CREATE TABLE IF NOT EXISTS read_cursors (
  user_id uuid NOT NULL REFERENCES users (id),
  conversation text NOT NULL,
  up_to_seq bigint NOT NULL,
  up_to_id uuid NOT NULL,
  read_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, conversation)
);
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
  roomsOf: { name: 'rooms_of', text: 'SELECT room_id FROM room_members WHERE user_id = $1' },
  createRoom: {
    name: 'create_room',
    text: 'INSERT INTO rooms (name, owner_id) VALUES ($1, $2) RETURNING id, name, owner_id, created_at',
  },
  addMembers: {
    name: 'add_members',
    // Unknown ids are skipped by the join with users; ids already in the room by ON CONFLICT.
    text: `INSERT INTO room_members (room_id, user_id, role)
           SELECT $1, u.id, 'member' FROM users u WHERE u.id = ANY($2::uuid[])
           ON CONFLICT DO NOTHING RETURNING user_id`,
  },
  addOwner: {
    name: 'add_owner',
    text: `INSERT INTO room_members (room_id, user_id, role) VALUES ($1, $2, 'owner')`,
  },
  roomById: { name: 'room_by_id', text: 'SELECT id, name, owner_id, created_at FROM rooms WHERE id = $1' },
  roomMembers: {
    name: 'room_members',
    text: `SELECT m.user_id, u.username, m.role, m.joined_at FROM room_members m JOIN users u ON u.id = m.user_id
           WHERE m.room_id = $1 ORDER BY m.joined_at, m.user_id`,
  },
  memberRole: {
    name: 'member_role',
    text: 'SELECT role FROM room_members WHERE room_id = $1 AND user_id = $2',
  },
  insertRoomMessage: {
    name: 'insert_room_message',
    // The membership check and the insert in one round trip: a non-member inserts nothing.
    text: `INSERT INTO room_messages (room_id, sender_id, content, client_msg_id)
           SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2)
           ON CONFLICT (sender_id, client_msg_id) DO NOTHING
           RETURNING id, content, sender_id, room_id, created_at`,
  },
  roomMessageByClientId: {
    name: 'room_message_by_client_id',
    text: `SELECT id, content, sender_id, room_id, created_at FROM room_messages
           WHERE sender_id = $1 AND client_msg_id = $2`,
  },
  roomLatest: {
    name: 'room_history_latest',
    text: `SELECT id, content, sender_id, room_id, created_at FROM room_messages
           WHERE room_id = $1 ORDER BY seq DESC LIMIT $2`,
  },
  roomBefore: {
    name: 'room_history_before',
    text: `SELECT id, content, sender_id, room_id, created_at FROM room_messages
           WHERE room_id = $1 AND seq < (SELECT seq FROM room_messages WHERE id = $2 AND room_id = $1)
           ORDER BY seq DESC LIMIT $3`,
  },
  // A cursor row per reader and conversation, moved only forward. The message must belong to the
  // conversation; the row is returned only when it moved.
  readDirect: {
    name: 'read_direct',
    text: `INSERT INTO read_cursors (user_id, conversation, up_to_seq, up_to_id, read_at)
           SELECT $1, $3, m.seq, m.id, now() FROM messages m
           WHERE m.id = $2 AND m.peer_lo = LEAST($1::uuid, $4::uuid) AND m.peer_hi = GREATEST($1::uuid, $4::uuid)
           ON CONFLICT (user_id, conversation) DO UPDATE
             SET up_to_seq = EXCLUDED.up_to_seq, up_to_id = EXCLUDED.up_to_id, read_at = EXCLUDED.read_at
             WHERE read_cursors.up_to_seq < EXCLUDED.up_to_seq
           RETURNING up_to_id, read_at`,
  },
  readRoom: {
    name: 'read_room',
    text: `INSERT INTO read_cursors (user_id, conversation, up_to_seq, up_to_id, read_at)
           SELECT $1, $3, m.seq, m.id, now() FROM room_messages m
           WHERE m.id = $2 AND m.room_id = $4
             AND EXISTS (SELECT 1 FROM room_members WHERE room_id = $4 AND user_id = $1)
           ON CONFLICT (user_id, conversation) DO UPDATE
             SET up_to_seq = EXCLUDED.up_to_seq, up_to_id = EXCLUDED.up_to_id, read_at = EXCLUDED.read_at
             WHERE read_cursors.up_to_seq < EXCLUDED.up_to_seq
           RETURNING up_to_id, read_at`,
  },
  cursor: {
    name: 'read_cursor',
    text: 'SELECT up_to_id FROM read_cursors WHERE user_id = $1 AND conversation = $2',
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
const roomMessageView = (m) => ({
  id: m.id,
  content: m.content,
  senderId: m.sender_id,
  roomId: m.room_id,
  createdAt: new Date(m.created_at).toISOString(),
});
const ackError = (code, message) => ({ error: { code, message } });
const ROOM_NAME_MAX = 100;
const ROOM_MAX_MEMBERS = 1000;
const TYPING_PER_SEC = 5;
const roomKey = (id) => `room:${id}`;
const directKey = (a, b) => (a < b ? `dm:${a}:${b}` : `dm:${b}:${a}`);

async function loadRoom(id) {
  const [room, members] = await Promise.all([
    pool.query({ ...Q.roomById, values: [id] }),
    pool.query({ ...Q.roomMembers, values: [id] }),
  ]);
  const r = room.rows[0];
  if (!r) return null;
  return {
    id: r.id,
    name: r.name,
    ownerId: r.owner_id,
    createdAt: new Date(r.created_at).toISOString(),
    members: members.rows.map((m) => ({
      id: m.user_id,
      username: m.username,
      role: m.role,
      joinedAt: new Date(m.joined_at).toISOString(),
    })),
  };
}

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
// Benchmark fairness: with `node --expose-gc`, the bench asks for a full collection before it
// samples resident memory, so V8's garbage-collection timing does not decide the figure.
if (typeof global.gc === 'function') {
  app.post('/debug/gc', (req, res) => {
    global.gc();
    res.json({ collected: true });
  });
}
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
  // The socket.io way to fan out to a group: every socket joins its rooms' socket.io rooms,
  // here at connect and, for sockets elsewhere, through the adapter when a member is added.
  pool.query({ ...Q.roomsOf, values: [me.id] })
    .then(({ rows }) => socket.join(rows.map((r) => roomKey(r.room_id))))
    .catch((err) => console.error('joining rooms failed', err));
  // typing: at most TYPING_PER_SEC per socket (a fixed one-second window), and the
  // conversations this socket said it is typing in, for typing: false at disconnect.
  let typingWindow = 0;
  let typingCount = 0;
  const typingIn = new Map();

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

  socket.on('room:create', async (payload, ack) => {
    if (typeof ack !== 'function') ack = () => {};
    const p = payload || {};
    const name = typeof p.name === 'string' ? p.name.trim() : '';
    const ids = Array.isArray(p.memberIds) ? p.memberIds : [];
    if (!name || name.length > ROOM_NAME_MAX || !ids.every((id) => typeof id === 'string' && UUID_RE.test(id))) {
      return ack(ackError('invalid_payload', 'name and memberIds are required'));
    }
    const others = [...new Set(ids)].filter((id) => id !== me.id);
    if (others.length + 1 > ROOM_MAX_MEMBERS) return ack(ackError('room_full', 'too many members'));
    const client = await pool.connect();
    let roomId;
    try {
      await client.query('BEGIN');
      const { rows } = await client.query({ ...Q.createRoom, values: [name, me.id] });
      roomId = rows[0].id;
      await client.query({ ...Q.addOwner, values: [roomId, me.id] });
      const added = await client.query({ ...Q.addMembers, values: [roomId, others] });
      if (added.rows.length !== others.length) {
        await client.query('ROLLBACK');
        return ack(ackError('unknown_user', 'memberIds names no user'));
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      console.error('room:create failed', err);
      return ack(ackError('internal', 'internal error'));
    } finally {
      client.release();
    }
    try {
      const room = await loadRoom(roomId);
      const userRooms = room.members.map((m) => `user:${m.id}`);
      io.in(userRooms).socketsJoin(roomKey(roomId));
      ack(room);
      io.to(userRooms).emit('room:updated', room);
    } catch (err) {
      console.error('room:create failed', err);
      ack(ackError('internal', 'internal error'));
    }
  });

  socket.on('room:add', async (payload, ack) => {
    if (typeof ack !== 'function') ack = () => {};
    const p = payload || {};
    const ids = Array.isArray(p.userIds) ? p.userIds : null;
    if (typeof p.roomId !== 'string' || !UUID_RE.test(p.roomId) || !ids
        || !ids.every((id) => typeof id === 'string' && UUID_RE.test(id))) {
      return ack(ackError('invalid_payload', 'roomId and userIds are required'));
    }
    try {
      const role = await pool.query({ ...Q.memberRole, values: [p.roomId, me.id] });
      if (!role.rows[0]) return ack(ackError('not_found', 'Room not found'));
      if (role.rows[0].role !== 'owner') return ack(ackError('forbidden', 'only the owner may add members'));
      const added = await pool.query({ ...Q.addMembers, values: [p.roomId, [...new Set(ids)]] });
      const room = await loadRoom(p.roomId);
      if (added.rows.length > 0) {
        io.in(added.rows.map((r) => `user:${r.user_id}`)).socketsJoin(roomKey(p.roomId));
      }
      ack(room);
      io.to(room.members.map((m) => `user:${m.id}`)).emit('room:updated', room);
    } catch (err) {
      console.error('room:add failed', err);
      ack(ackError('internal', 'internal error'));
    }
  });

  socket.on('room:send', async (payload, ack) => {
    if (typeof ack !== 'function') ack = () => {};
    const p = payload || {};
    if (typeof p.roomId !== 'string' || !UUID_RE.test(p.roomId) || typeof p.content !== 'string') {
      return ack(ackError('invalid_payload', 'roomId and content are required'));
    }
    const trimmed = p.content.trim();
    if (!trimmed) return ack(ackError('invalid_payload', 'content must not be empty'));
    if (trimmed.length > MAX_CHARS) return ack(ackError('content_too_long', 'content is too long'));
    const clientMsgId = typeof p.clientMsgId === 'string' && p.clientMsgId.length <= 64 ? p.clientMsgId : null;
    try {
      const { rows } = await pool.query({
        ...Q.insertRoomMessage,
        values: [p.roomId, me.id, p.content, clientMsgId],
      });
      if (!rows[0]) {
        const found = clientMsgId
          ? await pool.query({ ...Q.roomMessageByClientId, values: [me.id, clientMsgId] })
          : { rows: [] };
        if (!found.rows[0] || found.rows[0].room_id !== p.roomId) return ack(ackError('not_found', 'Room not found'));
        return ack(roomMessageView(found.rows[0]));
      }
      const view = roomMessageView(rows[0]);
      ack(view);
      io.to(roomKey(p.roomId)).emit('room:message', { ...view, senderUsername: me.username });
    } catch (err) {
      console.error('room:send failed', err);
      ack(ackError('unavailable', 'the message was not stored'));
    }
  });

  socket.on('room:history', async (payload, ack) => {
    if (typeof ack !== 'function') return;
    const p = payload || {};
    if (typeof p.roomId !== 'string' || !UUID_RE.test(p.roomId)) {
      return ack(ackError('invalid_payload', 'roomId is required'));
    }
    const limit = Number.isInteger(p.limit) && p.limit >= 1 && p.limit <= 100 ? p.limit : 100;
    try {
      const role = await pool.query({ ...Q.memberRole, values: [p.roomId, me.id] });
      if (!role.rows[0]) return ack(ackError('not_found', 'Room not found'));
      let rows;
      if (typeof p.before === 'string' && UUID_RE.test(p.before)) {
        ({ rows } = await pool.query({ ...Q.roomBefore, values: [p.roomId, p.before, limit] }));
      } else {
        ({ rows } = await pool.query({ ...Q.roomLatest, values: [p.roomId, limit] }));
      }
      ack(rows.reverse().map(roomMessageView));
    } catch (err) {
      console.error('room:history failed', err);
      ack(ackError('internal', 'internal error'));
    }
  });

  socket.on('conversation:read', async (payload, ack) => {
    if (typeof ack !== 'function') ack = () => {};
    const p = payload || {};
    const direct = typeof p.receiverId === 'string' && UUID_RE.test(p.receiverId);
    const room = typeof p.roomId === 'string' && UUID_RE.test(p.roomId);
    if (direct === room || typeof p.upTo !== 'string' || !UUID_RE.test(p.upTo)) {
      return ack(ackError('invalid_payload', 'receiverId or roomId, and upTo, are required'));
    }
    const conversation = direct ? directKey(me.id, p.receiverId) : roomKey(p.roomId);
    try {
      const q = direct ? Q.readDirect : Q.readRoom;
      const { rows } = await pool.query({ ...q, values: [me.id, p.upTo, conversation, direct ? p.receiverId : p.roomId] });
      if (!rows[0]) {
        // Not moved (an older upTo) or not a message of this conversation.
        const cur = await pool.query({ ...Q.cursor, values: [me.id, conversation] });
        if (!cur.rows[0]) return ack(ackError('not_found', 'no such message in this conversation'));
        return ack({ upTo: cur.rows[0].up_to_id });
      }
      ack({ upTo: rows[0].up_to_id });
      const readAt = new Date(rows[0].read_at).toISOString();
      if (direct) {
        io.to(`user:${p.receiverId}`).emit('conversation:read', { readerId: me.id, peerId: me.id, upTo: p.upTo, readAt });
        socket.to(`user:${me.id}`).emit('conversation:read', { readerId: me.id, peerId: p.receiverId, upTo: p.upTo, readAt });
      } else {
        socket.to(roomKey(p.roomId)).emit('conversation:read', { readerId: me.id, roomId: p.roomId, upTo: p.upTo, readAt });
      }
    } catch (err) {
      console.error('conversation:read failed', err);
      ack(ackError('internal', 'internal error'));
    }
  });

  const announceTyping = (p, typing) => {
    const event = { userId: me.id, username: me.username, typing };
    if (p.roomId) {
      io.to(roomKey(p.roomId)).except(`user:${me.id}`).emit('typing', { ...event, roomId: p.roomId });
    } else {
      io.to(`user:${p.receiverId}`).emit('typing', { ...event, peerId: me.id });
    }
  };

  socket.on('typing', (payload, ack) => {
    const now = Date.now();
    if (now - typingWindow >= 1000) {
      typingWindow = now;
      typingCount = 0;
    }
    if (++typingCount > TYPING_PER_SEC) return;
    if (typeof ack !== 'function') ack = () => {};
    const p = payload || {};
    const direct = typeof p.receiverId === 'string' && UUID_RE.test(p.receiverId) && p.receiverId !== me.id;
    const room = typeof p.roomId === 'string' && UUID_RE.test(p.roomId);
    if (direct === room || typeof p.typing !== 'boolean') {
      return ack(ackError('invalid_payload', 'receiverId or roomId, and typing, are required'));
    }
    // Room membership from memory: this socket's socket.io rooms.
    if (room && !socket.rooms.has(roomKey(p.roomId))) return ack(ackError('not_found', 'Room not found'));
    const target = room ? { roomId: p.roomId } : { receiverId: p.receiverId };
    const key = room ? roomKey(p.roomId) : `user:${p.receiverId}`;
    if (p.typing) typingIn.set(key, target);
    else typingIn.delete(key);
    ack({});
    announceTyping(target, p.typing);
  });

  socket.on('disconnect', async () => {
    for (const target of typingIn.values()) announceTyping(target, false);
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
