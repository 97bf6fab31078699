// GET /metrics: Prometheus text with the operational counters, and they move with traffic.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  connectError, emitAck, eventually, forEachMode, http, login, parsePrometheus, randomName, recordEvents,
  register, signJwt, withServer,
} from '../lib/harness.mjs';
import { send } from '../lib/expect.mjs';

const COUNTERS = [
  'nexus_messages_accepted_total', 'nexus_messages_stored_total', 'nexus_messages_delivered_total',
  'nexus_redis_errors_total', 'nexus_database_errors_total', 'nexus_rate_limited_total',
  'nexus_handshakes_refused_total', 'nexus_slow_consumers_disconnected_total',
];
const GAUGES = ['nexus_sockets_connected', 'nexus_users_online'];
const HISTOGRAMS = ['nexus_ack_latency_seconds', 'nexus_commit_batch_size'];

/** Sum of every sample of `name` (any labels). */
const metric = (samples, name) => {
  let sum = 0;
  let found = false;
  for (const [k, v] of samples) {
    if (k === name || k.startsWith(`${name}{`)) {
      sum += v;
      found = true;
    }
  }
  return found ? sum : undefined;
};

async function scrape(url) {
  const res = await http(`${url}/metrics`);
  assert.equal(res.status, 200, res.text);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/, 'Prometheus text format');
  return { samples: parsePrometheus(res.text), text: res.text };
}

forEachMode((mode) => {
  test('/metrics exposes every counter, gauge and histogram, and they move with traffic', withServer({
    mode, env: { RATE_LIMIT_BURST: '8', RATE_LIMIT_PER_SEC: '1', MAX_SOCKETS_PER_USER: '2' },
  }, async (w) => {
    const before = await scrape(w.url);
    for (const name of [...COUNTERS, ...GAUGES]) {
      assert.notEqual(metric(before.samples, name), undefined, `${name} is exposed before any traffic`);
      assert.match(before.text, new RegExp(`^# TYPE ${name} (counter|gauge)$`, 'm'), `${name} has a TYPE line`);
    }
    for (const name of HISTOGRAMS) {
      for (const suffix of ['_bucket', '_sum', '_count']) {
        assert.notEqual(metric(before.samples, `${name}${suffix}`), undefined, `${name}${suffix} is exposed`);
      }
      assert.match(before.text, new RegExp(`^# TYPE ${name} histogram$`, 'm'), `${name} is a histogram`);
      assert.ok(before.samples.has(`${name}_bucket{le="+Inf"}`), `${name} has a +Inf bucket`);
    }

    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'), { tabs: 2 });
    const inbox = recordEvents(bob.socket, 'message:new');
    for (let i = 0; i < 5; i++) await send(alice.socket, bob.user.id, `counted ${i}`);
    await eventually(() => inbox.length === 5, 'bob gets the five messages');
    // Burst 8: five used, the rest of ten quick sends are over the limit.
    const acks = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: `burst ${i}` })));
    const limited = acks.filter((a) => a?.error?.code === 'rate_limited').length;
    assert.ok(limited >= 1, `some sends were rate limited: ${JSON.stringify(acks.map((a) => a.error?.code ?? 'ok'))}`);
    const stored = 5 + acks.filter((a) => !a.error).length;
    // Refused handshakes: a third tab over MAX_SOCKETS_PER_USER and a forged token.
    assert.equal((await connectError(w.url, bob.token)).message, 'Too many connections');
    assert.equal((await connectError(w.url, signJwt({ sub: bob.user.id, exp: 9e9 }, 'nope'))).message, 'Unauthorized');
    // A failed login, for the throttling counter's neighbours.
    const carol = randomName('carol');
    await register(w.url, carol);
    await login(w.url, carol, 'wrong password');

    const after = await scrape(w.url);
    const moved = (name) => metric(after.samples, name) - metric(before.samples, name);
    assert.ok(moved('nexus_messages_accepted_total') >= stored, `accepted moved by ≥ ${stored}: ${moved('nexus_messages_accepted_total')}`);
    assert.equal(moved('nexus_messages_stored_total'), stored, 'stored counts each stored message once');
    assert.ok(moved('nexus_messages_delivered_total') >= stored, `delivered moved: ${moved('nexus_messages_delivered_total')}`);
    assert.ok(moved('nexus_ack_latency_seconds_count') >= stored, `ack latency observed per ack: ${moved('nexus_ack_latency_seconds_count')}`);
    assert.ok(moved('nexus_ack_latency_seconds_sum') > 0, 'ack latency sum grew');
    assert.ok(moved('nexus_commit_batch_size_count') >= 1, 'commit batches observed');
    assert.ok(moved('nexus_commit_batch_size_sum') >= stored, `batch sizes add up to the stored messages: ${moved('nexus_commit_batch_size_sum')}`);
    assert.ok(moved('nexus_rate_limited_total') >= limited, `rate_limited_total moved by ≥ ${limited}: ${moved('nexus_rate_limited_total')}`);
    assert.ok(moved('nexus_handshakes_refused_total') >= 1, `handshakes_refused_total moved: ${moved('nexus_handshakes_refused_total')}`);
    assert.equal(metric(after.samples, 'nexus_sockets_connected'), 3, 'three sockets are connected');
    assert.equal(metric(after.samples, 'nexus_users_online'), 2, 'two users are online');
    assert.equal(moved('nexus_database_errors_total'), 0, 'no database errors');
    assert.equal(moved('nexus_slow_consumers_disconnected_total'), 0, 'no slow consumer');
    // Buckets are cumulative.
    for (const name of HISTOGRAMS) {
      const buckets = [...after.samples].filter(([k]) => k.startsWith(`${name}_bucket{`))
        .map(([k, v]) => [k.includes('+Inf') ? Infinity : Number(/le="([^"]+)"/.exec(k)[1]), v])
        .sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i][1] >= buckets[i - 1][1], `${name} buckets are cumulative`);
      assert.equal(buckets.at(-1)[1], metric(after.samples, `${name}_count`), `${name} +Inf bucket equals _count`);
    }

    // Gauges come back down when the sockets close.
    w.closeSockets();
    await eventually(async () => {
      const { samples } = await scrape(w.url);
      return metric(samples, 'nexus_sockets_connected') === 0 && metric(samples, 'nexus_users_online') === 0;
    }, 'sockets_connected and users_online return to 0', 5_000, 100);
  }));
});
