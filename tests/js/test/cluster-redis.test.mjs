// The cluster when Redis misbehaves: a throwaway redis-server (never the shared one) restarted
// under traffic, and the history cache evicted or flushed. Runs only with TEST_CLUSTER=1.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  deleteRedisKeys, emitAck, eventually, http, randomName, recordEvents, redisCommand, registerAndLogin, sleep, waitForEvent, withCluster, freePort,
} from '../lib/harness.mjs';
import { assertOk, collectHistory, send } from '../lib/expect.mjs';
import { startRedis } from '../lib/throwaway.mjs';

const RUN = process.env.TEST_CLUSTER === '1';
const ROOMY = { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_SEC: '100000', USER_RATE_LIMIT_BURST: '0' };

const ready = async (url) => (await http(`${url}/ready`)).status;

describe('a cluster when Redis misbehaves', { skip: RUN ? false : 'set TEST_CLUSTER=1 to run the cluster tests' }, () => {
  test('Redis restarting under traffic loses no acked message, and the cluster heals by itself', async () => {
    const port = await freePort();
    let redis = await startRedis(port);
    const redisUrl = `redis://127.0.0.1:${port}`;
    try {
      await withCluster(2, { env: { ...ROOMY, REDIS_URL: redisUrl, PRESENCE_TTL_SECS: '6' } }, async (w, cluster) => {
        const [n0, n1] = cluster.urls;
        const alice = await w.online(randomName('alice'), { url: n0 });
        const bob = await w.online(randomName('bob'), { url: n1 });
        const live = recordEvents(bob.socket, 'message:new');

        // Traffic: alice sends every 25 ms; every ack is recorded.
        const acked = [];
        const failed = [];
        let running = true;
        let n = 0;
        const traffic = (async () => {
          while (running) {
            const i = n++;
            const ack = await emitAck(alice.socket, 'message:send', {
              receiverId: bob.user.id, content: `m${i}`, clientMsgId: `c${i}`,
            }, 10_000);
            if (ack && !ack.error) acked.push(ack.id); else failed.push(ack);
            await sleep(25);
          }
        })();

        await eventually(() => acked.length >= 20, 'traffic flows before the outage', 10_000);
        redis.kill('SIGKILL');
        await eventually(async () => (await ready(n0)) === 503 && (await ready(n1)) === 503,
          '/ready reports the outage on both instances', 10_000);
        const body = (await http(`${n0}/ready`)).body;
        assert.match(body.message, /redis/i, `the failing part is named: ${JSON.stringify(body)}`);
        const duringOutage = acked.length;
        await sleep(1_500);
        assert.ok(acked.length > duringOutage, 'sends still commit and ack while Redis is down');

        redis = await startRedis(port);
        await eventually(async () => (await ready(n0)) === 200 && (await ready(n1)) === 200,
          'both instances are ready again', 20_000);
        // Cross-instance delivery works again once the subscriptions are restored.
        await eventually(async () => {
          const probe = await emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: 'probe' });
          acked.push(assertOk(probe).id);
          await sleep(300);
          return live.some((m) => m.id === probe.id);
        }, 'a message sent after the restart reaches the other instance live', 20_000, 500);
        running = false;
        await traffic;
        assert.deepEqual(failed, [], 'no send failed: PostgreSQL was up the whole time');

        // What bob missed live he recovers with message:sync from the last message he saw
        // before the outage; together nothing acked is missing and nothing is doubled.
        const seen = new Set(live.map((m) => m.id));
        const firstLive = live[0].id;
        let cursor = firstLive;
        const recovered = [];
        for (;;) {
          const page = assertOk(await emitAck(bob.socket, 'message:sync', { after: cursor, limit: 100 }));
          recovered.push(...page.messages.map((m) => m.id));
          if (!page.hasMore) break;
          cursor = page.messages.at(-1).id;
        }
        assert.equal(new Set(recovered).size, recovered.length, 'sync returns each message once');
        const all = new Set([firstLive, ...recovered, ...seen]);
        const missing = acked.filter((id) => !all.has(id));
        assert.deepEqual(missing, [], 'every acked message reached bob live or through message:sync');
        assert.equal(live.length, seen.size, 'no message:new was delivered twice');

        // Presence is rebuilt in the empty Redis: each instance re-registers its sockets.
        await eventually(async () => {
          const ids = (await emitAck(alice.socket, 'user:init', null)).map((u) => u.id);
          return ids.includes(bob.user.id) && ids.includes(alice.user.id);
        }, 'user:init lists both users again after the restart', 20_000, 250);
      })();
    } finally {
      redis.kill('SIGKILL');
    }
  });

  test('presence scripts that time out while Redis stalls are repaired and announced once it answers', async () => {
    const port = await freePort();
    const redis = await startRedis(port);
    try {
      await withCluster(2, { env: { REDIS_URL: `redis://127.0.0.1:${port}` } }, async (w, cluster) => {
        const [n0, n1] = cluster.urls;
        const carol = await w.online(randomName('carol'), { url: n1 });
        const onlines = recordEvents(carol.socket, 'user:online');
        const offlines = recordEvents(carol.socket, 'user:offline');
        const erin = await w.online(randomName('erin'), { url: n0 });
        await eventually(() => onlines.some((u) => u.id === erin.user.id), 'erin is announced online');
        const dave = await registerAndLogin(n0, randomName('dave'));
        const onlineIds = async () => (await emitAck(carol.socket, 'user:init', null, 10_000)).map((u) => u.id);

        // Redis stalls (SIGSTOP) longer than the 3 s command timeout: dave's handshake finds its
        // presence script timing out, and erin's disconnect does too. Both scripts run as soon
        // as Redis resumes, but their instance never hears the answer.
        redis.kill('SIGSTOP');
        let daveSocket;
        try {
          erin.socket.close();
          daveSocket = await w.connect(dave.token, { timeoutMs: 15_000 }, n0);
          await sleep(500);
        } finally {
          redis.kill('SIGCONT');
        }

        await eventually(() => onlines.some((u) => u.id === dave.user.id),
          'dave, admitted while Redis stalled, is announced online once it answers', 15_000, 100);
        await eventually(() => offlines.includes(erin.user.id),
          'erin, who left while Redis stalled, is announced offline once it answers', 15_000, 100);
        let ids = await onlineIds();
        assert.ok(ids.includes(dave.user.id), `user:init lists dave: ${ids}`);
        assert.ok(!ids.includes(erin.user.id), `user:init no longer lists erin: ${ids}`);

        // The repaired count is exact: dave's last socket closing takes him offline everywhere.
        daveSocket.close();
        await eventually(() => offlines.includes(dave.user.id), 'dave is announced offline when he leaves', 15_000, 100);
        ids = await onlineIds();
        assert.deepEqual(ids, [carol.user.id], 'only carol is left online');
      })();
    } finally {
      redis.kill('SIGKILL');
    }
  });

  test('a crashed instance makes the survivors invalidate the history cache, which refills complete', withCluster(2, { env: { ...ROOMY, PRESENCE_TTL_SECS: '4' } }, async (w, cluster) => {
    // A crash can fall between a message's commit (and ack) and its push to the cache; that
    // window is microseconds wide, so this test checks the guard itself: once the dead
    // instance's lease is swept, no conversation's cache claims to be complete any more.
    const [n0, n1] = cluster.urls;
    const alice = await w.online(randomName('alice'), { url: n0 });
    const bob = await w.online(randomName('bob'), { url: n1 });
    const sent = [];
    for (let i = 0; i < 6; i++) sent.push((await send(alice.socket, bob.user.id, `m${i}`)).id);
    const history = async () => (await emitAck(bob.socket, 'message:history', { receiverId: alice.user.id, limit: 50 })).map((m) => m.id);
    assert.deepEqual(await history(), sent, 'history before the crash');
    const floors = async () => (await redisCommand('KEYS', `${cluster.redisPrefix}:history-floor:*`)).length;
    await eventually(async () => (await floors()) === 1, 'the conversation is cached (its floor is set)');

    cluster.nodes[0].kill();
    await eventually(async () => (await floors()) === 0,
      'the survivor invalidates the cache once the dead lease is swept', 15_000, 200);
    assert.deepEqual(await history(), sent, 'history after the crash is complete (read from PostgreSQL)');
    await eventually(async () => (await floors()) === 1, 'and the cache refills');
  }));

  test('read your writes: a message is in history as soon as its ack or message:new arrives', withCluster(2, { env: ROOMY }, async (w, cluster) => {
    const [n0, n1] = cluster.urls;
    const alice = await w.online(randomName('alice'), { url: n0 });
    const bob = await w.online(randomName('bob'), { url: n1 });
    const latest = async (socket, peer) => (await emitAck(socket, 'message:history', { receiverId: peer, limit: 1 })).map((m) => m.id);
    await latest(alice.socket, bob.user.id); // the conversation is cached from here on
    const misses = [];
    for (let i = 0; i < 200; i++) {
      const arrived = waitForEvent(bob.socket, 'message:new', (m) => m.content === `rw${i}`);
      const [mine, theirs] = await Promise.all([
        // The sender asks at once after the ack, the receiver at once after message:new.
        send(alice.socket, bob.user.id, `rw${i}`).then(async (m) => ({ id: m.id, seen: await latest(alice.socket, bob.user.id) })),
        arrived.then(async (m) => ({ id: m.id, seen: await latest(bob.socket, alice.user.id) })),
      ]);
      if (mine.seen[0] !== mine.id) misses.push(`sender, message ${i}`);
      if (theirs.seen[0] !== theirs.id) misses.push(`receiver, message ${i}`);
    }
    assert.deepEqual(misses, [], 'history never lags behind an ack or a message:new');
  }));

  test('history stays complete when the cache evicts and when Redis is flushed', withCluster(2, { env: { ...ROOMY, HISTORY_CACHE_SIZE: '10' } }, async (w, cluster) => {
    const [n0, n1] = cluster.urls;
    const alice = await w.online(randomName('alice'), { url: n0 });
    const bob = await w.online(randomName('bob'), { url: n1 });
    const sent = [];
    for (let i = 0; i < 25; i++) sent.push((await send(i % 2 ? bob.socket : alice.socket, i % 2 ? alice.user.id : bob.user.id, `m${i}`)).id);

    const latest = async (socket, peer, limit) => (await emitAck(socket, 'message:history', { receiverId: peer, limit })).map((m) => m.id);
    // Warm the cache (refill from PostgreSQL), then read pages inside and beyond its 10 messages.
    assert.deepEqual(await latest(alice.socket, bob.user.id, 100), sent);
    assert.deepEqual(await latest(bob.socket, alice.user.id, 5), sent.slice(20));
    assert.deepEqual(await latest(bob.socket, alice.user.id, 10), sent.slice(15));
    assert.deepEqual(await latest(bob.socket, alice.user.id, 12), sent.slice(13));
    // A message sent after the refill is in the cached page at once.
    sent.push((await send(alice.socket, bob.user.id, 'after refill')).id);
    assert.deepEqual(await latest(bob.socket, alice.user.id, 3), sent.slice(-3));
    // Paging back through the whole conversation, across the cache's floor.
    assert.deepEqual((await collectHistory(bob.socket, alice.user.id, 4)).map((m) => m.id), sent);

    // Redis loses the cache: nothing is lost, the next read refills from PostgreSQL.
    await deleteRedisKeys(`${cluster.redisPrefix}:history`);
    assert.deepEqual(await latest(alice.socket, bob.user.id, 100), sent);
    const rest = await http(`${n1}/api/conversations/${alice.user.id}/messages?limit=100`, { token: bob.token });
    assert.deepEqual(rest.body.messages.map((m) => m.id), sent);
    assert.equal(rest.body.hasMore, false);
  }));
});
