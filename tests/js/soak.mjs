// A churn soak against a 3-instance cluster it starts itself (PostgreSQL + Redis, like the cluster
// tests): users connect to a random instance, catch up with message:sync from their cursor, chat,
// disconnect, come back elsewhere. It samples each instance's RSS and open file descriptors and
// the Redis keys under the cluster's prefix, and at the end checks that they stayed flat, that no
// acked message was lost (every acked id is in the history exactly once) and that every acked
// message reached its receiver (live or through message:sync).
//
//   node soak.mjs [--minutes 1] [--users 12] [--online-at-end 6]
//   npm run soak                      # CI: one minute, a sample every 10 s
//   node soak.mjs --minutes 30        # the long run, a sample every minute
//
// Prints a table and a JSON summary, then `N passed, N failed`; exits 1 on any failure.

import {
  countRedisKeys, deleteDeploymentKeys, emitAck, http, processStats, randomName, redisCommand, registerAndLogin, sleep, startCluster,
} from './lib/harness.mjs';
import { io } from 'socket.io-client';

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) throw new Error(`unknown argument ${argv[i]}`);
    out[m[1]] = m[2] ?? argv[++i];
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const MINUTES = Number(args.minutes ?? 1);
const USERS = Number(args.users ?? 12);
const ONLINE_AT_END = Number(args['online-at-end'] ?? Math.floor(USERS / 2));
const SAMPLE_EVERY_MS = MINUTES <= 1 ? 10_000 : 60_000;
const MB = 2 ** 20;
const ACK_TIMEOUT_MS = 10_000;

const rand = (n) => Math.floor(Math.random() * n);
const pick = (xs) => xs[rand(xs.length)];
const log = (s) => process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

function connectTo(url, token, onMessage) {
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token }, timeout: 10_000 });
  socket.on('message:new', onMessage);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => { socket.close(); reject(err); });
  });
}

