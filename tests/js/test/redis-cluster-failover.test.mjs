// Three instances on a real Redis Cluster (3 masters, 3 replicas: scripts/redis-cluster.sh) lose
// a master under traffic: its replica takes over, no acked message is lost (in the database, in
// the history the cache serves, on the receivers' sockets after message:sync), /ready reports the
// outage and recovers, and presence converges. Runs only with TEST_REDIS_CLUSTER=1 and a
// redis-cluster:// TEST_REDIS_URL; the killed master is started again at the end (as a replica).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import {
  REDIS_IS_CLUSTER, emitAck, eventually, http, randomName, recordEvents, redisCommand, redisMasters,
  redisPipelineAt, sleep, withCluster,
} from '../lib/harness.mjs';
import { collectHistory } from '../lib/expect.mjs';

const RUN = process.env.TEST_REDIS_CLUSTER === '1';
const SCRIPT = fileURLToPath(new URL('../../../scripts/redis-cluster.sh', import.meta.url));
const skip = !RUN ? 'set TEST_REDIS_CLUSTER=1 (and a redis-cluster:// TEST_REDIS_URL) to run it'
  : !REDIS_IS_CLUSTER ? 'TEST_REDIS_URL is not a redis-cluster:// URL' : false;
const ROOMY = { env: { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_SEC: '100000' } };

const slotOf = async (key) => Number(await redisCommand('CLUSTER', 'KEYSLOT', key));
const owns = (master, slot) => master.slots.some((range) => {
  const [lo, hi = lo] = range.split('-').map(Number);
  return slot >= lo && slot <= hi;
});
const ownerOf = async (slot) => (await redisMasters()).find((m) => owns(m, slot));
// The cache key of a conversation, as src/cluster/keys.rs names it: the ids in byte order.
const historyKey = (prefix, a, b) => {
  const [lo, hi] = [a, b].sort();
  return `${prefix}:history:{${lo}:${hi}}`;
};

