// Old clients: socket.io-client 2.x (Socket.IO protocol v4 over Engine.IO v3) with the token in the
// handshake query or the Authorization header.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import ioV2 from 'socket.io-client-v2';
import {
  emitAck, forEachMode, randomName, sleep, waitForEvent, withServer,
} from '../lib/harness.mjs';
import { assertMessage, assertMessageNew, assertOk, assertOnlineUser } from '../lib/expect.mjs';

forEachMode((mode) => {
  test('a 2.x client with the token in the query connects, lists users, sends and receives', withServer({ mode }, async (w) => {
    const old = await w.user(randomName('oldtimer'));
    const modern = await w.online(randomName('modern'));
    const v2 = await w.connectV2({ query: { token: old.token } });
    assert.ok(v2.connected);

    const users = await emitAck(v2, 'user:init', null);
    assert.ok(Array.isArray(users), JSON.stringify(users));
    const me = users.filter((u) => u.id === old.user.id);
    assert.equal(me.length, 1);
    assertOnlineUser(me[0], { username: old.user.username });

    const atModern = waitForEvent(modern.socket, 'message:new');
    const atOld = waitForEvent(v2, 'message:new', (m) => m.content === 'from 2.x');
    const ack = await emitAck(v2, 'message:send', { receiverId: modern.user.id, content: 'from 2.x' });
    assertMessage(assertOk(ack), { senderId: old.user.id, receiverId: modern.user.id, content: 'from 2.x' });
    assert.deepEqual(await atModern, { ...ack, senderUsername: old.user.username });
    assert.deepEqual(await atOld, { ...ack, senderUsername: old.user.username });

    const reply = waitForEvent(v2, 'message:new', (m) => m.content === 'from 4.x');
    const replyAck = await emitAck(modern.socket, 'message:send', { receiverId: old.user.id, content: 'from 4.x' });
    const got = await reply;
    assertMessageNew(got, { id: replyAck.id, senderUsername: modern.user.username });

    const history = await emitAck(v2, 'message:history', { receiverId: modern.user.id });
    assert.deepEqual(history, [ack, replyAck]);
  }));

  test('a 2.x client over polling with the upgrade works as well', withServer({ mode }, async (w) => {
    const old = await w.user(randomName('oldpoll'));
    const v2 = await w.connectV2({ query: { token: old.token }, transports: ['polling', 'websocket'] });
    const users = await emitAck(v2, 'user:init', null);
    assert.ok(users.some((u) => u.id === old.user.id));
  }));

  test('a 2.x client with the token in the Authorization header connects', withServer({ mode }, async (w) => {
    const old = await w.user(randomName('oldheader'));
    for (const transports of [['websocket'], ['polling', 'websocket']]) {
      const v2 = await w.connectV2({ transports, extraHeaders: { Authorization: `Bearer ${old.token}` } });
      const users = await emitAck(v2, 'user:init', null);
      assert.ok(users.some((u) => u.id === old.user.id), `over ${transports}`);
    }
  }));

  // socketioxide encodes a refused connect the protocol-v5 way for both protocols, so a 2.x client's
  // `error` event carries {message: 'Unauthorized'} (see docs/DECISIONS.md: the NestJS app refused
  // 2.x clients outright, so no existing client depends on another form).
  test('a 2.x client without a valid token gets the error event Unauthorized and is not connected', withServer({ mode }, async (w) => {
    for (const opts of [{}, { query: { token: 'garbage' } }, { transports: ['polling', 'websocket'] }]) {
      const what = JSON.stringify(opts);
      const socket = ioV2(w.url, { transports: ['websocket'], reconnection: false, forceNew: true, ...opts });
      const connects = [];
      socket.on('connect', () => connects.push(Date.now()));
      try {
        const payload = await new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no error event within 5 s with ${what}`)), 5_000);
          socket.once('error', (p) => { clearTimeout(timer); resolve(p); });
          socket.once('connect_error', (e) => { clearTimeout(timer); reject(new Error(`connect_error instead of error with ${what}: ${e}`)); });
        });
        assert.deepEqual(payload, { message: 'Unauthorized' }, `error event payload with ${what}: ${JSON.stringify(payload)}`);
        await sleep(300);
        assert.equal(connects.length, 0, `never connected with ${what}`);
        assert.equal(socket.connected, false);
      } finally {
        socket.close();
      }
    }
  }));
});
