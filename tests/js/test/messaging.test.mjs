// Sending messages over Socket.io: acks, fan-out to every tab, every error code, idempotent retries
// and bursts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  NO_PAYLOAD, emitAck, eventually, forEachMode, randomName, randomUUID, recordEvents, sleep,
  waitForEvent, withServer,
} from '../lib/harness.mjs';
import {
  assertDistinct, assertErrorAck, assertMessage, assertMessageNew, assertOk, assertOnlineUser,
  collectHistory, send,
} from '../lib/expect.mjs';

/** How long to keep listening for a duplicate or stray event once the expected ones arrived. */
const SETTLE_MS = 400;

forEachMode((mode) => {
  test('user:init with a null payload lists the online users, the caller included', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const users = await emitAck(alice.socket, 'user:init', null);
    assert.ok(Array.isArray(users), JSON.stringify(users));
    for (const u of users) assertOnlineUser(u);
    for (const who of [alice, bob]) {
      const found = users.filter((u) => u.id === who.user.id);
      assert.equal(found.length, 1, `${who.user.username} is listed once`);
      assert.deepEqual(found[0], { ...who.user, status: 'online' });
    }
  }));

  test('user:init with no payload at all answers the same list', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const users = await emitAck(alice.socket, 'user:init', NO_PAYLOAD);
    assert.ok(Array.isArray(users), JSON.stringify(users));
    assert.deepEqual(users.filter((u) => u.id === alice.user.id), [{ ...alice.user, status: 'online' }]);
  }));

  test('the send ack is the stored message and both sides get it as message:new', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const toBob = waitForEvent(bob.socket, 'message:new');
    const toAlice = waitForEvent(alice.socket, 'message:new');
    const ack = await emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: 'hello bob' });
    assertMessage(ack, { content: 'hello bob', senderId: alice.user.id, receiverId: bob.user.id });
    assert.ok(Math.abs(Date.parse(ack.createdAt) - Date.now()) < 60_000, 'createdAt is now');
    const expected = { ...ack, senderUsername: alice.user.username };
    for (const got of [await toBob, await toAlice]) {
      assertMessageNew(got);
      assert.deepEqual(got, expected);
    }
  }));

  test('content is stored as sent, surrounding spaces and non-ASCII included', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const content = '  héllo 👋🏽 世界\n  ';
    const toBob = waitForEvent(bob.socket, 'message:new');
    const ack = await send(alice.socket, bob.user.id, content);
    assert.equal(ack.content, content);
    assert.equal((await toBob).content, content);
    const history = await emitAck(bob.socket, 'message:history', { receiverId: alice.user.id });
    assert.deepEqual(history, [ack]);
  }));

  test('every tab of the sender and the receiver gets message:new exactly once', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'), { tabs: 2 });
    const bob = await w.online(randomName('bob'), { tabs: 3 });
    const carol = await w.online(randomName('carol'));
    const tabs = [...alice.sockets, ...bob.sockets];
    const seen = tabs.map((s) => recordEvents(s, 'message:new'));
    const strangers = recordEvents(carol.socket, 'message:new');

    const ack = await send(alice.sockets[1], bob.user.id, 'to all tabs');
    await eventually(() => seen.every((list) => list.length >= 1), 'every tab received the message');
    await sleep(SETTLE_MS);
    seen.forEach((list, i) => {
      assert.equal(list.length, 1, `tab ${i} received exactly one message:new`);
      assert.equal(list[0].id, ack.id);
    });
    assert.equal(strangers.length, 0, 'a third user receives nothing');
  }));

  test('invalid payloads ack invalid_payload and store nothing', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const anchorArrived = waitForEvent(bob.socket, 'message:new');
    const anchor = await send(alice.socket, bob.user.id, 'before the errors');
    await anchorArrived;
    const bobInbox = recordEvents(bob.socket, 'message:new');

    const to = bob.user.id;
    const cases = [
      ['no payload', NO_PAYLOAD],
      ['null payload', null],
      ['a string payload', 'hello'],
      ['a number payload', 42],
      ['an array payload', [to, 'hello']],
      ['an empty object', {}],
      ['no receiverId', { content: 'hello' }],
      ['a numeric receiverId', { receiverId: 123, content: 'hello' }],
      ['a null receiverId', { receiverId: null, content: 'hello' }],
      ['no content', { receiverId: to }],
      ['a numeric content', { receiverId: to, content: 5 }],
      ['a null content', { receiverId: to, content: null }],
      ['an object content', { receiverId: to, content: { text: 'hi' } }],
      ['an empty content', { receiverId: to, content: '' }],
      ['a whitespace-only content', { receiverId: to, content: ' \t\n  ' }],
      ['a clientMsgId over 64 chars', { receiverId: to, content: 'hello', clientMsgId: 'x'.repeat(65) }],
      ['a numeric clientMsgId', { receiverId: to, content: 'hello', clientMsgId: 7 }],
      ['the sender as receiver', { receiverId: alice.user.id, content: 'note to self' }],
    ];
    for (const [what, payload] of cases) {
      assertErrorAck(await emitAck(alice.socket, 'message:send', payload), 'invalid_payload', what);
    }
    assert.ok(alice.socket.connected, 'the socket is still connected');

    const synced = await emitAck(alice.socket, 'message:sync', { after: anchor.id });
    assert.deepEqual(synced, { messages: [], hasMore: false });
    assert.deepEqual(await emitAck(alice.socket, 'message:history', { receiverId: to }), [anchor]);
    await sleep(SETTLE_MS);
    assert.equal(bobInbox.length, 0, 'the receiver got no message:new');
  }));

  test('a clientMsgId of exactly 64 chars is accepted', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const ack = await send(alice.socket, bob.user.id, 'hi', { clientMsgId: 'k'.repeat(64) });
    assertMessage(ack);
  }));

  test('a receiver nobody registered acks unknown_receiver and stores nothing', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const anchor = await send(alice.socket, bob.user.id, 'anchor');
    const stranger = randomUUID();
    assertErrorAck(await emitAck(alice.socket, 'message:send', { receiverId: stranger, content: 'anyone?' }), 'unknown_receiver');
    assert.deepEqual(await emitAck(alice.socket, 'message:sync', { after: anchor.id }), { messages: [], hasMore: false });
  }));

  test('content over MAX_MESSAGE_CHARS acks content_too_long, counted in characters after trimming', withServer({ mode, env: { MAX_MESSAGE_CHARS: '20' } }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const anchor = await send(alice.socket, bob.user.id, 'anchor');

    assertErrorAck(await emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: 'a'.repeat(21) }), 'content_too_long');
    assertErrorAck(await emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: 'é'.repeat(21) }), 'content_too_long', '21 two-byte chars');
    assert.deepEqual(await emitAck(alice.socket, 'message:sync', { after: anchor.id }), { messages: [], hasMore: false });

    // 20 characters fit, however many bytes or UTF-16 units they take, and padding is not counted.
    for (const content of ['a'.repeat(20), '😀'.repeat(20), `   ${'b'.repeat(20)}   `]) {
      const ack = await send(alice.socket, bob.user.id, content);
      assert.equal(ack.content, content);
    }
  }));

  test('content of 10,000 characters is accepted by default and 10,001 is too long', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const ack = await send(alice.socket, bob.user.id, 'x'.repeat(10_000));
    assert.equal(ack.content.length, 10_000);
    assertErrorAck(await emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: 'x'.repeat(10_001) }), 'content_too_long');
    assert.deepEqual(await emitAck(alice.socket, 'message:history', { receiverId: bob.user.id }), [ack]);
  }));

  test('sends over the rate limit ack rate_limited, are not stored, and the bucket refills', withServer({ mode, env: { RATE_LIMIT_BURST: '5', RATE_LIMIT_PER_SEC: '1' } }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const bobInbox = recordEvents(bob.socket, 'message:new');
    const acks = await Promise.all(
      Array.from({ length: 8 }, (_, i) => emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: `m${i}` })),
    );
    const ok = acks.filter((a) => !a.error);
    const limited = acks.filter((a) => a.error);
    assert.equal(ok.length, 5, `the burst of 5 passes: ${JSON.stringify(acks)}`);
    for (const a of limited) assertErrorAck(a, 'rate_limited');

    const history = await emitAck(alice.socket, 'message:history', { receiverId: bob.user.id });
    assert.deepEqual(history.map((m) => m.id).sort(), ok.map((m) => m.id).sort(), 'only the accepted sends are stored');
    await sleep(SETTLE_MS);
    assert.equal(bobInbox.length, 5, 'only the accepted sends are delivered');

    await sleep(1_200);
    await send(alice.socket, bob.user.id, 'after the refill');
  }));

  test('a send that fails, or retries a stored message, costs no token of the rate limit', withServer({ mode, env: { RATE_LIMIT_BURST: '3', RATE_LIMIT_PER_SEC: '1', USER_RATE_LIMIT_BURST: '3', USER_RATE_LIMIT_PER_SEC: '1' } }, async (w) => {
    // "Any event that fails acks {"error": ...} and has no other effect": not even on the budget.
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const failing = [
      [null, 'invalid_payload'],
      [{ receiverId: 'not-a-uuid', content: 'x' }, 'invalid_payload'],
      [{ receiverId: bob.user.id, content: '   ' }, 'invalid_payload'],
      [{ receiverId: bob.user.id, content: 'x'.repeat(10_001) }, 'content_too_long'],
      [{ receiverId: randomUUID(), content: 'nobody' }, 'unknown_receiver'],
    ];
    for (let round = 0; round < 2; round++) {
      for (const [payload, code] of failing) assertErrorAck(await emitAck(alice.socket, 'message:send', payload), code);
    }
    const first = await send(alice.socket, bob.user.id, 'first', { clientMsgId: 'once' });
    for (let i = 0; i < 4; i++) {
      const again = await emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: 'first', clientMsgId: 'once' });
      assert.deepEqual(again, first, `retry ${i} returns the original`);
    }
    // Ten failures and four retries later, the burst of 3 has 2 left: two more sends pass.
    await send(alice.socket, bob.user.id, 'second');
    await send(alice.socket, bob.user.id, 'third');
    assertErrorAck(await emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: 'over' }), 'rate_limited');
  }));

  test('the rate limit is per socket: another tab has its own bucket', withServer({ mode, env: { RATE_LIMIT_BURST: '3', RATE_LIMIT_PER_SEC: '1' } }, async (w) => {
    const alice = await w.online(randomName('alice'), { tabs: 2 });
    const bob = await w.online(randomName('bob'));
    for (let i = 0; i < 3; i++) await send(alice.sockets[0], bob.user.id, `tab0 ${i}`);
    assertErrorAck(await emitAck(alice.sockets[0], 'message:send', { receiverId: bob.user.id, content: 'over' }), 'rate_limited');
    await send(alice.sockets[1], bob.user.id, 'tab1 still has tokens');
  }));

  test('a retry with the same clientMsgId returns the original message and emits nothing new', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'), { tabs: 2 });
    const bob = await w.online(randomName('bob'));
    const bobInbox = recordEvents(bob.socket, 'message:new');
    const aliceInbox = recordEvents(alice.sockets[0], 'message:new');
    const clientMsgId = `retry-${randomUUID()}`;

    const first = await send(alice.sockets[0], bob.user.id, 'exactly once', { clientMsgId });
    const retry = await send(alice.sockets[0], bob.user.id, 'exactly once', { clientMsgId });
    const fromOtherTab = await send(alice.sockets[1], bob.user.id, 'exactly once', { clientMsgId });
    assert.deepEqual(retry, first);
    assert.deepEqual(fromOtherTab, first, 'the same sender on another tab is the same retry');

    await eventually(() => bobInbox.length >= 1, 'bob receives the message');
    await sleep(SETTLE_MS);
    assert.deepEqual(bobInbox.map((m) => m.id), [first.id], 'bob got one message:new');
    assert.deepEqual(aliceInbox.map((m) => m.id), [first.id], 'alice got one message:new');
    assert.deepEqual(await emitAck(bob.socket, 'message:history', { receiverId: alice.user.id }), [first]);
  }));

  test('concurrent retries with one clientMsgId store one message', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'), { tabs: 3 });
    const bob = await w.online(randomName('bob'));
    const bobInbox = recordEvents(bob.socket, 'message:new');
    const clientMsgId = `race-${randomUUID()}`;
    const acks = await Promise.all(
      alice.sockets.flatMap((s) => [1, 2, 3].map(() => emitAck(s, 'message:send', { receiverId: bob.user.id, content: 'race', clientMsgId }))),
    );
    acks.forEach((a) => assertOk(a));
    assert.equal(new Set(acks.map((a) => a.id)).size, 1, `one id for all retries: ${acks.map((a) => a.id)}`);
    await eventually(() => bobInbox.length >= 1, 'bob receives the message');
    await sleep(SETTLE_MS);
    assert.equal(bobInbox.length, 1, 'one message:new');
    assert.equal((await emitAck(bob.socket, 'message:history', { receiverId: alice.user.id })).length, 1);
  }));

  test('the same clientMsgId from two senders makes two messages', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const carol = await w.online(randomName('carol'));
    const clientMsgId = 'shared-key';
    const a = await send(alice.socket, carol.user.id, 'from alice', { clientMsgId });
    const b = await send(bob.socket, carol.user.id, 'from bob', { clientMsgId });
    assert.notEqual(a.id, b.id);
    assert.equal(b.content, 'from bob');
  }));

  test('unknown events and malformed payloads neither disconnect the socket nor stop others chatting', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const carol = await w.online(randomName('carol'));
    const dave = await w.online(randomName('dave'));
    const disconnects = recordEvents(alice.socket, 'disconnect');

    await assert.rejects(emitAck(alice.socket, 'no:such:event', { x: 1 }, 500), /no ack/, 'an unknown event gets no ack');
    alice.socket.emit('no:such:event');
    alice.socket.emit('message:send', { receiverId: bob.user.id, content: 'no ack callback' });
    alice.socket.emit('message:send');
    alice.socket.emit('user:init', { weird: true });
    for (const payload of [null, 'str', 7, [], [1, 2], {}, { receiverId: {} }]) {
      for (const event of ['message:send', 'message:history', 'message:sync']) {
        assertErrorAck(await emitAck(alice.socket, event, payload), 'invalid_payload', `${event} ${JSON.stringify(payload)}`);
      }
    }

    const carolToDave = waitForEvent(dave.socket, 'message:new');
    await send(carol.socket, dave.user.id, 'we are fine');
    assert.equal((await carolToDave).content, 'we are fine');

    const aliceToBob = waitForEvent(bob.socket, 'message:new', (m) => m.content === 'still here');
    await send(alice.socket, bob.user.id, 'still here');
    await aliceToBob;
    assert.ok(alice.socket.connected);
    assert.equal(disconnects.length, 0, 'alice was never disconnected');
  }));

  test('200 concurrent sends produce 200 distinct ids, all delivered and all in history', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const bobInbox = recordEvents(bob.socket, 'message:new');
    const acks = await Promise.all(
      Array.from({ length: 200 }, (_, i) => emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: `burst ${i}` }, 15_000)),
    );
    acks.forEach((a, i) => assertOk(a, `send ${i}`));
    const ids = acks.map((a) => a.id);
    assertDistinct(ids, 'ack ids');

    await eventually(() => bobInbox.length >= 200, 'bob receives 200 messages', 15_000);
    await sleep(SETTLE_MS);
    assert.equal(bobInbox.length, 200, 'no duplicate deliveries');
    assert.deepEqual(bobInbox.map((m) => m.id).sort(), [...ids].sort());

    const history = await collectHistory(bob.socket, alice.user.id);
    assert.deepEqual(history.map((m) => m.id).sort(), [...ids].sort(), 'history holds exactly the 200 messages');
    assert.deepEqual(history.map((m) => m.content).sort(), acks.map((a) => a.content).sort());
  }));

  test('an event emitted the moment a socket connects is answered', withServer({ mode }, async (w) => {
    const { user, token } = await w.user(randomName('eager'));
    const bob = await w.online(randomName('bob'));
    const unanswered = [];
    for (let i = 0; i < 20; i++) {
      const transports = i % 2 ? ['websocket'] : ['polling', 'websocket'];
      const socket = await w.connect(token, { transports });
      // Like the React client: user:init right in the connect handler, then a send.
      const [users, ack] = await Promise.all([
        emitAck(socket, 'user:init', null).catch(() => null),
        emitAck(socket, 'message:send', { receiverId: bob.user.id, content: `eager ${i}` }).catch(() => null),
      ]);
      if (!Array.isArray(users)) unanswered.push(`${i} user:init over ${transports}: no ack`);
      else if (!users.some((u) => u.id === user.id)) unanswered.push(`${i} user:init over ${transports}: the caller is not listed`);
      if (!ack || ack.error) unanswered.push(`${i} message:send over ${transports}: ${JSON.stringify(ack)}`);
      socket.close();
    }
    assert.deepEqual(unanswered, [], 'every early event is answered, as if it came later');
  }));
});