async function main() {
  log(`starting a 3-instance cluster; ${MINUTES} min of churn with ${USERS} users, sampling every ${SAMPLE_EVERY_MS / 1000} s`);
  const cluster = await startCluster(3, { env: { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_SEC: '100000', USER_RATE_LIMIT_BURST: '0' } });
  const checks = [];
  const check = (name, ok, detail) => {
    checks.push({ name, ok: Boolean(ok), detail });
    log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? ` — ${detail}` : ''}`);
  };
  const users = [];
  let interrupted = false;
  const onSignal = () => { interrupted = true; };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const { urls, redisPrefix } = cluster;
    const presenceCounts = `{${redisPrefix}:presence}:counts`;
    const presenceUsers = `{${redisPrefix}:presence}:users`;

    // --- users and their cursors ----------------------------------------------------------
    for (let i = 0; i < USERS; i++) {
      const { user, token } = await registerAndLogin(pick(urls), randomName(`soak${i}`));
      users.push({ i, user, token, seen: new Set(), cursor: null, socket: null, sessions: 0 });
    }
    const acked = []; // {id, from, to, clientMsgId}
    const stats = { sent: 0, acked: 0, errorAcks: {}, noAck: 0, connects: 0, connectErrors: {}, syncs: 0, syncedMessages: 0, liveMessages: 0 };
    // Genesis: user i sends to user i+1, one after the other; each user's cursor is the first
    // message that involves them, so message:sync from it covers everything after.
    const genesis = [];
    for (const u of users) {
      const s = await connectTo(pick(urls), u.token, () => {});
      const peer = users[(u.i + 1) % USERS];
      const ack = await emitAck(s, 'message:send', { receiverId: peer.user.id, content: `genesis ${u.i}`, clientMsgId: `g${u.i}` }, ACK_TIMEOUT_MS);
      s.close();
      if (!ack || ack.error) throw new Error(`genesis send failed: ${JSON.stringify(ack)}`);
      genesis.push(ack);
      acked.push({ id: ack.id, from: u, to: peer, clientMsgId: `g${u.i}` });
    }
    for (const u of users) {
      const first = u.i === 0 ? genesis[0] : genesis[u.i - 1];
      u.cursor = first.id;
      u.seen.add(first.id);
    }

    async function syncUser(u) {
      for (let page = 0; page < 10_000; page++) {
        const res = await emitAck(u.socket, 'message:sync', { after: u.cursor, limit: 100 }, ACK_TIMEOUT_MS);
        if (!res || res.error || !Array.isArray(res.messages)) throw new Error(`message:sync failed: ${JSON.stringify(res)}`);
        stats.syncs++;
        stats.syncedMessages += res.messages.length;
        for (const m of res.messages) u.seen.add(m.id);
        if (res.messages.length) u.cursor = res.messages.at(-1).id;
        if (!res.hasMore) return;
      }
    }

    async function session(u, { minMs, maxMs, chat }) {
      const url = pick(urls);
      try {
        u.socket = await connectTo(url, u.token, (m) => { u.seen.add(m.id); stats.liveMessages++; });
      } catch (err) {
        stats.connectErrors[err.message] = (stats.connectErrors[err.message] ?? 0) + 1;
        return;
      }
      stats.connects++;
      u.sessions++;
      await syncUser(u);
      const until = Date.now() + minMs + rand(maxMs - minMs);
      const pending = [];
      while (chat && Date.now() < until && !interrupted) {
        const peer = pick(users.filter((x) => x !== u));
        const clientMsgId = `u${u.i}-${u.sessions}-${stats.sent}`;
        stats.sent++;
        pending.push(emitAck(u.socket, 'message:send', { receiverId: peer.user.id, content: `soak ${clientMsgId}`, clientMsgId }, ACK_TIMEOUT_MS)
          .then((ack) => {
            if (ack && !ack.error) { stats.acked++; acked.push({ id: ack.id, from: u, to: peer, clientMsgId }); } else {
              const code = ack?.error?.code ?? 'malformed';
              stats.errorAcks[code] = (stats.errorAcks[code] ?? 0) + 1;
            }
          }, () => { stats.noAck++; }));
        await sleep(150 + rand(350));
      }
      await Promise.all(pending);
    }

    // --- sampling -------------------------------------------------------------------------
    const samples = [];
    const t0 = Date.now();
    async function sample(label) {
      const row = { t: Math.round((Date.now() - t0) / 1000), label, nodes: [] };
      for (const node of cluster.nodes) {
        const s = await processStats(node);
        row.nodes.push({ rssMB: s ? Math.round((s.rssBytes / MB) * 10) / 10 : null, fds: s?.fds ?? null });
      }
      row.redisKeys = await countRedisKeys(redisPrefix);
      row.presenceUsers = await redisCommand('HLEN', presenceCounts);
      row.online = users.filter((u) => u.socket?.connected).length;
      samples.push(row);
      log(`sample t=${row.t}s ${row.nodes.map((n, i) => `node${i} ${n.rssMB} MB ${n.fds} fds`).join(', ')}; ${row.redisKeys} keys, ${row.presenceUsers} online in Redis, ${row.online} connected`);
      return row;
    }

    // --- churn ----------------------------------------------------------------------------
    await sample('start');
    const churnUntil = t0 + MINUTES * 60_000;
    let stopChurn = false;
    const agents = users.map(async (u) => {
      await sleep(rand(2_000));
      while (!stopChurn && !interrupted) {
        await session(u, { minMs: 1_500, maxMs: 8_000, chat: true });
        u.socket?.close();
        u.socket = null;
        await sleep(300 + rand(2_500));
      }
    });
    while (Date.now() < churnUntil && !interrupted) {
      const next = Math.min(churnUntil, Date.now() + SAMPLE_EVERY_MS - ((Date.now() - t0) % SAMPLE_EVERY_MS));
      await sleep(Math.max(0, next - Date.now()));
      if (Date.now() < churnUntil - 1_000) await sample('churn');
    }
    stopChurn = true;
    await Promise.all(agents);
    log(`churn over: ${stats.sent} sent, ${stats.acked} acked, ${stats.connects} connects`);

    // --- the end state: the first ONLINE_AT_END users online, the others caught up and gone ---
    for (const u of users) {
      await session(u, { minMs: 0, maxMs: 1, chat: false });
      if (u.i >= ONLINE_AT_END) { u.socket?.close(); u.socket = null; }
    }
    // Presence settles: exactly the online users are in Redis.
    const settleUntil = Date.now() + 20_000;
    while (Date.now() < settleUntil) {
      if (Number(await redisCommand('HLEN', presenceCounts)) === ONLINE_AT_END) break;
      await sleep(250);
    }
    await sleep(3_000);
    const final = await sample('final');
    const first = samples[0];

    // --- checks ---------------------------------------------------------------------------
    cluster.nodes.forEach((node, i) => {
      const a = first.nodes[i];
      const b = final.nodes[i];
      const rssBound = Math.max(a.rssMB * 1.5, a.rssMB + 30);
      const peak = Math.max(...samples.map((s) => s.nodes[i].rssMB));
      check(`node${i} RSS stays flat`, b.rssMB <= rssBound, `${a.rssMB} → ${b.rssMB} MB (bound ${rssBound.toFixed(1)}, peak ${peak})`);
      check(`node${i} open fds stay flat`, b.fds <= a.fds + 20, `${a.fds} → ${b.fds} (bound ${a.fds + 20})`);
      check(`node${i} is still running`, node.isRunning(), '');
      check(`node${i} logged no panic`, !/panicked/.test(node.log()), '');
    });
    const pairs = new Set(acked.map((a) => [a.from.user.id, a.to.user.id].sort().join(':')));
    const keyBound = 3 + cluster.nodes.length + 2 * pairs.size;
    check('Redis keys stay bounded', final.redisKeys <= keyBound, `${first.redisKeys} → ${final.redisKeys} keys (bound ${keyBound}: presence + 2 per conversation, ${pairs.size} conversations)`);
    const presenceUserCount = Number(await redisCommand('HLEN', presenceUsers));
    check('Redis presence lists exactly the online users', final.presenceUsers === ONLINE_AT_END && presenceUserCount === ONLINE_AT_END,
      `counts ${final.presenceUsers}, users ${presenceUserCount}, expected ${ONLINE_AT_END}`);
    const online = users.filter((u) => u.socket?.connected);
    const listed = online.length ? await emitAck(online[0].socket, 'user:init', null, ACK_TIMEOUT_MS) : [];
    check('user:init lists exactly the online users', Array.isArray(listed) && listed.length === ONLINE_AT_END
      && online.every((u) => listed.some((x) => x.id === u.user.id)), `${listed.length} listed`);
    check('every send was acked as stored', !Object.keys(stats.errorAcks).length && stats.noAck === 0,
      `${stats.acked} ok, errors ${JSON.stringify(stats.errorAcks)}, ${stats.noAck} without an ack`);
    check('no connect was refused', !Object.keys(stats.connectErrors).length, JSON.stringify(stats.connectErrors));

    const undelivered = acked.filter((a) => !a.to.seen.has(a.id));
    check('every acked message reached its receiver (live or message:sync)', undelivered.length === 0,
      `${acked.length - undelivered.length}/${acked.length}${undelivered.length ? `; missing e.g. ${undelivered.slice(0, 3).map((a) => a.clientMsgId)}` : ''}`);

    // History (REST): every acked id exactly once in its conversation.
    const inHistory = new Map();
    for (const key of pairs) {
      const [aId, bId] = key.split(':');
      const a = users.find((u) => u.user.id === aId);
      let before;
      for (let page = 0; page < 10_000; page++) {
        const res = await http(`${pick(urls)}/api/conversations/${bId}/messages?limit=100${before ? `&before=${before}` : ''}`, { token: a.token });
        if (res.status !== 200) throw new Error(`history ${key}: ${res.status} ${res.text}`);
        for (const m of res.body.messages) inHistory.set(m.id, (inHistory.get(m.id) ?? 0) + 1);
        if (!res.body.hasMore) break;
        before = res.body.messages[0].id;
      }
    }
    const lost = acked.filter((a) => inHistory.get(a.id) !== 1);
    check('no acked message was lost or doubled (REST history)', lost.length === 0,
      `${acked.length - lost.length}/${acked.length} exactly once; history holds ${inHistory.size}`);

    // --- report ---------------------------------------------------------------------------
    const pad = (s, n) => String(s).padStart(n);
    console.log(`\n${pad('t (s)', 6)} ${pad('sample', 6)} ${cluster.nodes.map((_, i) => `${pad(`n${i} RSS MB`, 10)} ${pad(`n${i} fds`, 7)}`).join(' ')} ${pad('keys', 5)} ${pad('presence', 8)} ${pad('online', 6)}`);
    for (const s of samples) {
      console.log(`${pad(s.t, 6)} ${pad(s.label, 6)} ${s.nodes.map((n) => `${pad(n.rssMB, 10)} ${pad(n.fds, 7)}`).join(' ')} ${pad(s.redisKeys, 5)} ${pad(s.presenceUsers, 8)} ${pad(s.online, 6)}`);
    }
    const summary = {
      minutes: MINUTES, users: USERS, onlineAtEnd: ONLINE_AT_END, ...stats, ackedTotal: acked.length,
      conversations: pairs.size, lost: lost.length, undelivered: undelivered.length, samples,
      checks: checks.map((c) => ({ name: c.name, ok: c.ok, detail: c.detail })),
    };
    console.log(`\nsoak summary: ${JSON.stringify(summary)}`);
  } catch (err) {
    check('the soak ran to the end', false, err.stack);
    process.stderr.write(`----- cluster log (tail) -----\n${cluster.log().slice(-20_000)}\n`);
  } finally {
    for (const u of users) u.socket?.close();
    await cluster.stop();
    await deleteDeploymentKeys(cluster.redisPrefix).catch(() => {});
  }
  if (interrupted) check('not interrupted', false, 'SIGINT/SIGTERM');
  const failed = checks.filter((c) => !c.ok).length;
  console.log(`\n${checks.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  console.log('\n0 passed, 1 failed');
  process.exit(1);
});
