// Presence: user:online when a user's first tab connects, user:offline when the last one closes, and
// user:init agreeing with both.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  emitAck, eventually, forEachMode, randomName, recordEvents, sleep, waitForEvent, withServer,
} from '../lib/harness.mjs';
import { assertOnlineUser } from '../lib/expect.mjs';

/** How long to keep listening for an event that must not come. */
const QUIET_MS = 600;

const onlineIds = async (socket) => (await emitAck(socket, 'user:init', null)).map((u) => u.id);
const count = (list, id) => list.filter((x) => x === id).length;

forEachMode((mode) => {
  test('user:online comes once for the first tab and user:offline only when the last tab closes', withServer({ mode }, async (w) => {
    const watcher = await w.online(randomName('watcher'));
    const onlines = recordEvents(watcher.socket, 'user:online');
    const offlines = recordEvents(watcher.socket, 'user:offline');
    const { user, token } = await w.user(randomName('alice'));

    const tab1 = await w.connect(token);
    await eventually(() => onlines.some((u) => u.id === user.id), 'the watcher hears alice come online');
    const tab2 = await w.connect(token);
    await sleep(QUIET_MS);
    const aliceOnline = onlines.filter((u) => u.id === user.id);
    assert.equal(aliceOnline.length, 1, 'one user:online for two tabs');
    assertOnlineUser(aliceOnline[0], { id: user.id, username: user.username, createdAt: user.createdAt });
    assert.equal(count(await onlineIds(watcher.socket), user.id), 1, 'user:init lists alice once');

    tab1.close();
    await sleep(QUIET_MS);
    assert.deepEqual(offlines, [], 'closing one of two tabs is not going offline');
    assert.equal(count(await onlineIds(watcher.socket), user.id), 1, 'alice is still online');
    assert.equal(count(await onlineIds(tab2), user.id), 1, 'alice sees herself online');

    tab2.close();
    await eventually(() => offlines.length > 0, 'the watcher hears alice go offline');
    await sleep(QUIET_MS);
    assert.deepEqual(offlines, [user.id], 'user:offline is the bare id, once');
    assert.equal(count(await onlineIds(watcher.socket), user.id), 0, 'user:init no longer lists alice');
  }));

  test('everyone hears a user come online and go offline exactly once', withServer({ mode }, async (w) => {
    const watchers = [await w.online(randomName('w1')), await w.online(randomName('w2'), { tabs: 2 })];
    const watcherSockets = watchers.flatMap((x) => x.sockets);
    const onlines = watcherSockets.map((s) => recordEvents(s, 'user:online'));
    const offlines = watcherSockets.map((s) => recordEvents(s, 'user:offline'));
    const { user, token } = await w.user(randomName('bob'));

    const socket = await w.connect(token);
    await eventually(() => onlines.every((l) => l.some((u) => u.id === user.id)), 'every watcher socket hears bob come online');
    socket.close();
    await eventually(() => offlines.every((l) => l.includes(user.id)), 'every watcher socket hears bob go offline');
    await sleep(QUIET_MS);
    onlines.forEach((l, i) => assert.equal(l.filter((u) => u.id === user.id).length, 1, `socket ${i}: one user:online`));
    offlines.forEach((l, i) => assert.equal(count(l, user.id), 1, `socket ${i}: one user:offline`));
  }));

  test('a tab that drops its connection without a goodbye still goes offline', withServer({ mode }, async (w) => {
    const watcher = await w.online(randomName('watcher'));
    // No reconnect: on a busy machine it could bring alice back before the server saw her go.
    const alice = await w.online(randomName('alice'), { opts: { reconnection: false } });
    await eventually(async () => (await onlineIds(watcher.socket)).includes(alice.user.id), 'alice is counted online');
    const gone = waitForEvent(watcher.socket, 'user:offline', (id) => id === alice.user.id, 10_000);
    // Cut the TCP connection under the websocket: the server sees no disconnect packet.
    alice.socket.io.engine.transport.ws.terminate();
    assert.equal(await gone, alice.user.id);
    assert.equal(count(await onlineIds(watcher.socket), alice.user.id), 0);
  }));

  test('user:init lists exactly the users with an open tab', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const carol = await w.user(randomName('carol'));
    // Dave is seen online before his tab closes (a tab closed before the server counted it is
    // never announced at all, see the next test).
    const daveAccount = await w.user(randomName('dave'));
    const came = waitForEvent(alice.socket, 'user:online', (u) => u.id === daveAccount.user.id);
    const dave = { ...daveAccount, socket: await w.connect(daveAccount.token) };
    await came;
    const left = waitForEvent(alice.socket, 'user:offline', (id) => id === dave.user.id);
    dave.socket.close();
    await left;

    const listed = await emitAck(alice.socket, 'user:init', null);
    for (const u of listed) assertOnlineUser(u);
    const ids = listed.map((u) => u.id);
    assert.ok(ids.includes(alice.user.id) && ids.includes(bob.user.id), 'connected users are listed');
    assert.ok(!ids.includes(carol.user.id), 'a user who never connected is not listed');
    assert.ok(!ids.includes(dave.user.id), 'a user who left is not listed');
    assert.equal(new Set(ids).size, ids.length, 'nobody is listed twice');
  }));

  test('tabs closed the moment they connect leave nobody online', withServer({ mode }, async (w) => {
    const watcher = await w.online(randomName('watcher'));
    const onlines = recordEvents(watcher.socket, 'user:online');
    const offlines = recordEvents(watcher.socket, 'user:offline');
    const users = [];
    for (let i = 0; i < 25; i++) {
      const { user, token } = await w.user(randomName(`blink${i}`));
      users.push(user);
      (await w.connect(token, { transports: i % 2 ? ['websocket'] : ['polling', 'websocket'] })).close();
    }
    const ids = users.map((u) => u.id);
    await eventually(async () => {
      const listed = await onlineIds(watcher.socket);
      return ids.every((id) => !listed.includes(id));
    }, 'user:init lists none of the closed users', 5_000, 100).catch(async (err) => {
      const ghosts = (await onlineIds(watcher.socket)).filter((id) => ids.includes(id));
      throw new Error(`${err.message}: ${ghosts.length} of ${ids.length} stay online`);
    });
    await sleep(QUIET_MS);
    for (const id of ids) {
      const wentOnline = onlines.filter((u) => u.id === id).length;
      assert.ok(wentOnline <= 1, 'user:online at most once');
      assert.equal(count(offlines, id), wentOnline, 'every user:online is followed by one user:offline');
    }
  }));
});
