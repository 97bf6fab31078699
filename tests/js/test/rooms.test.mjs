// Group rooms (CONTRACT Part 3 → Rooms): every event and its errors, membership and ownership,
// room messages in history, sync and the conversation list, the user directory, old clients;
// then the membership guarantees across three instances (TEST_CLUSTER=1).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  emitAck, eventually, forEachMode, http, randomName, randomUUID, recordEvents, sleep,
  waitForEvent, withCluster, withServer,
} from '../lib/harness.mjs';
import {
  assertErrorAck, assertMessage, assertNestError, assertOk, assertRoom, assertRoomMessage,
  assertRoomMessageEvent, collectRoomHistory, createRoom, roomSend, send,
} from '../lib/expect.mjs';

const SETTLE_MS = 400;
const ROOMY = { env: { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_SEC: '100000', USER_RATE_LIMIT_BURST: '0' } };
const ids = (list) => list.map((x) => x.id);

forEachMode((mode) => {
  test('room:create acks the room with the caller as owner, and every member hears room:updated', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'), { tabs: 2 });
    const bob = await w.online(randomName('bob'));
    const carol = await w.online(randomName('carol'));
    const updates = [...alice.sockets, bob.socket, carol.socket].map((s) => recordEvents(s, 'room:updated'));

    const room = await createRoom(alice.socket, '  Team  ', [bob.user.id, carol.user.id]);
    assertRoom(room, { name: 'Team', ownerId: alice.user.id });
    assert.deepEqual(room.members[0].id, alice.user.id, 'the owner is listed first');
    assert.deepEqual(
      room.members.map((m) => [m.id, m.role]).sort(),
      [[alice.user.id, 'owner'], [bob.user.id, 'member'], [carol.user.id, 'member']].sort(),
    );
    assert.deepEqual(room.members.find((m) => m.id === bob.user.id).username, bob.user.username);

    await eventually(() => updates.every((l) => l.length === 1), 'every socket of every member hears room:updated');
    for (const l of updates) assert.deepEqual(l[0], room);

    // memberIds may be empty (or absent): a room of one.
    const solo = await createRoom(alice.socket, 'notes', []);
    assert.deepEqual(ids(solo.members), [alice.user.id]);
    const alsoSolo = assertOk(await emitAck(alice.socket, 'room:create', { name: 'drafts' }));
    assert.deepEqual(ids(alsoSolo.members), [alice.user.id]);
    await sleep(SETTLE_MS);
    assert.equal(updates[2].length, 1, 'bob hears nothing of rooms he is not in');
  }));

  test('room:create refuses bad input with the contract\'s codes and creates nothing', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const bad = [
      [{ name: '', memberIds: [] }, 'invalid_payload'],
      [{ name: '   ', memberIds: [] }, 'invalid_payload'],
      [{ name: 'x'.repeat(101), memberIds: [] }, 'invalid_payload'],
      [{ name: 5 }, 'invalid_payload'],
      [{ memberIds: [bob.user.id] }, 'invalid_payload'],
      [{ name: 'ok', memberIds: bob.user.id }, 'invalid_payload'],
      [{ name: 'ok', memberIds: ['not-a-uuid'] }, 'invalid_payload'],
      [{ name: 'ok', memberIds: [7] }, 'invalid_payload'],
      [{ name: 'ok', memberIds: [bob.user.id, bob.user.id] }, 'invalid_payload'],
      [{ name: 'ok', memberIds: [bob.user.id, randomUUID()] }, 'unknown_user'],
      [null, 'invalid_payload'],
      ['room', 'invalid_payload'],
    ];
    for (const [payload, code] of bad) {
      assertErrorAck(await emitAck(alice.socket, 'room:create', payload), code, JSON.stringify(payload));
    }
    // 100 characters after trimming is the longest name.
    const long = await createRoom(alice.socket, ` ${'é'.repeat(100)} `, []);
    assert.equal(long.name, 'é'.repeat(100));
    const list = await http(`${w.url}/api/conversations`, { token: bob.token });
    assert.deepEqual(list.body, [], 'no room was created with bob in it');
  }));

  test('room:rename is for the owner; a member is forbidden and a stranger gets not_found', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const eve = await w.online(randomName('eve'));
    const room = await createRoom(alice.socket, 'old', [bob.user.id]);
    const bobHears = waitForEvent(bob.socket, 'room:updated', (r) => r.name === 'new');
    const renamed = assertOk(await emitAck(alice.socket, 'room:rename', { roomId: room.id, name: ' new ' }));
    assertRoom(renamed, { id: room.id, name: 'new' });
    assert.deepEqual(await bobHears, renamed);

    assertErrorAck(await emitAck(bob.socket, 'room:rename', { roomId: room.id, name: 'mine' }), 'forbidden');
    const stranger = await emitAck(eve.socket, 'room:rename', { roomId: room.id, name: 'mine' });
    const nowhere = await emitAck(eve.socket, 'room:rename', { roomId: randomUUID(), name: 'mine' });
    assertErrorAck(stranger, 'not_found');
    assert.deepEqual(stranger, nowhere, 'a room one is not in looks exactly like no room');
    assertErrorAck(await emitAck(alice.socket, 'room:rename', { roomId: room.id, name: '' }), 'invalid_payload');
    assertErrorAck(await emitAck(alice.socket, 'room:rename', { roomId: 'nope', name: 'x' }), 'invalid_payload');
    const fetched = await http(`${w.url}/api/rooms/${room.id}`, { token: bob.token });
    assert.equal(fetched.body.name, 'new', 'refused renames changed nothing');
  }));

  test('room:add is for the owner, skips members, tells the added users, and checks the caps', withServer({ mode, env: { ROOM_MAX_MEMBERS: '4', MAX_ROOMS_PER_USER: '2' } }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const carol = await w.online(randomName('carol'));
    const dave = await w.online(randomName('dave'));
    const erin = await w.online(randomName('erin'));
    const room = await createRoom(alice.socket, 'team', [bob.user.id]);

    const carolHears = waitForEvent(carol.socket, 'room:updated', (r) => r.id === room.id);
    const added = assertOk(await emitAck(alice.socket, 'room:add', { roomId: room.id, userIds: [bob.user.id, carol.user.id] }));
    assertRoom(added, { id: room.id });
    assert.deepEqual(ids(added.members).sort(), [alice.user.id, bob.user.id, carol.user.id].sort());
    assert.deepEqual(await carolHears, added);

    assertErrorAck(await emitAck(bob.socket, 'room:add', { roomId: room.id, userIds: [dave.user.id] }), 'forbidden');
    assertErrorAck(await emitAck(alice.socket, 'room:add', { roomId: room.id, userIds: [randomUUID()] }), 'unknown_user');
    assertErrorAck(await emitAck(alice.socket, 'room:add', { roomId: room.id, userIds: [] }), 'invalid_payload');
    assertErrorAck(await emitAck(alice.socket, 'room:add', { roomId: room.id, userIds: [dave.user.id, dave.user.id] }), 'invalid_payload');
    assertErrorAck(await emitAck(alice.socket, 'room:add', { roomId: room.id, userIds: [dave.user.id, erin.user.id] }), 'room_full');
    assertErrorAck(await emitAck(dave.socket, 'room:add', { roomId: room.id, userIds: [erin.user.id] }), 'not_found');
    // Erin is in two rooms already: a third is refused, and nothing of it is stored.
    await createRoom(erin.socket, 'one', []);
    await createRoom(erin.socket, 'two', []);
    assertErrorAck(await emitAck(alice.socket, 'room:add', { roomId: room.id, userIds: [erin.user.id] }), 'too_many_rooms');
    assertErrorAck(await emitAck(erin.socket, 'room:create', { name: 'three', memberIds: [] }), 'too_many_rooms');
    const now = await http(`${w.url}/api/rooms/${room.id}`, { token: alice.token });
    assert.equal(now.body.members.length, 3, 'refused adds changed nothing');
  }));

  test('room:remove: the owner removes, a member leaves, ownership passes on, the last member deletes the room', withServer({ mode, ...ROOMY }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'), { tabs: 2 });
    const carol = await w.online(randomName('carol'));
    const room = await createRoom(alice.socket, 'team', [bob.user.id, carol.user.id]);
    const said = await roomSend(bob.socket, room.id, 'before leaving');

    assertErrorAck(await emitAck(carol.socket, 'room:remove', { roomId: room.id, userId: bob.user.id }), 'forbidden');
    assertErrorAck(await emitAck(alice.socket, 'room:remove', { roomId: room.id, userId: randomUUID() }), 'unknown_user');

    // The owner removes bob: both his tabs hear room:removed; the others hear room:updated.
    const gone = bob.sockets.map((s) => waitForEvent(s, 'room:removed'));
    const carolUpdated = waitForEvent(carol.socket, 'room:updated', (r) => r.members.length === 2);
    const afterRemove = assertOk(await emitAck(alice.socket, 'room:remove', { roomId: room.id, userId: bob.user.id }));
    assertRoom(afterRemove, { id: room.id });
    assert.deepEqual(ids(afterRemove.members).sort(), [alice.user.id, carol.user.id].sort());
    for (const g of gone) assert.deepEqual(await g, { roomId: room.id });
    assert.deepEqual(await carolUpdated, afterRemove);
    // His earlier message stays; he reads nothing of the room any more.
    const history = await collectRoomHistory(carol.socket, room.id);
    assert.deepEqual(ids(history), [said.id]);
    assertErrorAck(await emitAck(bob.socket, 'room:history', { roomId: room.id }), 'not_found');
    assertNestError(await http(`${w.url}/api/rooms/${room.id}`, { token: bob.token }), 404, 'Room not found');

    // The owner leaves: carol, the earliest remaining member, becomes owner.
    const carolSeesOwner = waitForEvent(carol.socket, 'room:updated', (r) => r.ownerId === carol.user.id);
    assert.deepEqual(await emitAck(alice.socket, 'room:remove', { roomId: room.id, userId: alice.user.id }), { left: true });
    const handed = await carolSeesOwner;
    assert.deepEqual(handed.members.map((m) => [m.id, m.role]), [[carol.user.id, 'owner']]);

    // The last member leaves: the room and its messages are gone.
    const carolGone = waitForEvent(carol.socket, 'room:removed');
    assert.deepEqual(await emitAck(carol.socket, 'room:remove', { roomId: room.id, userId: carol.user.id }), { left: true });
    assert.deepEqual(await carolGone, { roomId: room.id });
    assertErrorAck(await emitAck(carol.socket, 'room:send', { roomId: room.id, content: 'echo' }), 'not_found');
    const list = await http(`${w.url}/api/conversations`, { token: carol.token });
    assert.deepEqual(list.body.filter((c) => c.room), []);
  }));

  test('room:send acks after the commit and every socket of every member gets room:message once', withServer({ mode, ...ROOMY }, async (w) => {
    const alice = await w.online(randomName('alice'), { tabs: 2 });
    const bob = await w.online(randomName('bob'), { tabs: 2 });
    const eve = await w.online(randomName('eve'));
    const room = await createRoom(alice.socket, 'team', [bob.user.id]);
    const inboxes = [...alice.sockets, ...bob.sockets, eve.socket].map((s) => recordEvents(s, 'room:message'));
    const direct = [...alice.sockets, ...bob.sockets].map((s) => recordEvents(s, 'message:new'));

    const ack = await roomSend(alice.socket, room.id, '  hello team 👋 ');
    assertRoomMessage(ack, { content: '  hello team 👋 ', senderId: alice.user.id, roomId: room.id });
    await eventually(() => inboxes.slice(0, 4).every((l) => l.length === 1), 'every member socket gets room:message');
    await sleep(SETTLE_MS);
    for (const l of inboxes.slice(0, 4)) {
      assert.equal(l.length, 1);
      assertRoomMessageEvent(l[0]);
      assert.deepEqual(l[0], { ...ack, senderUsername: alice.user.username });
    }
    assert.equal(inboxes[4].length, 0, 'no one outside the room hears it');
    assert.ok(direct.every((l) => l.length === 0), 'room traffic is never a message:new');

    // A retry with the same clientMsgId returns the original and emits nothing.
    const first = await roomSend(bob.socket, room.id, 'once', { clientMsgId: 'r-1' });
    await eventually(() => inboxes[0].length === 2, 'alice gets the first send');
    const retry = await roomSend(bob.socket, room.id, 'once', { clientMsgId: 'r-1' });
    assert.deepEqual(retry, first);
    await sleep(SETTLE_MS);
    assert.equal(inboxes[0].length, 2, 'the retry emitted nothing');
    // The same key on a direct message would have to ack a room message (no receiverId), or
    // store a second message under one key: it is refused, and stores nothing.
    assertErrorAck(await emitAck(bob.socket, 'message:send', { receiverId: alice.user.id, content: 'dm', clientMsgId: 'r-1' }), 'invalid_payload');
    const dm = await send(bob.socket, alice.user.id, 'dm', { clientMsgId: 'd-1' });
    assertErrorAck(await emitAck(bob.socket, 'room:send', { roomId: room.id, content: 'x', clientMsgId: 'd-1' }), 'invalid_payload');
    assert.deepEqual(await emitAck(bob.socket, 'message:history', { receiverId: alice.user.id }), [dm]);

    // Errors: not a member, no such room, content rules, payload shapes.
    const stranger = await emitAck(eve.socket, 'room:send', { roomId: room.id, content: 'hi' });
    assertErrorAck(stranger, 'not_found');
    assert.deepEqual(await emitAck(eve.socket, 'room:send', { roomId: randomUUID(), content: 'hi' }), stranger);
    assertErrorAck(await emitAck(alice.socket, 'room:send', { roomId: room.id, content: '   ' }), 'invalid_payload');
    assertErrorAck(await emitAck(alice.socket, 'room:send', { roomId: room.id, content: 'x'.repeat(10_001) }), 'content_too_long');
    assertErrorAck(await emitAck(alice.socket, 'room:send', { roomId: room.id, content: 5 }), 'invalid_payload');
    assertErrorAck(await emitAck(alice.socket, 'room:send', { roomId: room.id }), 'invalid_payload');
    assertErrorAck(await emitAck(alice.socket, 'room:send', { content: 'x' }), 'invalid_payload');
    assertErrorAck(await emitAck(alice.socket, 'room:send', { roomId: room.id, content: 'x', clientMsgId: 'c'.repeat(65) }), 'invalid_payload');
    const history = await collectRoomHistory(alice.socket, room.id);
    assert.deepEqual(ids(history), [ack.id, first.id], 'refused sends stored nothing');
  }));

  test('room:send shares the per-socket rate-limit bucket with message:send', withServer({ mode, env: { RATE_LIMIT_BURST: '6', RATE_LIMIT_PER_SEC: '1' } }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const room = await createRoom(alice.socket, 'team', [bob.user.id]);
    const acks = [];
    for (let i = 0; i < 4; i++) {
      acks.push(await emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: `d${i}` }));
      acks.push(await emitAck(alice.socket, 'room:send', { roomId: room.id, content: `r${i}` }));
    }
    const limited = acks.filter((a) => a.error?.code === 'rate_limited');
    assert.ok(limited.length >= 1, `the shared bucket ran out: ${JSON.stringify(acks.map((a) => a.error?.code ?? 'ok'))}`);
    assert.ok(acks.filter((a) => !a.error).length <= 7, 'no more than the burst (plus a refill) went through');
    const stored = await collectRoomHistory(alice.socket, room.id);
    const okRoom = acks.filter((a) => !a.error && a.roomId);
    assert.deepEqual(ids(stored), ids(okRoom), 'exactly the acked room sends are stored');
  }));

  test('room:history and the REST room page go back through 130 messages exactly once, oldest first', withServer({ mode, ...ROOMY }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const eve = await w.online(randomName('eve'));
    const room = await createRoom(alice.socket, 'team', [bob.user.id]);
    const sent = [];
    for (let i = 0; i < 130; i++) {
      sent.push(await roomSend(i % 3 === 0 ? bob.socket : alice.socket, room.id, `m${i}`));
    }
    const latest = await emitAck(bob.socket, 'room:history', { roomId: room.id });
    assert.equal(latest.length, 100, 'the latest 100 by default');
    assert.deepEqual(ids(latest), ids(sent.slice(30)));
    latest.forEach((m) => assertRoomMessage(m));
    assert.deepEqual(ids(await collectRoomHistory(bob.socket, room.id, 7)), ids(sent));

    // REST, with before, limit and hasMore.
    const restAll = [];
    let before;
    for (let i = 0; i < 100; i++) {
      const q = new URLSearchParams({ limit: '40', ...(before ? { before } : {}) });
      const page = await http(`${w.url}/api/rooms/${room.id}/messages?${q}`, { token: alice.token });
      assert.equal(page.status, 200, page.text);
      restAll.unshift(...page.body.messages);
      if (!page.body.hasMore) break;
      before = page.body.messages[0].id;
    }
    assert.deepEqual(restAll, sent);

    // Strangers, unknown rooms and malformed ids look alike.
    const stranger = await http(`${w.url}/api/rooms/${room.id}/messages`, { token: eve.token });
    assertNestError(stranger, 404, 'Room not found');
    const unknown = await http(`${w.url}/api/rooms/${randomUUID()}/messages`, { token: eve.token });
    const malformed = await http(`${w.url}/api/rooms/not-a-room`, { token: eve.token });
    assert.deepEqual(unknown.body, stranger.body);
    assert.deepEqual(malformed.body, stranger.body);
    assert.equal((await http(`${w.url}/api/rooms/${room.id}`)).status, 401);
    assertErrorAck(await emitAck(eve.socket, 'room:history', { roomId: room.id }), 'not_found');
    assertErrorAck(await emitAck(alice.socket, 'room:history', { roomId: room.id, limit: 101 }), 'invalid_payload');
    const direct = await emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: 'direct' });
    assertErrorAck(await emitAck(alice.socket, 'room:history', { roomId: room.id, before: direct.id }), 'invalid_payload');
  }));

  test('message:sync returns room messages of the caller\'s rooms only, in commit order with direct ones', withServer({ mode, ...ROOMY }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const carol = await w.online(randomName('carol'));
    const mine = await createRoom(alice.socket, 'mine', [bob.user.id]);
    const theirs = await createRoom(bob.socket, 'theirs', [carol.user.id]);
    const cursor = await emitAck(bob.socket, 'message:send', { receiverId: alice.user.id, content: 'cursor' });
    const expected = [];
    expected.push(await roomSend(bob.socket, mine.id, 'r1'));
    await roomSend(bob.socket, theirs.id, 'not for alice');
    expected.push(await emitAck(carol.socket, 'message:send', { receiverId: alice.user.id, content: 'd1' }));
    expected.push(await roomSend(alice.socket, mine.id, 'r2'));
    const page = await emitAck(alice.socket, 'message:sync', { after: cursor.id });
    assert.equal(page.hasMore, false);
    assert.deepEqual(page.messages, expected);
    assertRoomMessage(page.messages[0]);
    assertMessage(page.messages[1]);
    // A room message as the cursor works for members and is refused for others.
    const fromRoom = await emitAck(alice.socket, 'message:sync', { after: expected[0].id });
    assert.deepEqual(ids(fromRoom.messages), ids(expected.slice(1)));
    assertErrorAck(await emitAck(carol.socket, 'message:sync', { after: expected[0].id }), 'invalid_payload');
  }));

  test('GET /api/conversations lists rooms beside direct chats, most recent first', withServer({ mode, ...ROOMY }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const carol = await w.online(randomName('carol'));
    const older = await createRoom(alice.socket, 'older', [bob.user.id, carol.user.id]);
    const said = await roomSend(bob.socket, older.id, 'in the room');
    await emitAck(carol.socket, 'message:send', { receiverId: alice.user.id, content: 'direct' });
    const empty = await createRoom(bob.socket, 'empty', [alice.user.id]);
    const res = await http(`${w.url}/api/conversations`, { token: alice.token });
    assert.equal(res.status, 200, res.text);
    const [first, second, third] = res.body;
    assert.equal(res.body.length, 3);
    assert.deepEqual(first.room, { id: empty.id, name: 'empty', memberCount: 2, createdAt: empty.createdAt });
    assert.equal(first.lastMessage, null, 'a room without messages sorts by its creation');
    assert.equal(second.peer.id, carol.user.id);
    assert.equal(second.lastMessage.content, 'direct');
    assert.deepEqual(third.room, { id: older.id, name: 'older', memberCount: 3, createdAt: older.createdAt });
    assert.deepEqual(third.lastMessage, said);
  }));

  test('GET /api/users finds people by name prefix, online first, offline ones too', withServer({ mode }, async (w) => {
    const tag = randomName('x').slice(2, 8);
    const me = await w.online(`${tag}_me`);
    const offline = await w.user(`${tag}_Aaron`);
    const online = await w.online(`${tag}_zoe`);
    await w.user(`${tag}_bea`);
    const res = await http(`${w.url}/api/users?q=${tag.toUpperCase()}`, { token: me.token });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body.map((u) => u.username), [`${tag}_zoe`, `${tag}_Aaron`, `${tag}_bea`]);
    assert.deepEqual(res.body[0], { id: online.user.id, username: `${tag}_zoe`, online: true });
    assert.deepEqual(res.body[1], { id: offline.user.id, username: `${tag}_Aaron`, online: false });
    const one = await http(`${w.url}/api/users?q=${tag}&limit=1`, { token: me.token });
    assert.deepEqual(one.body.map((u) => u.username), [`${tag}_zoe`]);
    const none = await http(`${w.url}/api/users?q=${tag}_q`, { token: me.token });
    assert.deepEqual(none.body, []);
    for (const limit of ['0', '51', 'x']) {
      assertNestError(await http(`${w.url}/api/users?q=a&limit=${limit}`, { token: me.token }), 400);
    }
    assert.equal((await http(`${w.url}/api/users?q=a`)).status, 401);
  }));

  test('an old client put in a room hears no message:new for room traffic', withServer({ mode, ...ROOMY }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const old = await w.user(randomName('oldie'));
    const v2 = await w.connectV2({ query: { token: old.token } });
    const heard = [];
    v2.on('message:new', (m) => heard.push(m));
    const room = await createRoom(alice.socket, 'with an old client', [old.user.id]);
    await roomSend(alice.socket, room.id, 'room traffic');
    const direct = await emitAck(alice.socket, 'message:send', { receiverId: old.user.id, content: 'direct' });
    await eventually(() => heard.length >= 1, 'the old client still gets direct messages');
    await sleep(SETTLE_MS);
    assert.deepEqual(heard.map((m) => m.id), [direct.id]);
  }));
});

