// Stopping fast when a shared service is gone (issue 16, item 5): SIGTERM to an instance whose
// Redis, or whose PostgreSQL, is unreachable ends the process within a few seconds (every attempt
// to reach the service is bounded) instead of retrying until timeouts run out; with both services
// up, a stop still commits and acks the sends in flight. The services are the test's own
// (a throwaway redis-server, a throwaway PostgreSQL cluster). Runs only with TEST_CLUSTER=1.
//
// Wall-clock thresholds are not asserted (a loaded CI machine is slow): the instance must exit by
// itself before the harness's 10 s SIGKILL, and the measured time is printed for docs/operations.md.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  emitAck, freePort, randomName, sleep, startClusterOn, withCluster, World,
} from '../lib/harness.mjs';
import { assertOk, collectHistory } from '../lib/expect.mjs';
import { startRedis, startThrowawayPostgres } from '../lib/throwaway.mjs';

const RUN = process.env.TEST_CLUSTER === '1';

/** SIGTERMs `server` and resolves with how it ended and how long it took. */
async function timedStop(server) {
  const t0 = Date.now();
  await server.stop();
  const info = await server.exited;
  return { ...info, ms: Date.now() - t0 };
}

function report(what, stopped) {
  process.stderr.write(`[fast-stop] ${what}: exited in ${stopped.ms} ms (code ${stopped.code}, signal ${stopped.signal})\n`);
}

describe('stopping an instance', { skip: RUN ? false : 'set TEST_CLUSTER=1 to run the cluster tests' }, () => {
  test('SIGTERM while Redis is unreachable exits by itself, quickly', async () => {
    const port = await freePort();
    const redis = await startRedis(port);
    try {
      await withCluster(2, { env: { REDIS_URL: `redis://127.0.0.1:${port}` } }, async (w, cluster) => {
        const [n0, n1] = cluster.urls;
        const alice = await w.online(randomName('alice'), { url: n0, tabs: 2 });
        const bob = await w.online(randomName('bob'), { url: n1 });
        assertOk(await emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: 'before' }));

        redis.kill('SIGKILL');
        await sleep(500);
        const stopped = await timedStop(cluster.nodes[0]);
        report('Redis unreachable', stopped);
        assert.equal(stopped.signal, null, `the instance exited by itself, not by the SIGKILL 10 s later; log:\n${cluster.nodes[0].log()}`);
        assert.equal(stopped.code, 0, 'a clean exit');
        assert.match(cluster.nodes[0].log(), /stopped/);
      })();
    } finally {
      redis.kill('SIGKILL');
    }
  });

  test('SIGTERM while PostgreSQL is unreachable exits by itself, quickly', async (t) => {
    const pg = await startThrowawayPostgres();
    let cluster;
    try {
      cluster = await startClusterOn(2, { databaseUrl: pg.url });
      const w = new World(cluster.nodes[0]);
      const [n0, n1] = cluster.urls;
      const alice = await w.online(randomName('alice'), { url: n0, tabs: 2 });
      const bob = await w.online(randomName('bob'), { url: n1 });
      assertOk(await emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: 'before' }));

      await pg.stop();
      // Sends in flight while the database is gone: the stop must not wait on them forever.
      for (let i = 0; i < 20; i++) alice.socket.emit('message:send', { receiverId: bob.user.id, content: `lost ${i}` }, () => {});
      await sleep(200);
      const stopped = await timedStop(cluster.nodes[0]);
      report('PostgreSQL unreachable', stopped);
      assert.equal(stopped.signal, null, `the instance exited by itself, not by the SIGKILL 10 s later; log:\n${cluster.nodes[0].log()}`);
      assert.equal(stopped.code, 0, 'a clean exit');
      w.closeSockets();
    } catch (err) {
      if (cluster) process.stderr.write(`----- cluster log -----\n${cluster.log()}\n`);
      throw err;
    } finally {
      if (cluster) await cluster.stop();
      await pg.destroy();
    }
  });

  test('with both services up, a stop still commits and acks the sends in flight', withCluster(2, {
    env: { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_SEC: '100000' },
  }, async (w, cluster) => {
    const [n0, n1] = cluster.urls;
    const alice = await w.online(randomName('alice'), { url: n0 });
    const bob = await w.online(randomName('bob'), { url: n1 });
    // 300 sends fired at once, and SIGTERM right behind them.
    const acks = [];
    for (let i = 0; i < 300; i++) {
      acks.push(new Promise((resolve) => {
        alice.socket.emit('message:send', { receiverId: bob.user.id, content: `m${i}`, clientMsgId: `c${i}` }, resolve);
        alice.socket.once('disconnect', () => resolve(null));
      }));
    }
    await Promise.race(acks);
    const stopped = await timedStop(cluster.nodes[0]);
    report('both services up, 300 sends in flight', stopped);
    assert.equal(stopped.signal, null, 'the instance exited by itself');
    const acked = (await Promise.all(acks)).filter((a) => a && !a.error);
    assert.ok(acked.length > 0, 'some sends were acked before the socket closed');
    // Every acked message is stored: bob finds each in his history on the other instance.
    const ids = new Set((await collectHistory(bob.socket, alice.user.id)).map((m) => m.id));
    const missing = acked.filter((a) => !ids.has(a.id));
    assert.deepEqual(missing, [], `every one of the ${acked.length} acked sends is stored`);
  }));
});
