// Who may still use their tokens, and limits that hold per account rather than per socket or per
// address: a deleted or disabled account is refused everywhere (REST, handshake, user:init, sends)
// and its open sockets are closed; `nexus-chat user disable|enable` on a running server or cluster;
// the per-user send budget across all of a user's sockets (and instances); login throttling that
// holds across client addresses and, in a cluster, across instances (counted once in Redis).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import httpModule from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import pg from 'pg';
import {
  NEXUS_BIN, connectError, emitAck, eventually, forEachMode, freePort, http, login, randomName,
  register, waitForDisconnect, withCluster, withServer,
} from '../lib/harness.mjs';

const RUN_CLUSTER = process.env.TEST_CLUSTER === '1';
const FAST_ACCESS = { ACCESS_REFRESH_MS: '200' };
const UNAUTHORIZED = { statusCode: 401, message: 'Unauthorized', error: 'Unauthorized' };

/** Runs `nexus-chat <args>` with a server's environment (its database); `{code, stdout, stderr}`. */
function runCli(args, env) {
  return new Promise((resolve, reject) => {
    const proc = spawn(NEXUS_BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    proc.on('error', reject);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Deletes a user's row as an operator would at a SQL prompt (no server involved). */
async function deleteUserRow(server, id) {
  if (server.env.DATABASE_URL) {
    const client = new pg.Client({ connectionString: server.env.DATABASE_URL });
    await client.connect();
    try {
      await client.query('DELETE FROM users WHERE id = $1', [id]);
    } finally {
      await client.end();
    }
    return;
  }
  const file = path.join(server.env.DATA_DIR, 'nexus-chat.sqlite3');
  const out = await new Promise((resolve, reject) => {
    const proc = spawn('sqlite3', ['-cmd', '.timeout 5000', file, `DELETE FROM users WHERE id = '${id}'`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d) => { stderr += d; });
    proc.on('error', reject);
    proc.on('exit', (code) => resolve({ code, stderr }));
  });
  assert.equal(out.code, 0, out.stderr);
}

/** POST /auth/login from a chosen loopback source address. */
function loginFrom(url, localAddress, username, password) {
  const u = new URL('/auth/login', url);
  const body = JSON.stringify({ username, password });
  return new Promise((resolve, reject) => {
    const req = httpModule.request({
      hostname: u.hostname,
      port: u.port,
      path: u.pathname,
      method: 'POST',
      localAddress,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text) : null }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('login timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Every socket of `sockets` sends `each` messages to `receiverId` at once; returns the acks and
 * the seconds the burst took (the budget may refill by that much meanwhile).
 */
async function burst(sockets, receiverId, each) {
  const started = Date.now();
  const acks = await Promise.all(sockets.flatMap((s, i) => Array.from({ length: each }, (_, j) => emitAck(s, 'message:send', { receiverId, content: `t${i}-${j}` }, 15_000))));
  return { acks, seconds: (Date.now() - started) / 1000 };
}

function assertBudget({ acks, seconds }, burstSize, perSec) {
  const ok = acks.filter((a) => a && !a.error);
  const refused = acks.filter((a) => a?.error);
  for (const a of refused) assert.equal(a.error.code, 'rate_limited', JSON.stringify(a));
  const allowance = burstSize + Math.ceil(seconds * perSec);
  assert.ok(ok.length >= burstSize, `the user's burst is available: ${ok.length} of ${acks.length} accepted`);
  assert.ok(ok.length <= allowance, `${ok.length} sends accepted across ${acks.length} tries; the user's budget allows ${allowance}`);
  return ok;
}

const BUDGET = { RATE_LIMIT_BURST: '15', RATE_LIMIT_PER_SEC: '1', USER_RATE_LIMIT_BURST: '20', USER_RATE_LIMIT_PER_SEC: '1' };

forEachMode((mode) => {
  test('a deleted account: its sockets close, its token is refused at /api/me and at the handshake, it leaves user:init, sends to it ack unknown_receiver', withServer({ mode, env: FAST_ACCESS }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const dave = await w.online(randomName('dave'));
    assert.equal((await http(`${w.url}/api/me`, { token: dave.token })).status, 200);
    const closed = waitForDisconnect(dave.socket, 10_000);
    await deleteUserRow(w.server, dave.user.id);
    await closed;

    const me = await http(`${w.url}/api/me`, { token: dave.token });
    assert.equal(me.status, 401);
    assert.deepEqual(me.body, UNAUTHORIZED);
    assert.equal((await connectError(w.url, dave.token)).message, 'Unauthorized');
    const online = await emitAck(alice.socket, 'user:init', null);
    assert.ok(!online.some((u) => u.id === dave.user.id), 'the deleted account is not online');
    const ack = await emitAck(alice.socket, 'message:send', { receiverId: dave.user.id, content: 'still there?' });
    assert.equal(ack.error?.code, 'unknown_receiver', JSON.stringify(ack));
    const again = await login(w.url, dave.user.username);
    assert.equal(again.status, 401);
  }));

  test('nexus-chat user disable closes the account\'s sockets and refuses its token and its password; enable restores both', withServer({ mode, env: FAST_ACCESS }, async (w) => {
    const name = randomName('bob');
    const bob = await w.online(name, { tabs: 2 });
    const closed = Promise.all(bob.sockets.map((s) => waitForDisconnect(s, 10_000)));
    const out = await runCli(['user', 'disable', name.toUpperCase()], w.server.env);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /disabled/);
    await closed;

    assert.equal((await connectError(w.url, bob.token)).message, 'Unauthorized');
    const me = await http(`${w.url}/api/me`, { token: bob.token });
    assert.equal(me.status, 401);
    assert.deepEqual(me.body, UNAUTHORIZED);
    const refused = await login(w.url, name);
    assert.equal(refused.status, 401);
    assert.equal(refused.body.message, 'Invalid credentials');

    const twice = await runCli(['user', 'disable', name], w.server.env);
    assert.equal(twice.code, 0, twice.stderr);
    assert.match(twice.stdout, /already disabled/);
    const unknown = await runCli(['user', 'disable', randomName('nobody')], w.server.env);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /no account/);

    const enabled = await runCli(['user', 'enable', name], w.server.env);
    assert.equal(enabled.code, 0, enabled.stderr);
    await eventually(async () => (await http(`${w.url}/api/me`, { token: bob.token })).status === 200, 'the old token works again', 10_000);
    const socket = await w.connect(bob.token);
    assert.ok(socket.connected);
    assert.equal((await login(w.url, name)).status, 201);
  }));

  test('the per-user send budget holds across all of a user\'s sockets', withServer({ mode, env: BUDGET }, async (w) => {
    const alice = await w.online(randomName('alice'), { tabs: 4 });
    const bob = await w.online(randomName('bob'));
    // 4 sockets × 15 (each within its own per-socket burst) = 60 tries; the user may send 20.
    const ok = assertBudget(await burst(alice.sockets, bob.user.id, 15), 20, 1);
    const page = await http(`${w.url}/api/conversations/${bob.user.id}/messages?limit=100`, { token: alice.token });
    assert.equal(page.status, 200);
    assert.equal(page.body.messages.length, ok.length, 'what was refused was not stored');
  }));

  test('a username\'s login back-off holds whatever address the attempts come from', withServer({ mode, env: { LOGIN_FAILURES_BEFORE_BACKOFF: '3', LOGIN_IP_FAILURES_BEFORE_BACKOFF: '1000', LOGIN_BACKOFF_BASE_SECS: '60' } }, async (w) => {
    const name = randomName('carol');
    assert.equal((await register(w.url, name, 'right password')).status, 201);
    for (let i = 0; i < 3; i++) {
      assert.equal((await loginFrom(w.url, `127.0.0.${10 + i}`, name, 'wrong password')).status, 401);
    }
    const held = await loginFrom(w.url, '127.0.0.99', name, 'right password');
    assert.equal(held.status, 429);
    assert.ok(Number(held.headers['retry-after']) > 0);
  }));
});

describe('access and per-user limits across instances', { skip: RUN_CLUSTER ? false : 'set TEST_CLUSTER=1 to run the cluster tests' }, () => {
  test('user disable on a running 3-instance cluster drops the account\'s sockets on every instance and refuses it everywhere; enable brings it back', withCluster(3, { env: FAST_ACCESS }, async (w, cluster) => {
    const name = randomName('bob');
    const { token } = await w.user(name);
    const sockets = [];
    for (const url of cluster.urls) sockets.push(await w.connect(token, {}, url));
    const closed = Promise.all(sockets.map((s) => waitForDisconnect(s, 10_000)));
    const out = await runCli(['user', 'disable', name], cluster.nodes[0].env);
    assert.equal(out.code, 0, out.stderr);
    await closed;
    for (const url of cluster.urls) {
      assert.equal((await connectError(url, token)).message, 'Unauthorized', url);
      assert.equal((await http(`${url}/api/me`, { token })).status, 401, url);
    }
    const enabled = await runCli(['user', 'enable', name], cluster.nodes[2].env);
    assert.equal(enabled.code, 0, enabled.stderr);
    for (const url of cluster.urls) {
      await eventually(async () => (await http(`${url}/api/me`, { token })).status === 200, `the token works again on ${url}`, 10_000);
      await w.connect(token, {}, url);
    }
  }));

  test('the per-user send budget is shared by the user\'s sockets on every instance', withCluster(3, { env: BUDGET }, async (w, cluster) => {
    const alice = await w.user(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const sockets = [];
    for (const url of cluster.urls) sockets.push(await w.connect(alice.token, {}, url));
    // 3 instances × 15 = 45 tries; the user may send 20 in all.
    assertBudget(await burst(sockets, bob.user.id, 15), 20, 1);
  }));

  test('failed logins count once for the whole cluster: per username from any address, and per address', withCluster(2, { env: { LOGIN_FAILURES_BEFORE_BACKOFF: '4', LOGIN_IP_FAILURES_BEFORE_BACKOFF: '4', LOGIN_BACKOFF_BASE_SECS: '60' } }, async (w, cluster) => {
    const [n0, n1] = cluster.urls;
    const name = randomName('carol');
    assert.equal((await register(n0, name, 'right password')).status, 201);
    // Two failures on each instance, each from another address: under the old per-instance
    // counting neither instance would have seen four.
    for (let i = 0; i < 4; i++) {
      const res = await loginFrom(i % 2 ? n1 : n0, `127.0.0.${20 + i}`, name, 'wrong password');
      assert.equal(res.status, 401);
    }
    for (const url of [n0, n1]) {
      const held = await loginFrom(url, '127.0.0.99', name, 'right password');
      assert.equal(held.status, 429, url);
      assert.ok(Number(held.headers['retry-after']) > 0);
    }
    // One address trying four different usernames, half on each instance.
    for (let i = 0; i < 4; i++) {
      assert.equal((await loginFrom(i % 2 ? n1 : n0, '127.0.0.77', randomName('nobody'), 'x'.repeat(8))).status, 401);
    }
    assert.equal((await loginFrom(n1, '127.0.0.77', randomName('fresh'), 'x'.repeat(8))).status, 429);
  }));

  test('while Redis is down each instance keeps limiting logins and sends by itself', async () => {
    const port = await freePort();
    const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await eventually(() => new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    }), 'redis-server accepts connections', 10_000);
    try {
      await withCluster(2, { env: { ...BUDGET, REDIS_URL: `redis://127.0.0.1:${port}`, LOGIN_FAILURES_BEFORE_BACKOFF: '2', LOGIN_BACKOFF_BASE_SECS: '60' } }, async (w, cluster) => {
        const [n0, n1] = cluster.urls;
        const alice = await w.user(randomName('alice'));
        const bob = await w.user(randomName('bob'));
        const name = randomName('carol');
        assert.equal((await register(n0, name, 'right password')).status, 201);
        const s0 = await w.connect(alice.token, {}, n0);
        const s1 = await w.connect(alice.token, {}, n1);
        redis.kill('SIGKILL');
        await eventually(async () => (await http(`${n0}/ready`)).status === 503 && (await http(`${n1}/ready`)).status === 503, 'both instances see Redis gone', 15_000);

        // Each instance counts alone: its own burst per user, and its own failures per username.
        const { acks } = await burst([s0, s1], bob.user.id, 15);
        const ok = acks.filter((a) => a && !a.error).length;
        for (const a of acks.filter((x) => x?.error)) assert.equal(a.error.code, 'rate_limited', JSON.stringify(a));
        assert.ok(ok >= 20, `sending still works without Redis: ${ok} accepted`);
        for (let i = 0; i < 2; i++) assert.equal((await loginFrom(n0, '127.0.0.30', name, 'wrong password')).status, 401);
        assert.equal((await loginFrom(n0, '127.0.0.31', name, 'right password')).status, 429);
        const metrics = await http(`${n0}/metrics`);
        assert.match(metrics.text, /nexus_login_throttle_local_decisions_total [1-9]/);
        assert.match(metrics.text, /nexus_user_budget_local_decisions_total [1-9]/);
      });
    } finally {
      redis.kill('SIGKILL');
    }
  });
});
