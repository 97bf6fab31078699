// Three instances sharing one PostgreSQL database and one Redis prefix: delivery, presence and
// durability across instances. Runs only with TEST_CLUSTER=1.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  emitAck, eventually, http, parsePrometheus, randomName, recordEvents, sleep, waitForEvent, withCluster,
} from '../lib/harness.mjs';
import { assertMessageNew, assertOk, collectHistory, collectRoomHistory, send } from '../lib/expect.mjs';

const RUN = process.env.TEST_CLUSTER === '1';
const ROOMY = { env: { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_SEC: '100000', USER_RATE_LIMIT_BURST: '0' } };
const QUIET_MS = 800;

const count = (list, x) => list.filter((y) => y === x).length;
const onlineIds = async (socket) => (await emitAck(socket, 'user:init', null)).map((u) => u.id);

describe('a cluster of three instances', { skip: RUN ? false : 'set TEST_CLUSTER=1 to run the cluster tests' }, () => {
  test('a message crosses instances both ways and reaches every tab exactly once', withCluster(3, ROOMY, async (w, cluster) => {
    const [n0, n1, n2] = cluster.urls;
    const alice = await w.online(randomName('alice'), { url: n0 });
    alice.sockets.push(await w.connect(alice.token, {}, n2));
    const bob = await w.online(randomName('bob'), { url: n1 });
    bob.sockets.push(await w.connect(bob.token, {}, n2));
    const sockets = [...alice.sockets, ...bob.sockets];
    const inboxes = sockets.map((s) => recordEvents(s, 'message:new'));

    const there = await send(alice.sockets[0], bob.user.id, 'from node0 to node1');
    // Bob answers once he has it, as a person would: a reply sent before the first message reached
    // his instance may overtake it there (no order holds across senders and instances).
    await eventually(() => inboxes.every((l) => l.length >= 1), 'every tab gets the first message', 10_000);
    const back = await send(bob.sockets[0], alice.user.id, 'from node1 to node0');
    await eventually(() => inboxes.every((l) => l.length >= 2), 'every tab gets both messages', 10_000);
    await sleep(QUIET_MS);
    inboxes.forEach((l, i) => {
      assert.deepEqual(l.map((m) => m.id), [there.id, back.id], `socket ${i} got each message once, in order`);
      l.forEach((m) => assertMessageNew(m));
    });
    assert.deepEqual(inboxes[2][0], { ...there, senderUsername: alice.user.username });
    assert.deepEqual(inboxes[0][1], { ...back, senderUsername: bob.user.username });

    // Every instance reads the same history.
    for (const socket of sockets) {
      const peer = alice.sockets.includes(socket) ? bob : alice;
      assert.deepEqual(await emitAck(socket, 'message:history', { receiverId: peer.user.id }), [there, back]);
    }
  }));

  test('presence spans instances: online once, offline when the last tab on any instance closes', withCluster(3, ROOMY, async (w, cluster) => {
    const watchers = [];
    for (const url of cluster.urls) watchers.push(await w.online(randomName('watcher'), { url }));
    const onlines = watchers.map((x) => recordEvents(x.socket, 'user:online'));
    const offlines = watchers.map((x) => recordEvents(x.socket, 'user:offline'));
    const { user, token } = await w.user(randomName('alice'));

    const tab1 = await w.connect(token, {}, cluster.urls[1]);
    await eventually(() => onlines.every((l) => l.some((u) => u.id === user.id)), 'every instance hears alice come online', 10_000);
    const tab2 = await w.connect(token, {}, cluster.urls[2]);
    await sleep(QUIET_MS);
    onlines.forEach((l, i) => assert.equal(l.filter((u) => u.id === user.id).length, 1, `watcher on node${i}: one user:online`));
    for (const x of watchers) assert.equal(count(await onlineIds(x.socket), user.id), 1, 'user:init lists alice once');

    tab1.close();
    await sleep(QUIET_MS);
    offlines.forEach((l, i) => assert.equal(count(l, user.id), 0, `watcher on node${i}: not offline while a tab is open`));
    assert.equal(count(await onlineIds(watchers[0].socket), user.id), 1);

    tab2.close();
    await eventually(() => offlines.every((l) => l.includes(user.id)), 'every instance hears alice go offline', 10_000);
    await sleep(QUIET_MS);
    offlines.forEach((l, i) => assert.equal(count(l, user.id), 1, `watcher on node${i}: one user:offline`));
    for (const x of watchers) assert.equal(count(await onlineIds(x.socket), user.id), 0, 'user:init no longer lists alice');
  }));

  test('a killed instance\'s users go offline elsewhere within 20 s and no acked message, direct or room, is lost', withCluster(3, ROOMY, async (w, cluster) => {
    const [n0, n1, n2] = cluster.urls;
    const watcher0 = await w.online(randomName('watcher'), { url: n0 });
    const watcher1 = await w.online(randomName('watcher'), { url: n1 });
    const bob = await w.online(randomName('bob'), { url: n0 });
    const alice = await w.online(randomName('alice'), { url: n2 });
    // Carol has a tab on the doomed instance and one on a survivor: she must stay online.
    const carol = await w.online(randomName('carol'), { url: n1 });
    carol.sockets.push(await w.connect(carol.token, {}, n2));
    const watcherOffline = [watcher0, watcher1].map((x) => recordEvents(x.socket, 'user:offline'));
    const room = assertOk(await emitAck(bob.socket, 'room:create', { name: 'crash', memberIds: [alice.user.id, carol.user.id] }));

    const acked = [];
    const ackedInRoom = [];
    let stopping = false;
    const pump = async (socket, event, target, label) => {
      for (let i = 0; i < 100_000 && !stopping && socket.connected; i++) {
        try {
          const ack = await emitAck(socket, event, { ...target, content: `${label} ${i}` }, 3_000);
          if (!ack.error) (ack.roomId ? ackedInRoom : acked).push(ack);
        } catch {
          return; // no ack: the instance died with the send in flight, so nothing was promised.
        }
      }
    };
    const toBob = { receiverId: bob.user.id };
    const toRoom = { roomId: room.id };
    const pumps = [
      pump(alice.socket, 'message:send', toBob, 'a1'), pump(alice.socket, 'message:send', toBob, 'a2'),
      pump(alice.socket, 'message:send', toBob, 'a3'), pump(bob.socket, 'message:send', { receiverId: alice.user.id }, 'b1'),
      pump(alice.socket, 'room:send', toRoom, 'ra'), pump(carol.sockets[1], 'room:send', toRoom, 'rc'),
    ];
    await eventually(() => acked.filter((m) => m.senderId === alice.user.id).length >= 60, 'alice gets 60 sends acked', 20_000);

    const killedAt = Date.now();
    cluster.nodes[2].kill();
    const offlineEverywhere = Promise.all(
      [watcher0, watcher1].map((x) => waitForEvent(x.socket, 'user:offline', (id) => id === alice.user.id, 20_000)),
    );
    await offlineEverywhere;
    const took = Date.now() - killedAt;
    assert.ok(took <= 20_000, `alice went offline after ${took} ms`);
    stopping = true;
    await Promise.all(pumps);

    watcherOffline.forEach((l, i) => assert.equal(count(l, alice.user.id), 1, `watcher ${i}: one user:offline for alice`));
    watcherOffline.forEach((l, i) => assert.equal(count(l, carol.user.id), 0, `watcher ${i}: carol still has a tab on a live instance`));
    assert.equal(count(await onlineIds(watcher0.socket), carol.user.id), 1, 'carol is still online');
    assert.equal(count(await onlineIds(watcher0.socket), alice.user.id), 0, 'alice is listed offline');

    const history = await collectHistory(bob.socket, alice.user.id);
    const stored = new Set(history.map((m) => m.id));
    const lost = acked.filter((m) => !stored.has(m.id));
    assert.deepEqual(lost, [], `every acked message is in history (${acked.length} acked)`);
    assert.equal(stored.size, history.length, 'no duplicates in history');

    // The room lost nothing either: every acked room message is in its history, once.
    assert.ok(ackedInRoom.some((m) => m.senderId === alice.user.id), 'alice got room sends acked before the kill');
    const roomHistory = await collectRoomHistory(bob.socket, room.id);
    const inRoom = new Set(roomHistory.map((m) => m.id));
    assert.deepEqual(ackedInRoom.filter((m) => !inRoom.has(m.id)), [], `every acked room message is stored (${ackedInRoom.length} acked)`);
    assert.equal(inRoom.size, roomHistory.length, 'no duplicates in the room history');

    // Alice comes back on another instance and reads the same history.
    const back = await w.connect(alice.token, {}, n1);
    assert.deepEqual(await collectHistory(back, bob.user.id), history);
    assert.deepEqual(await collectRoomHistory(back, room.id), roomHistory);
  }));

  test('a gracefully stopped instance hands its users over: they go offline unless connected elsewhere', withCluster(3, { env: { ...ROOMY.env, PRESENCE_TTL_SECS: '6' } }, async (w, cluster) => {
    const [n0, n1, n2] = cluster.urls;
    const alice = await w.online(randomName('alice'), { url: n1 });
    const carol = await w.online(randomName('carol'), { url: n1 });
    carol.sockets.push(await w.connect(carol.token, {}, n2));
    const bob = await w.online(randomName('bob'), { url: n0 });
    await eventually(async () => {
      const ids = await onlineIds(bob.socket);
      return [alice, carol].every((u) => ids.includes(u.user.id));
    }, 'bob sees alice and carol online');
    const offlines = recordEvents(bob.socket, 'user:offline');

    await cluster.nodes[1].stop(); // SIGTERM, as in a rolling restart
    // Disconnect handlers that run after the namespace closed once hit a panic in socketioxide.
    assert.doesNotMatch(cluster.nodes[1].log(), /panicked/, 'no panic while stopping with sockets open');
    await eventually(() => offlines.includes(alice.user.id), 'bob hears alice go offline', 15_000);
    await sleep(QUIET_MS);
    const ids = await onlineIds(bob.socket);
    assert.ok(!ids.includes(alice.user.id), 'user:init no longer lists alice');
    assert.ok(ids.includes(carol.user.id), 'carol, still connected to another instance, stays online');
    assert.equal(count(offlines, carol.user.id), 0, 'no user:offline for carol');
    assert.equal(count(offlines, alice.user.id), 1, 'one user:offline for alice');
  }));

  test('20 users exchanging 1,000 messages across three instances get each exactly once on every socket', withCluster(3, ROOMY, async (w, cluster) => {
    const users = [];
    for (let i = 0; i < 20; i++) {
      const u = await w.online(randomName(`u${i}`), { url: cluster.urls[i % 3] });
      if (i % 4 === 0) u.sockets.push(await w.connect(u.token, {}, cluster.urls[(i + 1) % 3]));
      users.push(u);
    }
    const sockets = users.flatMap((u, ui) => u.sockets.map((s, tab) => ({
      s, ui, tab, node: tab === 0 ? ui % 3 : (ui + 1) % 3,
    })));
    const inboxes = sockets.map(({ s }) => recordEvents(s, 'message:new'));

    // A fixed, seeded plan so a failure can be replayed.
    let seed = 12345;
    const rand = (n) => { // mulberry32
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const plan = Array.from({ length: 1000 }, (_, k) => {
      const from = rand(20);
      let to = rand(19);
      if (to >= from) to += 1;
      return { k, from, to, tab: rand(users[from].sockets.length) };
    });

    const acks = new Array(plan.length);
    let next = 0;
    const worker = async () => {
      while (next < plan.length) {
        const p = plan[next++];
        const ack = await emitAck(users[p.from].sockets[p.tab], 'message:send',
          { receiverId: users[p.to].user.id, content: `m${p.k} ${p.from}->${p.to}` }, 15_000);
        acks[p.k] = assertOk(ack, `message ${p.k}`);
      }
    };
    await Promise.all(Array.from({ length: 25 }, worker));
    assert.equal(new Set(acks.map((a) => a.id)).size, 1000, '1,000 distinct ids');

    // Each socket must receive exactly the messages sent by or to its user.
    const expected = sockets.map(({ ui }) => new Set(plan.filter((p) => p.from === ui || p.to === ui).map((p) => acks[p.k].id)));
    await eventually(
      () => inboxes.every((inbox, i) => inbox.length >= expected[i].size),
      'every socket receives its messages', 30_000, 100,
    ).catch((err) => {
      const byId = new Map(plan.map((p) => [acks[p.k].id, p]));
      const missing = inboxes.flatMap((inbox, i) => {
        const got = new Set(inbox.map((m) => m.id));
        const { ui, tab, node } = sockets[i];
        return [...expected[i]].filter((id) => !got.has(id)).map((id) => {
          const p = byId.get(id);
          const from = sockets.find((x) => x.ui === p.from && x.tab === p.tab);
          return `message ${p.k} (user ${p.from} tab ${p.tab} on node${from.node} -> user ${p.to}) `
            + `missing on user ${ui} tab ${tab} on node${node}${ui === p.from && tab === p.tab ? ' (the sending socket)' : ''}`;
        });
      });
      throw new Error(`${err.message}; ${missing.length} deliveries missing:\n${missing.join('\n')}`);
    });
    await sleep(1_500);
    inboxes.forEach((inbox, i) => {
      const got = inbox.map((m) => m.id);
      const dupes = got.filter((id, j) => got.indexOf(id) !== j);
      assert.deepEqual(dupes, [], `socket ${i} got no duplicates`);
      const strays = got.filter((id) => !expected[i].has(id));
      assert.deepEqual(strays, [], `socket ${i} got nothing meant for others`);
      assert.equal(got.length, expected[i].size, `socket ${i} got all its messages`);
    });

    // History agrees, pair by pair, whichever instance is asked.
    const pairs = new Map();
    for (const p of plan) {
      const key = [Math.min(p.from, p.to), Math.max(p.from, p.to)].join('-');
      if (!pairs.has(key)) pairs.set(key, []);
      pairs.get(key).push(acks[p.k].id);
    }
    for (const [key, sent] of pairs) {
      const [a, b] = key.split('-').map(Number);
      const url = cluster.urls[(a + b) % 3];
      const res = await http(`${url}/api/conversations/${users[b].user.id}/messages?limit=100`, { token: users[a].token });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.body.messages.map((m) => m.id).sort(), [...sent].sort(), `history of pair ${key}`);
    }
  }));

  test('a reader hopping between instances under traffic misses nothing: what sync does not return arrives live', withCluster(3, ROOMY, async (w, cluster) => {
    // Each instance publishes a delivery only to the instances that host its recipients, so a
    // socket's instance must be known everywhere before its client hears it is connected: a
    // message committed after that comes live, one committed before is in message:sync.
    const alice = await w.online(randomName('alice'), { url: cluster.urls[0] });
    const { user: bob, token } = await w.user(randomName('bob'));
    const acked = [];
    let running = true;
    const traffic = (async () => {
      for (let i = 0; running; i++) {
        acked.push(assertOk(await emitAck(alice.socket, 'message:send', { receiverId: bob.id, content: `m${i}` })).id);
      }
    })();
    await eventually(() => acked.length > 0, 'traffic started');
    const gaps = [];
    // One tab (on each hop), then two at once: the second tab, whose handshake overlaps the
    // first's announcement, must not hear it is connected before the route is in force either.
    const tab = async (hop, url, from) => {
      const socket = await w.connect(token, {}, url);
      const live = recordEvents(socket, 'message:new');
      const synced = [];
      for (let after = acked[from]; ;) {
        const page = assertOk(await emitAck(socket, 'message:sync', { after, limit: 100 }));
        synced.push(...page.messages.map((m) => m.id));
        if (!page.hasMore) break;
        after = page.messages.at(-1).id;
      }
      await sleep(150 + Math.random() * 150);
      socket.close();
      w.sockets.delete(socket);
      const seen = new Set([...synced, ...live.map((m) => m.id)]);
      const last = Math.max(...[...seen].map((id) => acked.indexOf(id)));
      assert.ok(last > from, `hop ${hop}: bob heard something on ${url}`);
      const missing = acked.slice(from + 1, last + 1).filter((id) => !seen.has(id));
      if (missing.length) gaps.push(`hop ${hop} (${url}): ${missing.length} of ${last - from} missing`);
      return last;
    };
    let from = 0;
    for (let hop = 0; hop < 12; hop++) {
      const url = cluster.urls[(hop + 1) % 3];
      const tabs = hop < 6 ? [tab(hop, url, from)] : [tab(hop, url, from), tab(hop, url, from)];
      from = Math.min(...(await Promise.all(tabs)));
    }
    running = false;
    await traffic;
    assert.deepEqual(gaps, [], 'between its sync and its live messages a reader never has a gap');
  }));

  test('history and sync are oldest first by createdAt too, whichever instances the senders use', withCluster(3, ROOMY, async (w, cluster) => {
    // Each instance accepts messages at its own pace and they take turns to commit: the time a
    // message shows is its commit's, so a client that sorts or merges by createdAt agrees with
    // the server's order.
    const reader = await w.online(randomName('reader'), { url: cluster.urls[0] });
    const senders = await Promise.all(cluster.urls.map((url, i) => w.online(randomName(`s${i}`), { url })));
    const room = assertOk(await emitAck(senders[0].socket, 'room:create', { name: 'clock', memberIds: [reader.user.id, senders[1].user.id, senders[2].user.id] }));
    const anchor = await send(senders[0].socket, reader.user.id, 'anchor');
    await Promise.all(senders.map(async (s, i) => {
      for (let k = 0; k < 10; k++) {
        await Promise.all(Array.from({ length: 4 }, (_, j) => Promise.all([
          emitAck(s.socket, 'message:send', { receiverId: reader.user.id, content: `s${i} ${k}.${j}` }),
          emitAck(s.socket, 'room:send', { roomId: room.id, content: `s${i} ${k}.${j}` }),
        ])));
      }
    }));
    const synced = [];
    for (let after = anchor.id; ;) {
      const page = assertOk(await emitAck(reader.socket, 'message:sync', { after, limit: 100 }));
      synced.push(...page.messages);
      if (!page.hasMore) break;
      after = page.messages.at(-1).id;
    }
    assert.equal(synced.length, 240);
    const inversions = (list) => list.slice(1).filter((m, i) => m.createdAt < list[i].createdAt).length;
    assert.equal(inversions(synced), 0, 'sync: createdAt never goes back');
    for (const s of senders) {
      const history = await emitAck(reader.socket, 'message:history', { receiverId: s.user.id, limit: 100 });
      assert.ok(history.length >= 40, `${history.length} messages`);
      assert.equal(inversions(history), 0, 'history: createdAt never goes back');
    }
    const roomHistory = assertOk(await emitAck(reader.socket, 'room:history', { roomId: room.id, limit: 100 }));
    assert.equal(inversions(roomHistory), 0, 'room history: createdAt never goes back');
  }));

  test('a delivery is published only to the instances that host a recipient', withCluster(3, ROOMY, async (w, cluster) => {
    const [n0, n1, n2] = cluster.urls;
    const published = async (url) => {
      const m = parsePrometheus((await http(`${url}/metrics`)).text);
      return m.get('nexus_bus_deliveries_targeted_total') + m.get('nexus_bus_deliveries_to_everyone_total');
    };
    // Someone on every instance, so that a broadcast would have somewhere to go.
    for (const url of cluster.urls) await w.online(randomName('bystander'), { url });
    const alice = await w.online(randomName('alice'), { url: n1 });
    const bob = await w.online(randomName('bob'), { url: n1 });
    const dave = await w.online(randomName('dave'), { url: n2 });

    // Both on one instance: nothing crosses to the others.
    const before = await Promise.all(cluster.urls.map(published));
    const inbox = recordEvents(bob.socket, 'message:new');
    for (let i = 0; i < 20; i++) await send(alice.socket, bob.user.id, `local ${i}`);
    await eventually(() => inbox.length === 20, 'bob gets all 20');
    assert.deepEqual(await Promise.all(cluster.urls.map(published)), before, 'no instance published a delivery');

    // To dave on node2: one publish per message, to node2 only, and dave gets each once.
    const daveInbox = recordEvents(dave.socket, 'message:new');
    for (let i = 0; i < 20; i++) await send(alice.socket, dave.user.id, `remote ${i}`);
    await eventually(() => daveInbox.length === 20, 'dave gets all 20');
    assert.equal(await published(n1), before[1] + 20, 'node1 published each message once');
    assert.equal(await published(n0), before[0], 'node0 had nothing to publish');

    // Once dave's last socket on node2 closes, node1 stops publishing his messages there; when he
    // comes back on node0, they go there, live from his first moment.
    dave.socket.close();
    w.sockets.delete(dave.socket);
    await eventually(async () => {
      const at = await published(n1);
      await send(alice.socket, dave.user.id, 'while away');
      return (await published(n1)) === at;
    }, 'node1 learns that dave left node2');
    const back = await w.connect(dave.token, {}, n0);
    const backInbox = recordEvents(back, 'message:new');
    const at = await published(n1);
    await send(alice.socket, dave.user.id, 'welcome back');
    await eventually(() => backInbox.some((m) => m.content === 'welcome back'), 'dave gets it on node0');
    assert.equal(await published(n1), at + 1);
  }));
});
