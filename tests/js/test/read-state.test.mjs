// Read state and typing (CONTRACT Part 3 → Read state, Typing, REST): read cursors and their
// receipts, unread counts and peerReadUpTo in the conversation list, readUpTo of room members,
// typing events and their rate; then the same guarantees across three instances (TEST_CLUSTER=1).

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  createTestDatabase, dropTestDatabase, emitAck, eventually, forEachMode, http, isIsoMillis,
  randomName, randomUUID, recordEvents, registerAndLogin, sleep, startServer, waitForEvent,
  withCluster, withServer, connect,
} from '../lib/harness.mjs';
import { assertErrorAck, assertOk, createRoom, roomSend, send } from '../lib/expect.mjs';

const SETTLE_MS = 400;
const ROOMY = { env: { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_SEC: '100000', USER_RATE_LIMIT_BURST: '0' } };

const read = (socket, payload) => emitAck(socket, 'conversation:read', payload);

/** The caller's conversation-list entry for `peerId` (direct) or `roomId`. */
async function entry(w, token, { peerId, roomId }, url = w.url) {
  const res = await http(`${url}/api/conversations`, { token });
  assert.equal(res.status, 200);
  return res.body.find((e) => (peerId ? e.peer?.id === peerId : e.room?.id === roomId));
}

function assertReceipt(event, expected) {
  assert.deepEqual(Object.keys(event).sort(), [...Object.keys(expected), 'readAt'].sort(), JSON.stringify(event));
  for (const [k, v] of Object.entries(expected)) assert.equal(event[k], v, `receipt.${k}`);
  assert.ok(isIsoMillis(event.readAt), `readAt is ISO-8601 with ms: ${event.readAt}`);
}

function assertTyping(event, expected) {
  assert.deepEqual(Object.keys(event).sort(), Object.keys(expected).sort(), JSON.stringify(event));
  assert.deepEqual(event, { ...event, ...expected });
}

