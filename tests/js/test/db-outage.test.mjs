// PostgreSQL going away under live traffic: a THROWAWAY PostgreSQL cluster of this test's own
// (initdb + pg_ctl as the `postgres` OS user, never the machine's shared server) under a
// 3-instance Nexus cluster, stopped with `pg_ctl stop -m immediate` while two users chat, then
// started again on the same port. Runs only with TEST_CLUSTER=1.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  connect, emitAck, eventually, http, randomName, recordEvents, registerAndLogin, signJwt, sleep, startClusterOn,
  World,
} from '../lib/harness.mjs';
import { assertErrorAck, assertOk } from '../lib/expect.mjs';
import { startThrowawayPostgres } from '../lib/throwaway.mjs';

const RUN = process.env.TEST_CLUSTER === '1';

const DB_TIMEOUT_MS = 2_000;
const ACK_BOUND_MS = DB_TIMEOUT_MS + 3_000;
const SEND_EVERY_MS = 50;
const OUTAGE_MS = 10_000;
const RECOVERY_BOUND_MS = 30_000;

const quantile = (xs, q) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

/**
 * Fires a `message:send` from `me` to `peer` every SEND_EVERY_MS without waiting for the previous
 * ack (a chatty client keeps typing), each with its own clientMsgId. Every send is recorded with
 * when it started, when (and whether) its ack came, and the ack.
 */
function chatter(me, peer, label) {
  const sends = [];
  let running = true;
  let i = 0;
  const pending = new Set();
  const fire = () => {
    const rec = {
      from: me, to: peer, clientMsgId: `${label}-${i}`, content: `${label} message ${i}`,
      startedAt: Date.now(), ackAt: null, ack: undefined, late: false,
    };
    i++;
    sends.push(rec);
    const done = new Promise((resolve) => {
      const guard = setTimeout(() => { rec.late = true; resolve(); }, ACK_BOUND_MS);
      me.socket.emit('message:send', { receiverId: peer.user.id, content: rec.content, clientMsgId: rec.clientMsgId }, (ack) => {
        rec.ackAt = Date.now();
        rec.ack = ack;
        clearTimeout(guard);
        resolve();
      });
    });
    pending.add(done);
    done.then(() => pending.delete(done));
  };
  const timer = setInterval(() => { if (running) fire(); }, SEND_EVERY_MS);
  return {
    sends,
    ok: () => sends.filter((s) => s.ack && !s.ack.error),
    async stop() {
      running = false;
      clearInterval(timer);
      // Every outstanding send settles within ACK_BOUND_MS (acked or marked late).
      await Promise.all([...pending]);
    },
  };
}

