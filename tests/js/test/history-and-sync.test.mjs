// Reading the past: message:history and its paging, message:sync after a disconnect, and the REST
// conversation endpoints.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  emitAck, forEachMode, http, randomName, randomUUID, sleep, withServer,
} from '../lib/harness.mjs';
import { assertDistinct, assertErrorAck, assertMessage, assertNestError, collectHistory, send } from '../lib/expect.mjs';

// Long sequential conversations exceed the default burst of one socket.
const ROOMY = { RATE_LIMIT_BURST: '5000', RATE_LIMIT_PER_SEC: '5000', USER_RATE_LIMIT_BURST: '0' };

/** Alice and Bob take turns sending `n` messages; returns the acks in sending order. */
async function converse(alice, bob, n, label = 'msg') {
  const sent = [];
  for (let i = 0; i < n; i++) {
    const [from, to] = i % 2 === 0 ? [alice, bob] : [bob, alice];
    sent.push(await send(from.socket, to.user.id, `${label} ${i}`));
  }
  return sent;
}

const ids = (messages) => messages.map((m) => m.id);

forEachMode((mode) => {
  test('history lists the conversation oldest first, the latest 100 at most', withServer({ mode, env: ROOMY }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const carol = await w.online(randomName('carol'));
    const sent = await converse(alice, bob, 105);
    await send(carol.socket, alice.user.id, 'not part of alice and bob');

    const fromAlice = await emitAck(alice.socket, 'message:history', { receiverId: bob.user.id });
    assert.equal(fromAlice.length, 100);
    fromAlice.forEach((m) => assertMessage(m));
    assert.deepEqual(fromAlice, sent.slice(5), 'the latest 100, oldest first, as acked');
    assert.deepEqual(await emitAck(bob.socket, 'message:history', { receiverId: alice.user.id }), fromAlice, 'both sides see the same conversation');

    const latest = await emitAck(alice.socket, 'message:history', { receiverId: bob.user.id, limit: 1 });
    assert.deepEqual(latest, [sent.at(-1)]);
  }));

  test('history of a conversation that never happened is empty', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    assert.deepEqual(await emitAck(alice.socket, 'message:history', { receiverId: bob.user.id }), []);
  }));

  test('paging back through 250 messages with before and limit collects each exactly once in order', withServer({ mode, env: ROOMY }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const sent = await converse(alice, bob, 250);

    const pages = [];
    let before;
    for (;;) {
      const page = await emitAck(alice.socket, 'message:history', { receiverId: bob.user.id, limit: 30, ...(before ? { before } : {}) });
      assert.ok(Array.isArray(page), JSON.stringify(page));
      if (page.length === 0) break;
      assert.ok(page.length <= 30);
      pages.unshift(page);
      before = page[0].id;
      assert.ok(pages.length <= 10, 'paging ends');
    }
    assert.deepEqual(pages.map((p) => p.length), [10, ...Array(8).fill(30)]);
    const collected = pages.flat();
    assertDistinct(ids(collected));
    assert.deepEqual(collected, sent);

    // The latest 30, then the 30 immediately older than the oldest of those.
    const newest = await emitAck(bob.socket, 'message:history', { receiverId: alice.user.id, limit: 30 });
    assert.deepEqual(newest, sent.slice(220));
    const older = await emitAck(bob.socket, 'message:history', { receiverId: alice.user.id, limit: 30, before: newest[0].id });
    assert.deepEqual(older, sent.slice(190, 220));
    assert.deepEqual(await collectHistory(bob.socket, alice.user.id, 100), sent);
  }));

  test('history refuses a limit outside 1..100 and a before that is not one of the caller\'s messages', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const carol = await w.online(randomName('carol'));
    const dave = await w.online(randomName('dave'));
    await send(alice.socket, bob.user.id, 'ours');
    const theirs = await send(carol.socket, dave.user.id, 'theirs');

    const to = bob.user.id;
    for (const [what, payload] of [
      ['limit 0', { receiverId: to, limit: 0 }],
      ['limit 101', { receiverId: to, limit: 101 }],
      ['limit -1', { receiverId: to, limit: -1 }],
      ['limit 1.5', { receiverId: to, limit: 1.5 }],
      ['limit "10"', { receiverId: to, limit: '10' }],
      ['before an unknown id', { receiverId: to, before: randomUUID() }],
      ['before a garbage id', { receiverId: to, before: 'nope' }],
      ['before someone else\'s message', { receiverId: to, before: theirs.id }],
      ['no receiverId', { limit: 10 }],
    ]) {
      assertErrorAck(await emitAck(alice.socket, 'message:history', payload), 'invalid_payload', what);
    }
    assert.equal((await emitAck(alice.socket, 'message:history', { receiverId: to, limit: 100 })).length, 1);
  }));

  test('message:sync after a disconnect returns everything missed, oldest first', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'), { tabs: 2 });
    const carol = await w.online(randomName('carol'));
    const seen = await send(alice.socket, bob.user.id, 'seen before the drop');

    bob.sockets[0].close();
    const missed = [
      await send(alice.socket, bob.user.id, 'missed 1'),
      await send(carol.socket, bob.user.id, 'missed 2'),
      await send(bob.sockets[1], carol.user.id, 'sent by bob from another tab'),
      await send(alice.socket, bob.user.id, 'missed 3'),
    ];
    await send(alice.socket, carol.user.id, 'not for bob');

    const back = await w.connect(bob.token);
    const res = await emitAck(back, 'message:sync', { after: seen.id });
    assert.deepEqual(Object.keys(res).sort(), ['hasMore', 'messages']);
    assert.equal(res.hasMore, false);
    res.messages.forEach((m) => assertMessage(m));
    // It may repeat a message the client has, never skip one, and holds only bob's messages.
    const fresh = res.messages.filter((m) => m.id !== seen.id);
    assert.deepEqual(fresh, missed);
    for (const m of res.messages) assert.ok(m.senderId === bob.user.id || m.receiverId === bob.user.id, 'only bob\'s messages');
  }));

  test('message:sync pages with limit and hasMore until nothing is left', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const anchor = await send(alice.socket, bob.user.id, 'anchor');
    const missed = [];
    for (let i = 0; i < 7; i++) missed.push(await send(alice.socket, bob.user.id, `later ${i}`));

    const first = await emitAck(bob.socket, 'message:sync', { after: anchor.id, limit: 3 });
    assert.equal(first.messages.length, 3);
    assert.equal(first.hasMore, true);

    const collected = [];
    let after = anchor.id;
    for (let round = 0; round < 20; round++) {
      const res = await emitAck(bob.socket, 'message:sync', { after, limit: 3 });
      assert.ok(res.messages.length <= 3);
      for (const m of res.messages) if (!collected.some((c) => c.id === m.id)) collected.push(m);
      if (!res.hasMore) break;
      assert.ok(res.messages.length > 0, 'hasMore comes with messages');
      after = res.messages.at(-1).id;
    }
    assert.deepEqual(collected.filter((m) => m.id !== anchor.id), missed);

    const caughtUp = await emitAck(bob.socket, 'message:sync', { after: missed.at(-1).id });
    assert.deepEqual(caughtUp.messages.filter((m) => m.id !== missed.at(-1).id), []);
    assert.equal(caughtUp.hasMore, false);
  }));

  test('message:sync refuses an after that is not one of the caller\'s messages', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const carol = await w.online(randomName('carol'));
    const mine = await send(alice.socket, bob.user.id, 'mine');
    const notMine = await send(bob.socket, carol.user.id, 'not alice\'s');
    for (const [what, payload] of [
      ['an unknown after', { after: randomUUID() }],
      ['someone else\'s message', { after: notMine.id }],
      ['no after', {}],
      ['limit 0', { after: mine.id, limit: 0 }],
      ['limit 101', { after: mine.id, limit: 101 }],
    ]) {
      assertErrorAck(await emitAck(alice.socket, 'message:sync', payload), 'invalid_payload', what);
    }
  }));

  test('GET /api/conversations lists peers most recent first with their online flag', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const carol = await w.online(randomName('carol'));
    await send(alice.socket, bob.user.id, 'hi bob');
    await sleep(5);
    const toCarol = await send(alice.socket, carol.user.id, 'hi carol');
    await sleep(5);
    const fromBob = await send(bob.socket, alice.user.id, 'hi again alice');
    carol.socket.close();
    await sleep(300);

    const res = await http(`${w.url}/api/conversations`, { token: alice.token });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, [
      // Bob's reply is unread; neither peer has read anything of alice's.
      { peer: { id: bob.user.id, username: bob.user.username, online: true }, lastMessage: fromBob, unread: 1, peerReadUpTo: null },
      { peer: { id: carol.user.id, username: carol.user.username, online: false }, lastMessage: toCarol, unread: 0, peerReadUpTo: null },
    ]);

    const lonely = await w.user(randomName('lonely'));
    const none = await http(`${w.url}/api/conversations`, { token: lonely.token });
    assert.equal(none.status, 200);
    assert.deepEqual(none.body, []);
  }));

  test('GET /api/conversations/{peerId}/messages pages back with before, limit and hasMore', withServer({ mode, env: ROOMY }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const sent = await converse(alice, bob, 120);
    const base = `${w.url}/api/conversations/${bob.user.id}/messages`;

    const latest = await http(base, { token: alice.token });
    assert.equal(latest.status, 200, latest.text);
    assert.deepEqual(latest.body, { messages: sent.slice(20), hasMore: true });

    const pages = [];
    let before;
    for (let i = 0; i < 10; i++) {
      const res = await http(`${base}?limit=50${before ? `&before=${before}` : ''}`, { token: alice.token });
      assert.equal(res.status, 200, res.text);
      pages.unshift(res.body.messages);
      if (!res.body.hasMore) break;
      before = res.body.messages[0].id;
    }
    assert.deepEqual(pages.map((p) => p.length), [20, 50, 50]);
    assert.deepEqual(pages.flat(), sent);

    const fromBob = await http(`${w.url}/api/conversations/${alice.user.id}/messages?limit=5`, { token: bob.token });
    assert.deepEqual(fromBob.body, { messages: sent.slice(115), hasMore: true });
  }));

  test('the REST history answers 404 for an unknown peer and 401 without a valid token', withServer({ mode }, async (w) => {
    const alice = await w.user(randomName('alice'));
    const bob = await w.user(randomName('bob'));

    const unknown = await http(`${w.url}/api/conversations/${randomUUID()}/messages`, { token: alice.token });
    assertNestError(unknown, 404, undefined, 'Not Found');

    const unauthorized = { statusCode: 401, message: 'Unauthorized', error: 'Unauthorized' };
    for (const path of ['/api/conversations', `/api/conversations/${bob.user.id}/messages`]) {
      for (const token of [undefined, 'garbage']) {
        const res = await http(`${w.url}${path}`, { token });
        assert.equal(res.status, 401, `${path} with ${token}: ${res.text}`);
        assert.deepEqual(res.body, unauthorized);
      }
    }
  }));
});