forEachMode((mode) => {
  test('conversation:read acks the cursor; unread goes 5 → 2 → 0 and the peer sees peerReadUpTo', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const sent = [];
    for (let i = 0; i < 5; i++) sent.push(await send(alice.socket, bob.user.id, `m${i}`));

    let mine = await entry(w, bob.token, { peerId: alice.user.id });
    assert.equal(mine.unread, 5);
    assert.equal(mine.peerReadUpTo, null, 'alice has read nothing');
    let theirs = await entry(w, alice.token, { peerId: bob.user.id });
    assert.equal(theirs.unread, 0, 'her own messages are not unread for her');
    assert.equal(theirs.peerReadUpTo, null);

    assert.deepEqual(await read(bob.socket, { receiverId: alice.user.id, upTo: sent[2].id }), { upTo: sent[2].id });
    mine = await entry(w, bob.token, { peerId: alice.user.id });
    assert.equal(mine.unread, 2);
    theirs = await entry(w, alice.token, { peerId: bob.user.id });
    assert.equal(theirs.peerReadUpTo, sent[2].id);

    // An older upTo leaves the cursor where it is, and the ack says where that is.
    assert.deepEqual(await read(bob.socket, { receiverId: alice.user.id, upTo: sent[0].id }), { upTo: sent[2].id });
    assert.equal((await entry(w, bob.token, { peerId: alice.user.id })).unread, 2);

    assert.deepEqual(await read(bob.socket, { receiverId: alice.user.id, upTo: sent[4].id }), { upTo: sent[4].id });
    assert.equal((await entry(w, bob.token, { peerId: alice.user.id })).unread, 0);
    assert.equal((await entry(w, alice.token, { peerId: bob.user.id })).peerReadUpTo, sent[4].id);

    // A reader may mark up to its own message: everything before it is read too.
    const more = await send(alice.socket, bob.user.id, 'more');
    const reply = await send(bob.socket, alice.user.id, 'reply');
    assert.equal((await entry(w, bob.token, { peerId: alice.user.id })).unread, 1);
    assert.deepEqual(await read(bob.socket, { receiverId: alice.user.id, upTo: reply.id }), { upTo: reply.id });
    assert.equal((await entry(w, bob.token, { peerId: alice.user.id })).unread, 0);
    assert.ok(more.id);
  }));

  test('unread is counted up to 1,000', withServer({ mode, ...ROOMY }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const acks = [];
    for (let i = 0; i < 1003; i++) acks.push(emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: `n${i}` }, 30_000));
    (await Promise.all(acks)).forEach((a) => assertOk(a));
    assert.equal((await entry(w, bob.token, { peerId: alice.user.id })).unread, 1000);
  }));

  test('a receipt reaches the peer and the reader\'s other tabs, not the reading tab nor anyone else', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'), { tabs: 2 });
    const bob = await w.online(randomName('bob'), { tabs: 2 });
    const eve = await w.online(randomName('eve'));
    const m = await send(alice.socket, bob.user.id, 'hello');
    const heard = [...alice.sockets, ...bob.sockets, eve.socket].map((s) => recordEvents(s, 'conversation:read'));

    assertOk(await read(bob.sockets[0], { receiverId: alice.user.id, upTo: m.id }));
    await eventually(() => heard[0].length && heard[1].length && heard[3].length, 'alice\'s tabs and bob\'s other tab hear it');
    for (const i of [0, 1, 3]) {
      assert.equal(heard[i].length, 1);
      assertReceipt(heard[i][0], { readerId: bob.user.id, peerId: alice.user.id, upTo: m.id });
    }
    // Reading again what is read already moves nothing and tells nobody.
    assertOk(await read(bob.sockets[1], { receiverId: alice.user.id, upTo: m.id }));
    await sleep(SETTLE_MS);
    assert.deepEqual(heard.map((l) => l.length), [1, 1, 0, 1, 0]);
  }));

  test('conversation:read refuses bad input and foreign messages and moves nothing', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const eve = await w.online(randomName('eve'));
    const m = await send(alice.socket, bob.user.id, 'ours');
    const elsewhere = await send(eve.socket, alice.user.id, 'not bob\'s');
    const room = await createRoom(alice.socket, 'team', []);
    const inRoom = await roomSend(alice.socket, room.id, 'in the room');
    const bad = [
      [null, 'invalid_payload'],
      ['x', 'invalid_payload'],
      [{ upTo: m.id }, 'invalid_payload'],
      [{ receiverId: alice.user.id }, 'invalid_payload'],
      [{ receiverId: alice.user.id, upTo: 'nope' }, 'invalid_payload'],
      [{ receiverId: alice.user.id, roomId: room.id, upTo: m.id }, 'invalid_payload'],
      [{ receiverId: bob.user.id, upTo: m.id }, 'invalid_payload'],
      [{ receiverId: alice.user.id, upTo: elsewhere.id }, 'invalid_payload'],
      [{ receiverId: alice.user.id, upTo: inRoom.id }, 'invalid_payload'],
      [{ receiverId: alice.user.id, upTo: randomUUID() }, 'invalid_payload'],
      [{ receiverId: randomUUID(), upTo: m.id }, 'invalid_payload'],
      // Not a member: the same answer as a room that does not exist.
      [{ roomId: room.id, upTo: inRoom.id }, 'not_found'],
      [{ roomId: randomUUID(), upTo: inRoom.id }, 'not_found'],
    ];
    const alicesTab = recordEvents(alice.socket, 'conversation:read');
    for (const [payload, code] of bad) {
      assertErrorAck(await read(bob.socket, payload), code, JSON.stringify(payload));
    }
    assert.equal((await entry(w, bob.token, { peerId: alice.user.id })).unread, 1);
    assert.equal((await entry(w, alice.token, { peerId: bob.user.id })).peerReadUpTo, null);
    // A member naming a message of another conversation.
    assertErrorAck(await read(alice.socket, { roomId: room.id, upTo: m.id }), 'invalid_payload');
    await sleep(SETTLE_MS);
    assert.deepEqual(alicesTab, []);
  }));

  test('room cursors: unread per member, readUpTo in the room, receipts to the members only', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'), { tabs: 2 });
    const carol = await w.online(randomName('carol'));
    const eve = await w.online(randomName('eve'));
    const room = await createRoom(alice.socket, 'team', [bob.user.id, carol.user.id]);
    const sent = [];
    for (let i = 0; i < 5; i++) sent.push(await roomSend(i === 4 ? carol.socket : alice.socket, room.id, `m${i}`));
    assert.equal((await entry(w, bob.token, { roomId: room.id })).unread, 5);
    assert.equal((await entry(w, carol.token, { roomId: room.id })).unread, 4);

    const heard = [alice.socket, ...bob.sockets, carol.socket, eve.socket].map((s) => recordEvents(s, 'conversation:read'));
    assert.deepEqual(await read(bob.sockets[0], { roomId: room.id, upTo: sent[2].id }), { upTo: sent[2].id });
    await eventually(() => [0, 2, 3].every((i) => heard[i].length === 1), 'the other members and bob\'s other tab hear it');
    for (const i of [0, 2, 3]) assertReceipt(heard[i][0], { readerId: bob.user.id, roomId: room.id, upTo: sent[2].id });
    assert.equal((await entry(w, bob.token, { roomId: room.id })).unread, 2);

    const view = await http(`${w.url}/api/rooms/${room.id}`, { token: carol.token });
    assert.equal(view.status, 200);
    const cursors = Object.fromEntries(view.body.members.map((m) => [m.id, m.readUpTo]));
    assert.deepEqual(cursors, { [alice.user.id]: null, [bob.user.id]: sent[2].id, [carol.user.id]: null });
    await sleep(SETTLE_MS);
    assert.equal(heard[1].length, 0, 'not the reading tab');
    assert.equal(heard[4].length, 0, 'nobody outside the room');
  }));

  test('a member removed and added again counts only the others\' messages as unread, and syncs on from its own', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const room = await createRoom(alice.socket, 'team', [bob.user.id]);
    await roomSend(alice.socket, room.id, 'a0');
    const own = await roomSend(bob.socket, room.id, 'b own');
    assert.equal((await entry(w, bob.token, { roomId: room.id })).unread, 1);

    assertOk(await emitAck(alice.socket, 'room:remove', { roomId: room.id, userId: bob.user.id }));
    // Removed while its client was away: its last message is its own, in that room, and it
    // syncs on from there (a direct message arrived meanwhile).
    const meanwhile = await send(alice.socket, bob.user.id, 'while you were out');
    const synced = assertOk(await emitAck(bob.socket, 'message:sync', { after: own.id }));
    assert.deepEqual(synced.messages.map((m) => m.id), [meanwhile.id], 'the room\'s later messages are not bob\'s, the direct one is');

    assertOk(await emitAck(alice.socket, 'room:add', { roomId: room.id, userIds: [bob.user.id] }));
    assert.equal((await entry(w, bob.token, { roomId: room.id })).unread, 1, 'its own earlier message is not unread');
    await roomSend(bob.socket, room.id, 'b again');
    await roomSend(alice.socket, room.id, 'a1');
    assert.equal((await entry(w, bob.token, { roomId: room.id })).unread, 2);
  }));

  test('typing reaches the other participants only; an ack, when asked, is {} or an error', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'), { tabs: 2 });
    const bob = await w.online(randomName('bob'), { tabs: 2 });
    const carol = await w.online(randomName('carol'));
    const eve = await w.online(randomName('eve'));
    const all = [...alice.sockets, ...bob.sockets, carol.socket, eve.socket];
    const heard = all.map((s) => recordEvents(s, 'typing'));

    assert.deepEqual(await emitAck(alice.socket, 'typing', { receiverId: bob.user.id, typing: true }), {});
    await eventually(() => heard[2].length === 1 && heard[3].length === 1, 'both of bob\'s tabs hear alice');
    for (const i of [2, 3]) {
      assertTyping(heard[i][0], { userId: alice.user.id, username: alice.user.username, peerId: bob.user.id, typing: true });
    }
    alice.socket.emit('typing', { receiverId: bob.user.id, typing: false });
    await eventually(() => heard[2].length === 2, 'typing: false follows');
    assert.equal(heard[2][1].typing, false);

    const room = await createRoom(alice.socket, 'team', [bob.user.id, carol.user.id]);
    heard.forEach((l) => l.splice(0));
    assert.deepEqual(await emitAck(carol.socket, 'typing', { roomId: room.id, typing: true }), {});
    await eventually(() => [0, 1, 2, 3].every((i) => heard[i].length === 1), 'every other member\'s sockets hear carol');
    assertTyping(heard[0][0], { userId: carol.user.id, username: carol.user.username, roomId: room.id, typing: true });

    for (const [payload, code] of [
      [{ receiverId: bob.user.id }, 'invalid_payload'],
      [{ receiverId: bob.user.id, typing: 'yes' }, 'invalid_payload'],
      [{ typing: true }, 'invalid_payload'],
      [{ receiverId: eve.user.id, typing: true }, 'invalid_payload'],
      [{ roomId: room.id, typing: true }, 'not_found'],
      [{ roomId: randomUUID(), typing: true }, 'not_found'],
    ]) {
      // Sent by eve, who is in none of it; spaced out to stay within her 5 a second.
      assertErrorAck(await emitAck(eve.socket, 'typing', payload), code, JSON.stringify(payload));
      await sleep(250);
    }
    await sleep(SETTLE_MS);
    assert.equal(heard[4].length, 0, 'never the typist\'s own sockets');
    assert.equal(heard[5].length, 0, 'never anyone outside the conversation');
    assert.deepEqual(heard.slice(0, 4).map((l) => l.length), [1, 1, 1, 1]);
  }));

  test('a burst of 50 typing events yields at most 5 a second', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const heard = recordEvents(bob.socket, 'typing');
    const started = Date.now();
    for (let i = 0; i < 50; i++) alice.socket.emit('typing', { receiverId: bob.user.id, typing: i % 2 === 0 });
    const took = Date.now() - started;
    await sleep(1_000);
    // The rule allows 5 in any second; the burst took `took` ms to emit.
    assert.ok(heard.length >= 1, 'the first events of the burst get through');
    assert.ok(heard.length <= 5 * Math.ceil((took + 1) / 1000), `${heard.length} typing events from a burst of 50 emitted in ${took} ms`);
    // The socket is not punished beyond the rule: once the window has passed it may type again.
    await sleep(1_000);
    alice.socket.emit('typing', { receiverId: bob.user.id, typing: true });
    const before = heard.length;
    await eventually(() => heard.length === before + 1, 'typing works again after the window');
    const metrics = await fetch(`${w.url}/metrics`).then((r) => r.text());
    const dropped = Number(/nexus_typing_dropped_total (\d+)/.exec(metrics)?.[1]);
    assert.ok(dropped >= 50 - 5 * Math.ceil((took + 1) / 1000), `dropped events are counted: ${dropped}`);
  }));

  test('a socket that disconnects mid-typing sends typing: false for it', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'), { tabs: 2 });
    const bob = await w.online(randomName('bob'));
    const room = await createRoom(alice.socket, 'team', [bob.user.id]);
    const heard = recordEvents(bob.socket, 'typing');
    assert.deepEqual(await emitAck(alice.sockets[1], 'typing', { receiverId: bob.user.id, typing: true }), {});
    assert.deepEqual(await emitAck(alice.sockets[1], 'typing', { roomId: room.id, typing: true }), {});
    await eventually(() => heard.length === 2, 'bob hears both');
    alice.sockets[1].close();
    await eventually(() => heard.length === 4, 'typing: false for both conversations');
    const stops = heard.slice(2);
    assert.ok(stops.every((e) => e.typing === false && e.userId === alice.user.id));
    assert.deepEqual(stops.map((e) => e.peerId ?? e.roomId).sort(), [bob.user.id, room.id].sort());
    // Whatever a socket said last, its disconnect only ever tells that it stopped.
    alice.socket.emit('typing', { receiverId: bob.user.id, typing: true });
    await eventually(() => heard.length === 5, 'bob hears the first tab start');
    alice.socket.close();
    await eventually(() => heard.length === 6, 'and stop when it leaves');
    await sleep(SETTLE_MS);
    assert.deepEqual(heard.slice(4).map((e) => e.typing), [true, false]);
  }));

  test('a removed member hears no receipts or typing of the room', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const carol = await w.online(randomName('carol'), { tabs: 2 });
    const room = await createRoom(alice.socket, 'team', [bob.user.id, carol.user.id]);
    const m = await roomSend(alice.socket, room.id, 'hello');
    const removed = waitForEvent(carol.socket, 'room:removed');
    assertOk(await emitAck(alice.socket, 'room:remove', { roomId: room.id, userId: carol.user.id }));
    await removed;
    const receipts = carol.sockets.map((s) => recordEvents(s, 'conversation:read'));
    const typing = carol.sockets.map((s) => recordEvents(s, 'typing'));
    const bobHears = recordEvents(alice.socket, 'conversation:read');
    assertOk(await read(bob.socket, { roomId: room.id, upTo: m.id }));
    assert.deepEqual(await emitAck(bob.socket, 'typing', { roomId: room.id, typing: true }), {});
    await eventually(() => bobHears.length === 1, 'the remaining members still hear');
    // Nor may she speak in it.
    assertErrorAck(await read(carol.socket, { roomId: room.id, upTo: m.id }), 'not_found');
    assertErrorAck(await emitAck(carol.socket, 'typing', { roomId: room.id, typing: true }), 'not_found');
    await sleep(SETTLE_MS);
    [...receipts, ...typing].forEach((l) => assert.deepEqual(l, []));
  }));

  test('a graceful stop loses no acked cursor', async () => {
    const owned = mode === 'sqlite' ? { dataDir: await mkdtemp(path.join(tmpdir(), 'nexus-read-')) } : { db: await createTestDatabase() };
    const where = owned.dataDir ? { dataDir: owned.dataDir } : { databaseUrl: owned.db.url };
    const env = { JWT_SECRET: randomName('secret'), ...ROOMY.env };
    try {
      let server = await startServer({ mode, env, ...where });
      const alice = await registerAndLogin(server.url, randomName('alice'));
      const bob = await registerAndLogin(server.url, randomName('bob'));
      const a = await connect(server.url, alice.token);
      const b = await connect(server.url, bob.token);
      const sent = [];
      for (let i = 0; i < 40; i++) sent.push(await send(a, bob.user.id, `m${i}`));
      // Many marks in flight, then SIGTERM while they are still arriving.
      const acks = sent.map((m) => read(b, { receiverId: alice.user.id, upTo: m.id }).catch(() => null));
      const stopping = server.stop();
      const answered = (await Promise.all(acks)).filter((x) => x && x.upTo);
      await stopping;
      a.close();
      b.close();
      server = await startServer({ mode, env, ...where });
      try {
        const list = await http(`${server.url}/api/conversations`, { token: bob.token });
        const e = list.body.find((x) => x.peer.id === alice.user.id);
        const acked = answered.map((x) => sent.findIndex((m) => m.id === x.upTo));
        const stored = sent.length - e.unread;
        assert.ok(stored >= Math.max(0, ...acked.map((i) => i + 1)), `every acked cursor survived (acked up to #${Math.max(...acked)}, stored ${stored} read)`);
      } finally {
        await server.stop();
      }
    } finally {
      if (owned.dataDir) await rm(owned.dataDir, { recursive: true, force: true });
      if (owned.db) await dropTestDatabase(owned.db.name);
    }
  });
});