describe('the cluster when PostgreSQL goes down', { skip: RUN ? false : 'set TEST_CLUSTER=1 to run the cluster tests' }, () => {
  test('PostgreSQL stopping under traffic: bounded unavailable acks, /ready 503, sockets stay up, new tabs connect, old-shape tokens not Unauthorized, service resumes, no acked message lost or doubled', async (t) => {
    const pg = await startThrowawayPostgres();
    let cluster;
    let world;
    try {
      cluster = await startClusterOn(3, {
        databaseUrl: pg.url,
        env: { DB_TIMEOUT_MS: String(DB_TIMEOUT_MS), RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_SEC: '100000', USER_RATE_LIMIT_BURST: '0', MAX_HANDSHAKES_PER_IP: '4' },
      });
      world = new World(cluster.nodes[0]);
      const [n0, n1, n2] = cluster.urls;
      const alice = await world.online(randomName('alice'), { url: n0 });
      const bob = await world.online(randomName('bob'), { url: n1 });
      const people = [alice, bob];
      // Registered but never seen by n2, and holding only a token of the old app's shape.
      const { user: carol } = await registerAndLogin(n0, randomName('carol'));
      const nowSecs = Math.floor(Date.now() / 1000);
      const legacyToken = signJwt({ sub: carol.id, username: carol.username, iat: nowSecs, exp: nowSecs + 3600 }, cluster.jwtSecret);
      const live = new Map(people.map((p) => [p, recordEvents(p.socket, 'message:new')]));
      const disconnects = new Map(people.map((p) => [p, recordEvents(p.socket, 'disconnect')]));

      const traffic = [chatter(alice, bob, 'a'), chatter(bob, alice, 'b')];
      const okCount = () => traffic.reduce((n, c) => n + c.ok().length, 0);
      await eventually(() => traffic.every((c) => c.ok().length >= 20) && people.every((p) => live.get(p).length >= 20),
        'traffic flows both ways before the outage', 15_000, 50);

      // The cursor each user would resume from: the last message:new it saw before the outage.
      const cursor = new Map(people.map((p) => [p, live.get(p).at(-1).id]));

      // --- outage -------------------------------------------------------------------------
      const tStop = Date.now();
      await pg.stop();
      const tDown = Date.now();
      t.diagnostic(`pg_ctl stop -m immediate took ${tDown - tStop} ms; ${okCount()} sends acked before`);

      // /ready answers 503 naming the database, on every instance.
      for (const url of cluster.urls) {
        await eventually(async () => (await http(`${url}/ready`)).status === 503, `${url}/ready answers 503`, ACK_BOUND_MS, 100);
        const res = await http(`${url}/ready`);
        assert.equal(res.status, 503);
        assert.equal(res.body?.statusCode, 503, `NestJS body: ${res.text}`);
        assert.match(res.body.message, /database/i, `the body names the database: ${res.text}`);
        assert.equal(res.body.checks?.database, 'down', `checks.database: ${res.text}`);
      }
      // A token issued by this server carries the profile: new tabs connect without the database.
      const fresh = await Promise.all(Array.from({ length: 4 }, async () => {
        const s = await connect(n2, alice.token, { timeoutMs: ACK_BOUND_MS });
        const online = await emitAck(s, 'user:init', null);
        s.close();
        return online;
      }));
      for (const online of fresh) {
        assert.ok(Array.isArray(online) && online.some((u) => u.id === alice.user.id), `a new tab during the outage gets user:init: ${JSON.stringify(online)}`);
      }
      // An old-shape token names only the id, which cannot be confirmed now: never "Unauthorized"
      // (that signs the client out); "Service unavailable" is right. Those handshakes are slow,
      // so 12 at once from one address overrun MAX_HANDSHAKES_PER_IP (4): the excess is refused
      // with "Too many connections" instead of piling up.
      const handshakes = await Promise.all(Array.from({ length: 12 }, async () => {
        try {
          const s = await connect(n2, legacyToken, { timeoutMs: ACK_BOUND_MS + 2_000 });
          s.close();
          return 'connected';
        } catch (err) {
          return err.message;
        }
      }));
      const handshakeCounts = {};
      for (const h of handshakes) handshakeCounts[h] = (handshakeCounts[h] ?? 0) + 1;
      assert.ok(!handshakes.includes('Unauthorized'), `a valid token is never refused as Unauthorized while the database is down: ${JSON.stringify(handshakeCounts)}`);
      assert.deepEqual(handshakes.filter((h) => !['Service unavailable', 'Too many connections', 'connected'].includes(h)), [],
        `handshakes while down: ${JSON.stringify(handshakeCounts)}`);
      assert.ok((handshakeCounts['Too many connections'] ?? 0) >= 1, `concurrent slow handshakes over MAX_HANDSHAKES_PER_IP are refused: ${JSON.stringify(handshakeCounts)}`);
      const handshake = handshakeCounts;

      const outageLeft = OUTAGE_MS - (Date.now() - tDown);
      if (outageLeft > 0) await sleep(outageLeft);
      for (const p of people) {
        assert.ok(p.socket.connected, `${p.user.username}'s socket is still connected during the outage`);
        assert.deepEqual(disconnects.get(p), [], 'no socket was disconnected by the outage');
      }

      // --- recovery -----------------------------------------------------------------------
      const tRestart = Date.now();
      await pg.start();
      const tUp = Date.now();
      await eventually(
        () => traffic.every((c) => c.sends.some((s) => s.startedAt > tUp && s.ack && !s.ack.error)),
        'sends succeed again on both instances after PostgreSQL is back', RECOVERY_BOUND_MS, 100,
      );
      const recoveredAfterMs = Math.max(...traffic.map((c) => c.sends.find((s) => s.startedAt > tUp && s.ack && !s.ack.error).ackAt)) - tUp;
      await sleep(2_000);
      await Promise.all(traffic.map((c) => c.stop()));
      for (const url of cluster.urls) {
        await eventually(async () => (await http(`${url}/ready`)).status === 200, `${url}/ready answers 200 again`, RECOVERY_BOUND_MS, 200);
      }

      // --- the acks ---------------------------------------------------------------------------
      const all = traffic.flatMap((c) => c.sends);
      const late = all.filter((s) => s.late);
      assert.deepEqual(late.map((s) => `${s.clientMsgId} started ${s.startedAt - tDown} ms after the stop`), [],
        `every ack arrives within DB_TIMEOUT_MS + 3 s (${ACK_BOUND_MS} ms): no hung acks`);
      for (const s of all) {
        if (s.ack?.error) assertErrorAck(s.ack, 'unavailable', s.clientMsgId);
        else assertOk(s.ack, s.clientMsgId);
      }
      // A send waits up to DB_TIMEOUT_MS for the database, so one sent in the last DB_TIMEOUT_MS
      // before the restart may legitimately succeed; every earlier one must fail, and no success
      // can be acked while the database is down.
      const duringOutage = all.filter((s) => s.startedAt >= tDown && s.startedAt < tRestart - DB_TIMEOUT_MS - 500);
      assert.ok(duringOutage.length >= 100, `enough sends while the database was down: ${duringOutage.length}`);
      for (const s of duringOutage) assertErrorAck(s.ack, 'unavailable', `${s.clientMsgId} sent while PostgreSQL was down`);
      const okWhileDown = all.filter((s) => s.ack && !s.ack.error && s.ackAt > tDown && s.ackAt < tRestart);
      assert.deepEqual(okWhileDown.map((s) => s.clientMsgId), [], 'no send is acked as stored while PostgreSQL is down');
      const outageLatency = duringOutage.map((s) => s.ackAt - s.startedAt);
      for (const p of people) {
        assert.ok(p.socket.connected, `${p.user.username}'s socket survived the outage`);
        assert.deepEqual(disconnects.get(p), [], 'no disconnect at any time');
      }

      // A client retries what failed, with the same clientMsgId: each is stored once (a message
      // that committed as its ack timed out is returned, not stored again).
      const failed = all.filter((s) => s.ack?.error);
      const tRetry = Date.now();
      const retried = [];
      for (const s of failed) {
        const ack = await emitAck(s.from.socket, 'message:send', { receiverId: s.to.user.id, content: s.content, clientMsgId: s.clientMsgId }, ACK_BOUND_MS);
        assertOk(ack, `retry of ${s.clientMsgId}`);
        assert.equal(ack.content, s.content);
        retried.push({ ...s, ack });
      }
      const succeeded = [...all.filter((s) => s.ack && !s.ack.error), ...retried];

      // --- the database: every acked message exactly once -------------------------------------
      const history = [];
      let before;
      for (let page = 0; page < 1000; page++) {
        const q = `limit=100${before ? `&before=${before}` : ''}`;
        const res = await http(`${n2}/api/conversations/${bob.user.id}/messages?${q}`, { token: alice.token });
        assert.equal(res.status, 200, res.text);
        history.unshift(...res.body.messages);
        if (!res.body.hasMore) break;
        before = res.body.messages[0].id;
      }
      const idCount = new Map();
      for (const m of history) idCount.set(m.id, (idCount.get(m.id) ?? 0) + 1);
      const contentCount = new Map();
      for (const m of history) contentCount.set(m.content, (contentCount.get(m.content) ?? 0) + 1);
      const notOnce = succeeded.filter((s) => idCount.get(s.ack.id) !== 1);
      assert.deepEqual(notOnce.map((s) => `${s.clientMsgId}: ${idCount.get(s.ack.id) ?? 0}×`), [], 'every acked message is in the history exactly once');
      const doubled = [...contentCount].filter(([, n]) => n !== 1);
      assert.deepEqual(doubled, [], 'no message (clientMsgId) is stored twice');
      assert.equal(history.length, new Set(all.map((s) => s.content)).size, 'the history holds exactly the messages sent');
      // Acked `unavailable` yet committed (the timeout hit at the moment of commit): the retry
      // returned the message stored before the retries began.
      const storedDespiteUnavailable = retried.filter((r) => Date.parse(r.ack.createdAt) < tRetry).length;

      // --- delivery: live, or message:sync from the last id seen before the outage ------------
      for (const p of people) {
        const seen = new Set(live.get(p).map((m) => m.id));
        let after = cursor.get(p);
        for (let page = 0; page < 1000; page++) {
          const res = assertOk(await emitAck(p.socket, 'message:sync', { after, limit: 100 }), 'message:sync');
          for (const m of res.messages) seen.add(m.id);
          if (!res.hasMore || !res.messages.length) break;
          after = res.messages.at(-1).id;
        }
        const missed = succeeded.filter((s) => s.to === p && !seen.has(s.ack.id));
        assert.deepEqual(missed.map((s) => s.clientMsgId), [], `every acked message to ${p.user.username} reached them live or through message:sync`);
      }

      const summary = {
        sent: all.length,
        ackedOk: all.length - failed.length,
        ackedUnavailable: failed.length,
        late: late.length,
        sentWhileDown: duringOutage.length,
        outageAckLatencyMs: { p50: quantile(outageLatency, 0.5), p99: quantile(outageLatency, 0.99), max: Math.max(...outageLatency) },
        retriedOk: retried.length,
        storedDespiteUnavailable,
        historyMessages: history.length,
        lost: 0,
        duplicated: 0,
        handshakeWhileDown: handshake,
        recoveredAfterMs,
        pgStopMs: tDown - tStop,
        pgStartMs: tUp - tRestart,
      };
      console.log(`db-outage summary: ${JSON.stringify(summary)}`);
    } catch (err) {
      if (cluster) process.stderr.write(`----- cluster log -----\n${cluster.log()}\n`);
      process.stderr.write(`----- throwaway postgres log -----\n${await pg.log()}\n`);
      throw err;
    } finally {
      world?.closeSockets();
      await cluster?.stop();
      await pg.destroy();
    }
  });
});
