// The Socket.io endpoint under a socket-level fuzzer (lib/fuzz.mjs) for FUZZ_SECONDS (default 15):
// two legitimate users chatting meanwhile get every message, the server keeps answering, and its
// memory returns to within 50 MB of its baseline once the fuzz stops.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emitAck, forEachMode, processStats, randomName, sleep, withServer } from '../lib/harness.mjs';
import { fuzzScenario } from '../lib/fuzz.mjs';

const SECONDS = Number(process.env.FUZZ_SECONDS || 15);
const SEED = Number(process.env.FUZZ_SEED || (Date.now() & 0xffffffff));
const MAX_PAYLOAD_BYTES = 1_000_000;
const RSS_BOUND = 50 * 2 ** 20;
const MB = (b) => Math.round((b / 2 ** 20) * 10) / 10;

forEachMode((mode) => {
  test(`${SECONDS} s of fuzzed packets: legit chat loses nothing, the server stays up and its RSS returns to baseline`, { timeout: (SECONDS + 120) * 1000 }, withServer({
    mode, env: { MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD_BYTES) },
  }, async (w, t) => {
    const baseline = await processStats(w.server);
    const report = await fuzzScenario({
      url: w.url, seconds: SECONDS, concurrency: 6, seed: SEED, maxPayloadBytes: MAX_PAYLOAD_BYTES,
      log: (s) => t.diagnostic(s),
    });
    const peak = await processStats(w.server);
    assert.ok(w.server.isRunning(), 'the server process is still running');
    await sleep(5_000);
    const settled = await processStats(w.server);
    const summary = {
      mode, seed: SEED, seconds: SECONDS,
      packets: report.fuzz.packets, mbSent: MB(report.fuzz.bytes), connections: report.fuzz.connections,
      semantic: { sessions: report.fuzz.connections.semantic, acksExpected: report.fuzz.semantic.acksExpected, acksMissing: report.fuzz.semantic.acksMissing, notConnected: report.fuzz.semantic.notConnected },
      closedByServer: report.fuzz.closedByServer, closeCodes: report.fuzz.closeCodes, httpStatus: report.fuzz.httpStatus,
      legit: report.legit, health: report.health,
      rssMB: { baseline: MB(baseline.rssBytes), endOfFuzz: MB(peak.rssBytes), afterSettle: MB(settled.rssBytes) },
      fds: { baseline: baseline.fds, afterSettle: settled.fds },
    };
    console.log(`fuzz summary: ${JSON.stringify(summary)}`);
    assert.equal(report.fuzz.fuzzerErrors ?? 0, 0, `the fuzzer itself failed: ${report.fuzz.lastFuzzerError}`);
    assert.ok(report.fuzz.packets > SECONDS * 50, `the fuzzer sent enough packets: ${report.fuzz.packets}`);
    assert.deepEqual(report.failures, [], 'the legitimate users and the server were unaffected');
    assert.doesNotMatch(w.server.log(), /panicked/, 'no panic in the server log');
    assert.ok(settled.rssBytes < baseline.rssBytes + RSS_BOUND,
      `RSS after a 5 s settle (${MB(settled.rssBytes)} MB) is within 50 MB of the baseline (${MB(baseline.rssBytes)} MB)`);
    // Loose: the fuzzer's own keep-alive HTTP connections and not yet timed-out polling sessions count.
    assert.ok(settled.fds <= baseline.fds + 40, `open fds return near the baseline: ${baseline.fds} → ${settled.fds}`);
  }));

  // Found by the fuzzer: on PostgreSQL a text with U+0000 cannot be stored, and the whole group
  // commit failed with it — every other sender in the same batch got `internal`.
  test('a message containing U+0000 never fails other senders\' messages committed with it', withServer({
    mode, env: { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_SEC: '100000', USER_RATE_LIMIT_BURST: '0' },
  }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const mallory = await w.online(randomName('mallory'));
    const poison = [
      { receiverId: bob.user.id, content: 'nul \u0000 inside' },
      { receiverId: bob.user.id, content: 'fine', clientMsgId: 'nul\u0000id' },
    ];
    for (let round = 0; round < 5; round++) {
      const legit = Array.from({ length: 20 }, (_, i) => emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: `legit ${round}.${i}` }));
      const bad = poison.map((p) => emitAck(mallory.socket, 'message:send', p));
      const more = Array.from({ length: 20 }, (_, i) => emitAck(bob.socket, 'message:send', { receiverId: alice.user.id, content: `reply ${round}.${i}` }));
      const [legitAcks, badAcks, moreAcks] = await Promise.all([Promise.all(legit), Promise.all(bad), Promise.all(more)]);
      const failed = [...legitAcks, ...moreAcks].filter((a) => a?.error).map((a) => a.error.code);
      assert.deepEqual(failed, [], `round ${round}: legitimate sends committed alongside a U+0000 message all succeed`);
      for (const a of badAcks) {
        assert.ok(!a?.error || a.error.code === 'invalid_payload', `a U+0000 message is stored or refused as invalid_payload, never ${JSON.stringify(a)}`);
      }
    }
  }));
});
