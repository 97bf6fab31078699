// Fuzzes the REST API against its own OpenAPI description with schemathesis (`--checks all`): no
// 5xx, every response documented and matching its schema, invalid input refused with a 4xx,
// valid input accepted, authentication enforced. It starts a server per backend (embedded SQLite,
// then PostgreSQL), seeds it through the real API so that generated requests can reach real data
// (a peer with a conversation, a room with messages), hands the seeded ids to schemathesis as
// dictionaries (used for half of the generated values) and finally reads the server's log: a
// panic or an ERROR line fails the run even when every response looked right.
//
//   SCHEMATHESIS=~/.cache/nexus-chat/venv/bin/schemathesis node rest-fuzz.mjs
//   FUZZ_MODES=sqlite FUZZ_EXAMPLES=200 FUZZ_SEED=1234 node rest-fuzz.mjs   # longer, replayable
//
// Prints schemathesis's report, then `N passed, N failed` (one per backend); exits 1 on a failure.

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { connect, emitAck, randomName, registerAndLogin, startServer } from './lib/harness.mjs';

const SCHEMATHESIS = process.env.SCHEMATHESIS || 'schemathesis';
const MODES = (process.env.FUZZ_MODES || 'sqlite,postgres').split(',').filter(Boolean);
const EXAMPLES = Number(process.env.FUZZ_EXAMPLES || 25);
// A hard bound on one backend's run, whatever schemathesis decides to do.
const RUN_TIMEOUT_MS = Number(process.env.FUZZ_TIMEOUT_MS || 150_000);

const log = (s) => process.stderr.write(`[rest-fuzz] ${s}\n`);

/** Users, a conversation and a room made through the API; returns the ids and the caller's token. */
async function seed(url) {
  const me = await registerAndLogin(url, randomName('fuzz'));
  const peer = await registerAndLogin(url, randomName('peer'));
  const socket = await connect(url, me.token);
  const ok = (what, ack) => {
    if (!ack || ack.error) throw new Error(`${what} failed: ${JSON.stringify(ack)}`);
    return ack;
  };
  try {
    const direct = [];
    const inRoom = [];
    for (let i = 0; i < 3; i++) {
      direct.push(ok('message:send', await emitAck(socket, 'message:send', { receiverId: peer.user.id, content: `seed ${i}` })).id);
    }
    const room = ok('room:create', await emitAck(socket, 'room:create', { name: 'fuzzed room', memberIds: [peer.user.id] }));
    for (let i = 0; i < 3; i++) {
      inRoom.push(ok('room:send', await emitAck(socket, 'room:send', { roomId: room.id, content: `room seed ${i}` })).id);
    }
    ok('conversation:read', await emitAck(socket, 'conversation:read', { roomId: room.id, upTo: inRoom.at(-1) }));
    return { token: me.token, peers: [peer.user.id], rooms: [room.id], direct, inRoom };
  } finally {
    socket.close();
  }
}

/** A libFuzzer-style dictionary file: one quoted value a line. */
const dictionary = (values) => `${values.map((v) => JSON.stringify(String(v))).join('\n')}\n`;

async function writeConfig(dir, ids) {
  for (const name of ['peers', 'rooms', 'direct', 'inRoom']) {
    await writeFile(path.join(dir, `${name}.dict`), dictionary(ids[name]));
  }
  // Half of the generated ids are seeded ones, so requests get past the 404s to real pages.
  // A `before` that is a well-formed id but not a message of that conversation is a 400 (as
  // `message:history` acks invalid_payload), which no schema can tell from a valid one: only
  // there may valid-looking input get a 400 (docs/DECISIONS.md).
  const config = `
[dictionaries]
peers = { from-file = "peers.dict" }
rooms = { from-file = "rooms.dict" }
direct = { from-file = "direct.dict" }
inRoom = { from-file = "inRoom.dict" }

[[operations]]
include-operation-id = "getConversationMessages"
parameters = { "path.peerId" = { dictionary = "peers", probability = 0.5 }, "query.before" = { dictionary = "direct", probability = 0.5 } }
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "429"]

[[operations]]
include-operation-id = "getRoomMessages"
parameters = { "path.roomId" = { dictionary = "rooms", probability = 0.5 }, "query.before" = { dictionary = "inRoom", probability = 0.5 } }
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "429"]

[[operations]]
include-operation-id = "getRoom"
parameters = { "path.roomId" = { dictionary = "rooms", probability = 0.5 } }
`;
  const file = path.join(dir, 'schemathesis.toml');
  await writeFile(file, config);
  return file;
}

/** Runs schemathesis to its end (or the time bound); resolves with its exit code. */
function runSchemathesis(args, cwd) {
  return new Promise((resolve) => {
    const child = spawn(SCHEMATHESIS, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => {
      log(`schemathesis still running after ${RUN_TIMEOUT_MS} ms: stopped`);
      child.kill('SIGKILL');
    }, RUN_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      log(`cannot run ${SCHEMATHESIS}: ${err.message} (pip install -r tests/python/requirements-fuzz.txt)`);
      resolve(127);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(signal ? 128 : code);
    });
  });
}

/** Lines of the server's log that show a failure no response revealed. */
function logFailures(text) {
  return text
    .split('\n')
    .filter((line) => /panicked|\bERROR\b|"level":"ERROR"/.test(line))
    .slice(0, 20);
}

async function fuzz(mode) {
  const server = await startServer({ mode, env: { BCRYPT_COST: '4', RUST_LOG: 'warn' }, label: `fuzz ${mode}` });
  const dir = await mkdtemp(path.join(tmpdir(), 'nexus-rest-fuzz-'));
  try {
    const ids = await seed(server.url);
    const config = await writeConfig(dir, ids);
    const args = [
      '--config-file', config,
      'run', `${server.url}/api/openapi.json`,
      '--checks', 'all',
      '--header', `Authorization: Bearer ${ids.token}`,
      '--max-examples', String(EXAMPLES),
      // The password limit is 72 bytes of UTF-8, and JSON Schema's lengths count characters:
      // ASCII strings make the two the same (docs/DECISIONS.md).
      '--generation-codec', 'ascii',
      '--request-timeout', '10',
      '--no-color',
    ];
    if (process.env.FUZZ_SEED) args.push('--seed', process.env.FUZZ_SEED);
    log(`${mode}: schemathesis against ${server.url} (${EXAMPLES} examples an operation)`);
    const code = await runSchemathesis(args, dir);
    const alive = server.isRunning();
    const bad = logFailures(server.log());
    if (!alive) log(`${mode}: the server died during the run; its log:\n${server.log()}`);
    if (bad.length) log(`${mode}: the server logged failures:\n${bad.join('\n')}`);
    return code === 0 && alive && bad.length === 0;
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

let passed = 0;
let failed = 0;
for (const mode of MODES) {
  let ok = false;
  try {
    ok = await fuzz(mode);
  } catch (err) {
    log(`${mode}: ${err.stack || err.message}`);
  }
  log(`${mode}: ${ok ? 'passed' : 'FAILED'}`);
  if (ok) passed++;
  else failed++;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