const RUN = process.env.TEST_CLUSTER === '1';

describe('rooms across three instances', { skip: RUN ? false : 'set TEST_CLUSTER=1 to run the cluster tests' }, () => {
  test('a member added on one instance hears every later message sent on another', withCluster(3, ROOMY, async (w, cluster) => {
    const [n0, n1, n2] = cluster.urls;
    const owner = await w.online(randomName('owner'), { url: n0 });
    const talker = await w.online(randomName('talker'), { url: n1 });
    for (let round = 0; round < 10; round++) {
      const room = await createRoom(owner.socket, `room ${round}`, [talker.user.id]);
      const newbie = await w.online(randomName('newbie'), { url: n2 });
      const heard = recordEvents(newbie.socket, 'room:message');
      assertOk(await emitAck(owner.socket, 'room:add', { roomId: room.id, userIds: [newbie.user.id] }));
      // Right after the ack, from a third instance.
      const ack = await roomSend(talker.socket, room.id, `hello ${round}`);
      await eventually(() => heard.some((m) => m.id === ack.id), `round ${round}: the added user hears the next message`, 5_000);
    }
  }));

  test('a removed member hears nothing more of the room, on any instance', withCluster(3, ROOMY, async (w, cluster) => {
    const [n0, n1, n2] = cluster.urls;
    const owner = await w.online(randomName('owner'), { url: n0 });
    const talker = await w.online(randomName('talker'), { url: n1 });
    const leaver = await w.online(randomName('leaver'), { url: n2 });
    leaver.sockets.push(await w.connect(leaver.token, {}, n1));
    const room = await createRoom(owner.socket, 'team', [talker.user.id, leaver.user.id]);
    await roomSend(talker.socket, room.id, 'while still in');
    await eventually(async () => (await collectRoomHistory(leaver.socket, room.id)).length === 1, 'the leaver reads the room');
    const after = leaver.sockets.map((s) => recordEvents(s, 'room:message'));
    const updates = leaver.sockets.map((s) => recordEvents(s, 'room:updated'));
    const removed = leaver.sockets.map((s) => waitForEvent(s, 'room:removed', (r) => r.roomId === room.id, 10_000));
    assertOk(await emitAck(owner.socket, 'room:remove', { roomId: room.id, userId: leaver.user.id }));
    const sent = [];
    for (let i = 0; i < 20; i++) sent.push(await roomSend(i % 2 ? owner.socket : talker.socket, room.id, `after ${i}`));
    assertOk(await emitAck(owner.socket, 'room:rename', { roomId: room.id, name: 'renamed' }));
    await Promise.all(removed);
    await sleep(1_000);
    after.forEach((l, i) => assert.deepEqual(l, [], `tab ${i} heard no room:message after the remove`));
    updates.forEach((l, i) => assert.deepEqual(l, [], `tab ${i} heard no room:updated after the remove`));
    for (const s of leaver.sockets) assertErrorAck(await emitAck(s, 'room:history', { roomId: room.id }), 'not_found');
  }));

  test('two tabs of one member on different instances each get every room message once', withCluster(3, ROOMY, async (w, cluster) => {
    const [n0, n1, n2] = cluster.urls;
    const alice = await w.online(randomName('alice'), { url: n0 });
    const bob = await w.online(randomName('bob'), { url: n1 });
    bob.sockets.push(await w.connect(bob.token, {}, n2));
    const members = [];
    for (let i = 0; i < 5; i++) members.push((await w.online(randomName('m'), { url: cluster.urls[i % 3] })).user.id);
    const room = await createRoom(alice.socket, 'big', [bob.user.id, ...members]);
    const inboxes = [alice.socket, ...bob.sockets].map((s) => recordEvents(s, 'room:message'));
    const sent = [];
    for (let i = 0; i < 30; i++) sent.push(await roomSend(i % 2 ? bob.sockets[1] : alice.socket, room.id, `m${i}`));
    await eventually(() => inboxes.every((l) => l.length >= 30), 'every tab gets all 30', 10_000);
    await sleep(SETTLE_MS);
    inboxes.forEach((l, i) => assert.deepEqual(ids(l).sort(), ids(sent).sort(), `tab ${i}: each message once`));
    // Every instance reads the same history, and a retry on another instance stores nothing new.
    const again = await roomSend(bob.sockets[0], room.id, 'm1', { clientMsgId: 'x-1' });
    const retry = await roomSend(bob.sockets[1], room.id, 'm1', { clientMsgId: 'x-1' });
    assert.deepEqual(retry, again);
    for (const s of [alice.socket, ...bob.sockets]) {
      assert.deepEqual(ids(await collectRoomHistory(s, room.id)), [...ids(sent), again.id]);
    }
  }));
});