const RUN = process.env.TEST_CLUSTER === '1';

describe('read state and typing across three instances', { skip: RUN ? false : 'set TEST_CLUSTER=1 to run the cluster tests' }, () => {
  test('a cursor only moves forward under two racing tabs on two instances', withCluster(3, ROOMY, async (w, cluster) => {
    const [n0, n1, n2] = cluster.urls;
    const alice = await w.online(randomName('alice'), { url: n2 });
    const bob = await w.online(randomName('bob'), { url: n0 });
    bob.sockets.push(await w.connect(bob.token, {}, n1));
    const sent = [];
    for (let i = 0; i < 30; i++) sent.push(await send(alice.socket, bob.user.id, `m${i}`));
    const order = (tab) => sent.map((m, i) => ({ m, i })).sort(() => Math.random() - 0.5).map((x) => ({ ...x, tab }));
    const acks = await Promise.all([...order(0), ...order(1)].map(async ({ m, i, tab }) => {
      const ack = assertOk(await read(bob.sockets[tab], { receiverId: alice.user.id, upTo: m.id }));
      return { i, at: sent.findIndex((x) => x.id === ack.upTo) };
    }));
    for (const { i, at } of acks) assert.ok(at >= i, `an ack is never behind its own upTo (#${i} acked #${at})`);
    const mine = await entry(w, bob.token, { peerId: alice.user.id }, n2);
    assert.equal(mine.unread, 0);
    assert.equal((await entry(w, alice.token, { peerId: bob.user.id }, n1)).peerReadUpTo, sent[29].id);
    // An older one now changes nothing, on any instance.
    assert.deepEqual(await read(bob.sockets[1], { receiverId: alice.user.id, upTo: sent[0].id }), { upTo: sent[29].id });
  }));

  test('receipts and typing reach the right sockets on every instance, and nobody else', withCluster(3, ROOMY, async (w, cluster) => {
    const [n0, n1, n2] = cluster.urls;
    const alice = await w.online(randomName('alice'), { url: n0 });
    alice.sockets.push(await w.connect(alice.token, {}, n1));
    const bob = await w.online(randomName('bob'), { url: n1 });
    bob.sockets.push(await w.connect(bob.token, {}, n2));
    const carol = await w.online(randomName('carol'), { url: n2 });
    const eve = await w.online(randomName('eve'), { url: n0 });
    const socks = [...alice.sockets, ...bob.sockets, carol.socket, eve.socket];
    const receipts = socks.map((s) => recordEvents(s, 'conversation:read'));
    const typing = socks.map((s) => recordEvents(s, 'typing'));

    const m = await send(alice.sockets[0], bob.user.id, 'hi');
    assertOk(await read(bob.sockets[0], { receiverId: alice.user.id, upTo: m.id }));
    await eventually(() => [0, 1, 3].every((i) => receipts[i].length === 1), 'alice\'s tabs and bob\'s other tab, on other instances');
    alice.sockets[1].emit('typing', { receiverId: bob.user.id, typing: true });
    await eventually(() => [2, 3].every((i) => typing[i].length === 1), 'both of bob\'s tabs hear alice type');

    const room = await createRoom(alice.sockets[0], 'team', [bob.user.id, carol.user.id]);
    const rm = await roomSend(bob.sockets[1], room.id, 'in the room');
    assertOk(await read(carol.socket, { roomId: room.id, upTo: rm.id }));
    await eventually(() => [0, 1, 2, 3].every((i) => receipts[i].length === (i === 2 ? 1 : 2)), 'the members hear carol\'s receipt');
    carol.socket.emit('typing', { roomId: room.id, typing: true });
    await eventually(() => [0, 1, 2, 3].every((i) => typing[i].length === (i < 2 ? 1 : 2)), 'the members hear carol type');
    await sleep(SETTLE_MS);
    assert.deepEqual(receipts.map((l) => l.length), [2, 2, 1, 2, 0, 0]);
    assert.deepEqual(typing.map((l) => l.length), [1, 1, 2, 2, 0, 0]);
  }));

  test('a member removed on one instance hears no receipts or typing sent on the others', withCluster(3, ROOMY, async (w, cluster) => {
    const [n0, n1, n2] = cluster.urls;
    const owner = await w.online(randomName('owner'), { url: n0 });
    const talker = await w.online(randomName('talker'), { url: n1 });
    const leaver = await w.online(randomName('leaver'), { url: n2 });
    leaver.sockets.push(await w.connect(leaver.token, {}, n1));
    const room = await createRoom(owner.socket, 'team', [talker.user.id, leaver.user.id]);
    const m = await roomSend(owner.socket, room.id, 'hello');
    const removed = leaver.sockets.map((s) => waitForEvent(s, 'room:removed'));
    assertOk(await emitAck(owner.socket, 'room:remove', { roomId: room.id, userId: leaver.user.id }));
    const heard = leaver.sockets.flatMap((s) => [recordEvents(s, 'conversation:read'), recordEvents(s, 'typing')]);
    const ownerHears = recordEvents(owner.socket, 'typing');
    assertOk(await read(talker.socket, { roomId: room.id, upTo: m.id }));
    talker.socket.emit('typing', { roomId: room.id, typing: true });
    await eventually(() => ownerHears.length === 1, 'the owner still hears');
    await Promise.all(removed);
    await sleep(SETTLE_MS);
    heard.forEach((l) => assert.deepEqual(l, []));
  }));
});

