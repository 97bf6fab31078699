// The Socket.io handshake: who is refused with connect_error "Unauthorized", and every way a valid
// token may be presented.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  NO_PAYLOAD, connectError, emitAck, eventually, forEachMode, http, randomName, signJwt, withServer,
} from '../lib/harness.mjs';
import { assertOnlineUser } from '../lib/expect.mjs';

const now = () => Math.floor(Date.now() / 1000);

async function assertRefused(url, token, opts = {}) {
  const err = await connectError(url, token, opts);
  assert.equal(err.message, 'Unauthorized', `connect_error message: ${err.message}`);
}

/** The socket is really the user: user:init lists them. */
async function assertIsUser(socket, user) {
  const users = await emitAck(socket, 'user:init', null);
  assert.ok(Array.isArray(users), `user:init ack is an array: ${JSON.stringify(users)}`);
  const me = users.filter((u) => u.id === user.id);
  assert.equal(me.length, 1, 'the caller is listed once');
  assertOnlineUser(me[0], { username: user.username });
}

forEachMode((mode) => {
  test('a socket without a token is refused with Unauthorized', withServer({ mode }, async (w) => {
    await assertRefused(w.url, null);
    await assertRefused(w.url, null, { transports: ['polling', 'websocket'] });
    await assertRefused(w.url, '');
  }));

  test('a garbage token is refused with Unauthorized', withServer({ mode }, async (w) => {
    for (const token of ['garbage', 'a.b.c', 'Bearer xyz', 42]) await assertRefused(w.url, token);
  }));

  test('a token signed with another secret is refused with Unauthorized', withServer({ mode }, async (w) => {
    const { user } = await w.user(randomName('mallory'));
    const forged = signJwt({ sub: user.id, username: user.username, iat: now(), exp: now() + 3600 }, 'not-the-secret');
    await assertRefused(w.url, forged);
    await assertRefused(w.url, null, { extraHeaders: { Authorization: `Bearer ${forged}` }, transports: ['polling', 'websocket'] });
  }));

  test('an expired token is refused with Unauthorized', withServer({ mode }, async (w) => {
    const { user } = await w.user(randomName('late'));
    const expired = signJwt(
      { sub: user.id, username: user.username, iat: now() - 2 * 86_400, exp: now() - 86_400 },
      w.server.jwtSecret,
    );
    await assertRefused(w.url, expired);
    // No grace period, as with the NestJS app (jsonwebtoken's `expiresIn: -1`): expired a
    // second ago is expired, at the handshake and over REST.
    const justExpired = signJwt({ sub: user.id, username: user.username, iat: now() - 60, exp: now() - 1 }, w.server.jwtSecret);
    await assertRefused(w.url, justExpired);
    assert.equal((await http(`${w.url}/api/me`, { token: justExpired })).status, 401);
  }));

  test('a token signed by the old app with the same secret is accepted', withServer({ mode }, async (w) => {
    const { user } = await w.user(randomName('legacy'));
    const token = signJwt({ sub: user.id, username: user.username, iat: now(), exp: now() + 86_400 }, w.server.jwtSecret);
    await assertIsUser(await w.connect(token), user);
  }));

  test('a valid token in auth connects over websocket only', withServer({ mode }, async (w) => {
    const { user, token } = await w.user(randomName('ws'));
    const socket = await w.connect(token, { transports: ['websocket'] });
    assert.equal(socket.io.engine.transport.name, 'websocket');
    await assertIsUser(socket, user);
  }));

  test('a valid token in auth connects over polling and upgrades to websocket', withServer({ mode }, async (w) => {
    const { user, token } = await w.user(randomName('poll'));
    const socket = await w.connect(token, { transports: ['polling', 'websocket'] });
    await eventually(() => socket.io.engine.transport.name === 'websocket', 'the transport upgrades to websocket');
    await assertIsUser(socket, user);
  }));

  test('a valid token in auth works over polling alone', withServer({ mode }, async (w) => {
    const { user, token } = await w.user(randomName('pollonly'));
    const socket = await w.connect(token, { transports: ['polling'] });
    assert.equal(socket.io.engine.transport.name, 'polling');
    await assertIsUser(socket, user);
  }));

  test('a valid token in the Authorization header connects', withServer({ mode }, async (w) => {
    const { user, token } = await w.user(randomName('header'));
    const socket = await w.connect(null, {
      transports: ['polling', 'websocket'],
      extraHeaders: { Authorization: `Bearer ${token}` },
    });
    await assertIsUser(socket, user);
    const wsOnly = await w.connect(null, { transports: ['websocket'], extraHeaders: { Authorization: `Bearer ${token}` } });
    const users = await emitAck(wsOnly, 'user:init', NO_PAYLOAD);
    assert.ok(users.some((u) => u.id === user.id));
  }));
});