async function readyStates(urls) {
  return Promise.all(urls.map(async (url) => {
    try {
        const res = await http(`${url}/ready`);
        return { status: res.status, redis: res.body?.checks?.redis };
      } catch (err) {
        return { status: 0, redis: err.message };
      }
    }));
  }

  describe('a Redis Cluster losing a master', { skip }, () => {
    test('its replica takes over under traffic: no acked message lost, /ready reports it and recovers, presence converges', withCluster(3, ROOMY, async (w, cluster) => {
      const presenceMaster = await ownerOf(await slotOf(`{${cluster.redisPrefix}:presence}`));
      assert.ok(presenceMaster, 'a master owns the presence slot');

      // Six people, two on each instance; the busiest pair's history cache lives on the master
      // that will die, as do the presence keys.
      const people = [];
      for (let i = 0; i < 6; i++) people.push(await w.online(randomName(`p${i}`), { url: cluster.urls[i % 3] }));
      let pair;
      for (let i = 0; i < people.length && !pair; i++) {
        for (let j = i + 1; j < people.length && !pair; j++) {
          if (i % 3 === j % 3) continue;
          const slot = await slotOf(historyKey(cluster.redisPrefix, people[i].user.id, people[j].user.id));
          if (owns(presenceMaster, slot)) pair = [people[i], people[j]];
        }
      }
      assert.ok(pair, 'two people on different instances whose conversation is cached on the presence master');
      const [a, b] = pair;
      const inboxes = new Map(people.map((p) => [p.user.id, recordEvents(p.socket, 'message:new')]));
      for (const p of people) await emitAck(p.socket, 'message:history', { receiverId: a.user.id === p.user.id ? b.user.id : a.user.id });

      // Traffic: a ↔ b all the time, everyone to the next person; every ack is kept.
      const acked = [];
      const failed = [];
      let sending = true;
      const pump = async (from, to, tag) => {
        for (let n = 0; sending; n++) {
          const clientMsgId = `${tag}-${n}`;
          try {
            const ack = await emitAck(from.socket, 'message:send', { receiverId: to.user.id, content: `${tag} ${n}`, clientMsgId }, 10_000);
            if (ack?.id) acked.push({ ...ack, from: from.user.id, to: to.user.id });
            else failed.push(ack?.error?.code ?? 'no id');
          } catch (err) {
            failed.push(err.message);
          }
          await sleep(20);
        }
      };
      const pumps = [pump(a, b, 'ab'), pump(b, a, 'ba')];
      let beforeKill = 0;
    const timings = {};
      for (let i = 0; i < people.length; i++) pumps.push(pump(people[i], people[(i + 1) % people.length], `ring${i}`));

      try {
      await eventually(() => acked.length >= 60, 'traffic flows before the failure', 20_000);
      const info = await redisPipelineAt(presenceMaster, [['INFO', 'server']]);
      const pid = Number(/process_id:(\d+)/.exec(info[0])[1]);
      beforeKill = acked.length;
      process.kill(pid, 'SIGKILL');
      const killedAt = Date.now();

      // Someone answers 503 naming Redis while the master is gone, then every instance is ready.
      await eventually(async () => {
        const states = await readyStates(cluster.urls);
        return states.some((s) => s.status === 503 && s.redis === 'down');
      }, '/ready reports the Redis outage', 30_000, 100);
      timings.outageSeen = Date.now() - killedAt;
      await eventually(async () => {
        const masters = await redisMasters();
        return masters.length === 3 && masters.every((m) => m.port !== presenceMaster.port)
          && (await redisCommand('CLUSTER', 'INFO')).includes('cluster_state:ok');
      }, 'the replica is promoted and the cluster is ok again', 30_000, 100);
      timings.promoted = Date.now() - killedAt;
      await eventually(async () => (await readyStates(cluster.urls)).every((s) => s.status === 200), 'every instance is ready again', 30_000, 100);
      timings.ready = Date.now() - killedAt;
      const atRecovery = acked.length;
      await eventually(() => acked.length >= atRecovery + 60, 'traffic flows after the failover', 30_000);
    } finally {
      sending = false;
      await Promise.all(pumps);
    }
    assert.ok(acked.length > beforeKill, 'messages were acked during and after the failover');

    // Every acked message is stored once and is in the history every instance serves (the cache
    // of a b's conversation lived on the dead master).
    const ids = new Set(acked.map((m) => m.id));
    assert.equal(ids.size, acked.length, 'acked ids are distinct');
    const conversations = new Map();
    for (const m of acked) {
      const key = [m.from, m.to].sort().join(':');
      if (!conversations.has(key)) conversations.set(key, []);
      conversations.get(key).push(m.id);
    }
    for (const viewer of [a, b]) {
      const peer = viewer === a ? b : a;
      const history = (await collectHistory(viewer.socket, peer.user.id)).map((m) => m.id);
      assert.equal(new Set(history).size, history.length, 'history holds each message once');
      const expected = conversations.get([a.user.id, b.user.id].sort().join(':'));
      const missing = expected.filter((id) => !history.includes(id));
      assert.deepEqual(missing, [], `${viewer === a ? 'a' : 'b'}'s history holds every acked message of a ↔ b`);
    }
    for (const [key, sent] of conversations) {
      const [x, y] = key.split(':');
      const viewer = people.find((p) => p.user.id === x);
      const history = new Set((await collectHistory(viewer.socket, y)).map((m) => m.id));
      assert.deepEqual(sent.filter((id) => !history.has(id)), [], `history of ${key} holds every acked message`);
    }
    // Each receiver has every message addressed to them: live, or through message:sync.
    for (const p of people) {
      const got = new Set(inboxes.get(p.user.id).map((m) => m.id));
      const mine = acked.filter((m) => m.to === p.user.id);
      const lost = mine.filter((m) => !got.has(m.id));
      if (lost.length) {
        const more = new Set();
        let after = mine[0].id;
        for (let page = 0; page < 100; page++) {
          const synced = await emitAck(p.socket, 'message:sync', { after, limit: 100 });
          for (const m of synced.messages) more.add(m.id);
          if (!synced.hasMore || !synced.messages.length) break;
          after = synced.messages.at(-1).id;
        }
        assert.deepEqual(lost.filter((m) => !more.has(m.id)).map((m) => m.id), [], 'message:sync brings what the failover held back');
      }
    }

    // Presence converges: everyone is online on every instance; a user who leaves goes offline
    // everywhere; user:init agrees on every instance.
    const everyone = people.map((p) => p.user.id).sort();
    await eventually(async () => {
      for (const p of people) {
        const online = (await emitAck(p.socket, 'user:init', null)).map((u) => u.id);
        if (!everyone.every((id) => online.includes(id))) return false;
      }
      return true;
    }, 'every instance lists all six online', 30_000, 200);
    const leaver = people[5];
    const offline = people.slice(0, 5).map((p) => recordEvents(p.socket, 'user:offline'));
    leaver.socket.close();
    await eventually(() => offline.every((l) => l.includes(leaver.user.id)), 'every instance hears the leaver go offline', 20_000);
    for (const p of people.slice(0, 5)) {
      const online = (await emitAck(p.socket, 'user:init', null)).map((u) => u.id);
      assert.ok(!online.includes(leaver.user.id), 'user:init no longer lists the leaver');
    }
    assert.doesNotMatch(cluster.log(), /panicked/, 'no instance panicked');

    // The dead master comes back as a replica, so the cluster is whole for what runs next.
    const revived = spawnSync('bash', [SCRIPT, 'revive'], { encoding: 'utf8' });
    assert.equal(revived.status, 0, `scripts/redis-cluster.sh revive: ${revived.stderr}`);
    process.stderr.write(`failover: ${acked.length} acked (${beforeKill} before the kill), ${failed.length} refused or unanswered; ms after the kill: ${JSON.stringify(timings)}\n`);
  }));
});
