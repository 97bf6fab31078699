// `nexus-chat import-nest`: the old NestJS app's PostgreSQL (TypeORM schema) and Redis history lists,
// filled here the way that app filled them, imported into a fresh target; then the imported users
// sign in with their old passwords over HTTP and read their history with a real socket.io client.
//
// Each test has its own source database, its own target (SQLite folder or PostgreSQL database) and
// its own Redis key namespace (the old app's keys have no prefix of ours, so the importer is pointed
// at `<random>:chat:history:` with --source-redis-key-prefix); all are removed afterwards.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import {
  NEXUS_BIN, REDIS_URL, SCRUBBED_ENV, connect, createTestDatabase, deleteDeploymentKeys, deleteRedisKeys,
  dropTestDatabase, emitAck, forEachMode, http, login, redisCommand, register, startServer,
} from '../lib/harness.mjs';
import { assertMessage } from '../lib/expect.mjs';

// bcrypt hashes as the old app stored them (node's bcrypt writes $2b$; other libraries $2a$/$2y$).
const PASSWORDS = {
  secret123: '$2b$10$r6Cg.PZyNSnQA34JzfB9oeCELHGjVh2z4TThc4MEO9Qb8BE8YkcHi',
  'alice-old-pass': '$2b$10$oDVmiArSJ9o7gDsFKIsh7u2xQlVoeflH4KGr.F.UXzONOrRtqJUQC',
  'bob-old-pass': '$2a$10$zjrTOdNrN0wUsfwzKJ14he7lK4iMJI3oA6vrjVuPsFDNGSr7XfOcW',
  'carol-old-pass': '$2y$10$6YGwepGvpbIufKO5V88Er.tcCBqBVgzFs.Jz/SGPmSKygS2pmA1W2',
  'dave-old-pass': '$2b$10$5eiHOjk6I50ntlLAlYX2oeWpQ347r9HxWh54ZktR.0Ms7c9MUivxq',
};
// The old database's server clock: its `timestamp` columns hold local time in this zone.
const OLD_ZONE = 'America/New_York';

// ---------------------------------------------------------------------------------------------
// The old app, as it left its data

/** A fresh old-app world: TypeORM's tables in their own database, history lists under a fresh prefix. */
async function oldApp() {
  const db = await createTestDatabase();
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  await client.query(`ALTER DATABASE ${db.name} SET timezone TO '${OLD_ZONE}'`);
  await client.query(`
    CREATE TYPE users_status_enum AS ENUM ('online', 'offline');
    CREATE TABLE users (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      username character varying NOT NULL UNIQUE,
      password character varying NOT NULL,
      status users_status_enum NOT NULL DEFAULT 'offline',
      "createdAt" timestamp without time zone NOT NULL DEFAULT now()
    );
    CREATE TYPE chat_rooms_type_enum AS ENUM ('direct', 'group');
    CREATE TABLE chat_rooms (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      name character varying,
      type chat_rooms_type_enum NOT NULL DEFAULT 'direct',
      "createdAt" timestamp without time zone NOT NULL DEFAULT now()
    );
    CREATE TABLE messages (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      content text NOT NULL,
      "senderId" uuid REFERENCES users (id),
      "receiverId" uuid REFERENCES users (id),
      "roomId" uuid REFERENCES chat_rooms (id),
      "createdAt" timestamp without time zone NOT NULL DEFAULT now()
    );
  `);
  const prefix = `nexus_test_${randomBytes(6).toString('hex')}:chat:history:`;
  const app = {
    url: db.url,
    prefix,
    users: {},
    /** An account; `createdAt` is an ISO instant, stored as the old server's local time. */
    async user(username, password, createdAt) {
      const id = randomUUID();
      await client.query(
        `INSERT INTO users (id, username, password, status, "createdAt")
         VALUES ($1, $2, $3, 'offline', ($4::timestamptz AT TIME ZONE '${OLD_ZONE}'))`,
        [id, username, PASSWORDS[password], createdAt],
      );
      app.users[username] = { id, username, password, createdAt };
      return app.users[username];
    },
    async room(type) {
      const { rows } = await client.query('INSERT INTO chat_rooms (name, type) VALUES ($1, $2) RETURNING id', [`${type} room`, type]);
      return rows[0].id;
    },
    /** A `messages` row (`createdAt` with microseconds, as PostgreSQL's now() wrote them). */
    async row({ from, to = null, room = null, content, createdAt }) {
      await client.query(
        `INSERT INTO messages (content, "senderId", "receiverId", "roomId", "createdAt")
         VALUES ($1, $2, $3, $4, ($5::timestamptz AT TIME ZONE '${OLD_ZONE}'))`,
        [content, from.id, to?.id ?? null, room, createdAt],
      );
    },
    /**
     * Appends entries (oldest first) to the list `chat:history:<first>:<second>` the way the old app
     * did: LPUSH, so the list is newest first; `raw` strings are pushed as they are.
     */
    async history(first, second, entries) {
      const key = `${prefix}${first.id}:${second.id}`;
      for (const e of entries) {
        const value = typeof e === 'string' ? e : JSON.stringify({
          id: String(e.oldId ?? Date.parse(e.createdAt)),
          content: e.content,
          senderId: e.from.id,
          receiverId: e.to.id,
          createdAt: e.createdAt,
        });
        await redisCommand('LPUSH', key, value);
      }
    },
    async cleanup() {
      await client.end().catch(() => {});
      await dropTestDatabase(db.name).catch(() => {});
      await deleteRedisKeys(prefix).catch(() => {});
    },
  };
  return app;
}

const at = (minute, ms = 0) => new Date(Date.UTC(2024, 4, 1, 9, minute, 0, ms)).toISOString();

/**
 * The usual data: four people (one whose name our rules refuse), the alice–bob history split over
 * both directions' lists with copies, a burst sharing one Date.now() id, a message sent twice,
 * rows in the table (one also in Redis), group rows, a stranger and an unreadable entry.
 * Returns what alice's histories must show afterwards.
 */
async function fillOldApp(app) {
  const alice = await app.user('alice', 'secret123', '2023-11-02T08:15:30.123Z');
  const bob = await app.user('bob', 'bob-old-pass', '2023-11-03T10:00:00.000Z');
  const carol = await app.user('carol', 'carol-old-pass', '2023-12-24T23:30:00.500Z');
  const dave = await app.user('dave smith', 'dave-old-pass', '2024-01-05T12:00:00.000Z');
  const stranger = { id: randomUUID() };

  const m = (from, to, content, createdAt, oldId) => ({ from, to, content, createdAt, oldId });
  const burstId = Date.parse(at(3));
  const aliceBob = [
    m(alice, bob, 'hello bob', at(1)),
    m(bob, alice, 'hi alice', at(2)),
    m(alice, bob, 'burst 1', at(3), burstId),
    m(alice, bob, 'burst 2', at(3), burstId),
    m(alice, bob, 'burst 3', at(3), burstId),
    m(bob, alice, 'ok', at(4, 7)),
    m(bob, alice, 'ok', at(4, 7)),
    m(alice, bob, 'unicode ✓ 😀 "quotes"\nnew line', at(5)),
  ];
  // The key's ids are not sorted: bob's list of the pair, then alice's with some of the same messages.
  await app.history(bob, alice, [...aliceBob.slice(0, 6), 'not json at all', ...aliceBob.slice(6)]);
  await app.history(alice, bob, [aliceBob[0], aliceBob[1], aliceBob[7]]);
  await app.history(carol, alice, [m(carol, alice, 'carol here', at(10))]);
  await app.history(dave, alice, [m(dave, alice, 'dave with a space', at(11)), m(alice, dave, 'hi dave', at(12))]);
  await app.history(alice, stranger, [m(alice, stranger, 'to nobody we know', at(13))]);

  // The table: one row Redis has too (microseconds here, milliseconds there), one only here, and
  // rows that are not direct messages.
  await app.row({ from: carol, to: alice, content: 'carol here', createdAt: '2024-05-01T09:10:00.000417Z' });
  await app.row({ from: alice, to: carol, content: 'only in the table', createdAt: at(14, 250) });
  const group = await app.room('group');
  const direct = await app.room('direct');
  await app.row({ from: alice, room: group, content: 'to the group', createdAt: at(15) });
  await app.row({ from: bob, room: direct, to: alice, content: 'in a direct room', createdAt: at(16) });
  await app.row({ from: bob, content: 'to no one', createdAt: at(17) });

  const view = (list) => list.map((x) => ({ content: x.content, senderId: x.from.id, createdAt: x.createdAt }));
  return {
    alice, bob, carol, dave, stranger,
    withBob: view([...aliceBob, m(bob, alice, 'in a direct room', at(16))]),
    withCarol: view([m(carol, alice, 'carol here', at(10)), m(alice, carol, 'only in the table', at(14, 250))]),
    withDave: view([m(dave, alice, 'dave with a space', at(11)), m(alice, dave, 'hi dave', at(12))]),
    // 9 alice–bob (8 + the direct-room row), 2 with carol, 2 with dave.
    messages: 13,
    accounts: 4,
  };
}

// ---------------------------------------------------------------------------------------------
// The target and the importer

/** A fresh target: a SQLite folder, or a PostgreSQL database; never migrated before the import. */
async function newTarget(mode) {
  if (mode === 'sqlite') {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'nexus-import-'));
    return {
      mode,
      dataDir,
      env: { DATA_DIR: dataDir },
      start: (env = {}) => startServer({ mode, dataDir, env }),
      cleanup: () => rm(dataDir, { recursive: true, force: true }),
    };
  }
  const db = await createTestDatabase();
  // The embedded default must not be picked by accident: DATA_DIR points at an empty folder.
  const dataDir = await mkdtemp(path.join(tmpdir(), 'nexus-import-'));
  return {
    mode,
    db,
    dataDir,
    env: { DATABASE_URL: db.url, DATA_DIR: dataDir },
    start: (env = {}) => startServer({ mode, databaseUrl: db.url, env }),
    cleanup: async () => {
      await dropTestDatabase(db.name);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs `nexus-chat import-nest ...args` against `target`; resolves `{code, stdout, stderr}`. */
function runImport(target, args, env = {}) {
  const childEnv = { ...process.env };
  for (const k of [...SCRUBBED_ENV, 'DB_HOST', 'DB_NAME', 'DB_DATABASE', 'REDIS_HOST']) delete childEnv[k];
  Object.assign(childEnv, { RUST_LOG: 'warn' }, target.env, env);
  return new Promise((resolve, reject) => {
    const proc = spawn(NEXUS_BIN, ['import-nest', ...args], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => proc.kill('SIGKILL'), 120_000);
    proc.on('error', reject);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const sourceArgs = (app) => [
  '--source-database-url', app.url,
  '--source-redis-url', REDIS_URL,
  '--source-redis-key-prefix', app.prefix,
];

function assertSucceeded(run, what = 'import') {
  assert.equal(run.code, 0, `${what} exits 0; stdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
}

/** The `Done:` line's numbers. */
function done(run) {
  const m = /^Done: imported (\d+) account\(s\) and (\d+) message\(s\)/m.exec(run.stdout);
  assert.ok(m, `a Done line in:\n${run.stdout}\n${run.stderr}`);
  return { accounts: Number(m[1]), messages: Number(m[2]) };
}

/** The plan's message line: `N to import, N already imported, N left out (...), N left out (...)`. */
function messageLine(run) {
  const m = /^ {2}(\d+) to import, (\d+) already imported, (\d+) left out \(sender or receiver not imported\), (\d+) left out \(sent to themselves\)/m.exec(run.stdout);
  assert.ok(m, `a message line in:\n${run.stdout}`);
  return { toImport: Number(m[1]), already: Number(m[2]), withoutPeople: Number(m[3]), toThemselves: Number(m[4]) };
}

function accountLine(run) {
  const m = /^ {2}(\d+) in the old app: (\d+) to import, (\d+) already imported, (\d+) left out \(username taken\), (\d+) left out \(username refused\)/m.exec(run.stdout);
  assert.ok(m, `an account line in:\n${run.stdout}`);
  return { found: Number(m[1]), toImport: Number(m[2]), already: Number(m[3]), taken: Number(m[4]), refused: Number(m[5]) };
}

async function signIn(url, username, password) {
  const res = await login(url, username, password);
  assert.equal(res.status, 201, `${username} signs in with the old password: ${res.text}`);
  return { token: res.body.access_token, user: res.body.user };
}

/** Alice's view of her conversation with `peer`, through a real socket.io client. */
async function historyOf(url, token, peerId) {
  const socket = await connect(url, token);
  try {
    const page = await emitAck(socket, 'message:history', { receiverId: peerId, limit: 100 });
    assert.ok(Array.isArray(page), `history is a list: ${JSON.stringify(page)}`);
    page.forEach((msg) => assertMessage(msg));
    return page;
  } finally {
    socket.close();
  }
}

const shown = (page) => page.map(({ content, senderId, createdAt }) => ({ content, senderId, createdAt }));

/** Builds a test world (old app + target), runs `body`, and always removes both. */
function withWorld(mode, body) {
  return async () => {
    const app = await oldApp();
    const target = await newTarget(mode);
    const servers = [];
    const start = async (env) => {
      const server = await target.start(env);
      servers.push(server);
      return server;
    };
    try {
      await body({ app, target, start });
    } finally {
      for (const s of servers) await s.stop();
      await app.cleanup();
      await target.cleanup();
    }
  };
}

// ---------------------------------------------------------------------------------------------

forEachMode((mode) => {
  test('imported users sign in with their old passwords and see their history in order', withWorld(mode, async ({ app, target, start }) => {
    const expected = await fillOldApp(app);
    const run = await runImport(target, sourceArgs(app));
    assertSucceeded(run);
    assert.deepEqual(done(run), { accounts: expected.accounts, messages: expected.messages });
    assert.match(run.stdout, /"dave smith" \([0-9a-f-]+\): refused by our rules .*: imported as "dave_smith"/);
    assert.match(run.stdout, /1 × it is not JSON: Redis list /, 'the unreadable entry is reported');
    assert.match(run.stdout, /1 left out \(sender or receiver not imported\)/);
    assert.match(run.stdout, new RegExp(`${expected.stranger.id} \\(no such account in the old database or the target\\): 1 message`));
    assert.match(run.stdout, /Groups \(not imported[^)]*\): 1 group room, 1 message in them, 1 message without a receiver/);
    // Not a terminal: no progress bar, no escape codes.
    assert.doesNotMatch(run.stderr, /\r|\x1b\[/, `no progress bar on a pipe: ${JSON.stringify(run.stderr)}`);

    const server = await start();
    const alice = await signIn(server.url, 'alice', 'secret123');
    assert.equal(alice.user.id, expected.alice.id, 'the old id is kept');
    const me = await http(`${server.url}/api/me`, { token: alice.token });
    assert.equal(me.body.createdAt, expected.alice.createdAt, 'the old creation time is kept (read in the old server\'s zone)');
    await signIn(server.url, 'BOB', 'bob-old-pass');
    await signIn(server.url, 'carol', 'carol-old-pass');
    const dave = await signIn(server.url, 'dave_smith', 'dave-old-pass');
    assert.equal(dave.user.id, expected.dave.id);
    assert.equal((await login(server.url, 'alice', 'wrong-password')).status, 401);

    const withBob = await historyOf(server.url, alice.token, expected.bob.id);
    assert.deepEqual(shown(withBob), expected.withBob, 'alice–bob: every message once, bursts and repeats kept, in order');
    assert.equal(new Set(withBob.map((m) => m.id)).size, withBob.length, 'new ids are distinct');
    assert.ok(withBob.every((m) => !/^\d+$/.test(m.id)), 'no old Date.now() id survives');
    assert.deepEqual(shown(await historyOf(server.url, alice.token, expected.carol.id)), expected.withCarol);
    assert.deepEqual(shown(await historyOf(server.url, dave.token, expected.alice.id)), expected.withDave);

    const list = await http(`${server.url}/api/conversations`, { token: alice.token });
    assert.equal(list.status, 200);
    assert.equal(list.body.length, 3, `alice has three conversations: ${list.text}`);
  }));

  test('a dry run prints the plan and writes nothing; the real run then does what it said', withWorld(mode, async ({ app, target, start }) => {
    const expected = await fillOldApp(app);
    const dry = await runImport(target, [...sourceArgs(app), '--dry-run']);
    assertSucceeded(dry, 'the dry run');
    assert.match(dry.stdout, new RegExp(`Dry run: nothing was written\\. Without --dry-run this imports ${expected.accounts} account\\(s\\) and ${expected.messages} message\\(s\\)\\.`));
    assert.deepEqual(messageLine(dry), { toImport: expected.messages, already: 0, withoutPeople: 1, toThemselves: 0 });
    if (mode === 'sqlite') {
      assert.deepEqual(await readdir(target.dataDir), [], 'no database file is created');
    } else {
      const client = new pg.Client({ connectionString: target.db.url });
      await client.connect();
      const { rows } = await client.query("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public'");
      await client.end();
      assert.equal(rows[0].n, 0, 'no table is created');
    }

    const server = await start();
    assert.equal((await login(server.url, 'alice', 'secret123')).status, 401, 'nobody was imported');
    const real = await runImport(target, sourceArgs(app));
    assertSucceeded(real);
    assert.deepEqual(done(real), { accounts: expected.accounts, messages: expected.messages });
    await signIn(server.url, 'alice', 'secret123');
  }));

  test('running it again imports nothing twice, and picks up what arrived since', withWorld(mode, async ({ app, target, start }) => {
    const expected = await fillOldApp(app);
    assertSucceeded(await runImport(target, sourceArgs(app)));
    const again = await runImport(target, sourceArgs(app));
    assertSucceeded(again, 'the second run');
    assert.deepEqual(done(again), { accounts: 0, messages: 0 });
    assert.deepEqual(accountLine(again), { found: 4, toImport: 0, already: 4, taken: 0, refused: 0 });
    assert.equal(messageLine(again).already, expected.messages);

    // The old app kept running until the cut-over: one more message arrived.
    await app.history(expected.bob, expected.alice, [{ from: expected.bob, to: expected.alice, content: 'one more', createdAt: at(30) }]);
    const last = await runImport(target, sourceArgs(app));
    assert.deepEqual(done(last), { accounts: 0, messages: 1 });

    const server = await start();
    const alice = await signIn(server.url, 'alice', 'secret123');
    const withBob = await historyOf(server.url, alice.token, expected.bob.id);
    assert.deepEqual(shown(withBob), [...expected.withBob, { content: 'one more', senderId: expected.bob.id, createdAt: at(30) }]);
  }));

  test('sources can be imported one at a time, and at least one is required', withWorld(mode, async ({ app, target, start }) => {
    const expected = await fillOldApp(app);
    const none = await runImport(target, []);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /--source-database-url/);

    const pgOnly = await runImport(target, ['--source-database-url', app.url]);
    assertSucceeded(pgOnly, 'PostgreSQL alone');
    // The table's direct messages: carol's two rows and the direct-room row.
    assert.deepEqual(done(pgOnly), { accounts: 4, messages: 3 });
    const redisOnly = await runImport(target, ['--source-redis-url', REDIS_URL, '--source-redis-key-prefix', app.prefix]);
    assertSucceeded(redisOnly, 'Redis alone');
    assert.match(redisOnly.stdout, /PostgreSQL: not given/);
    // Everything else; "carol here" is in both and stays one message.
    assert.deepEqual(done(redisOnly), { accounts: 0, messages: expected.messages - 3 });

    const server = await start();
    const alice = await signIn(server.url, 'alice', 'secret123');
    assert.deepEqual(shown(await historyOf(server.url, alice.token, expected.carol.id)), expected.withCarol);
  }));

  // Usernames that differ only in case: an older and a newer account of the old app, and an old
  // account whose name a user of the target already registered.
  async function collisionWorld(app, start) {
    const bob = await app.user('bob', 'bob-old-pass', '2023-01-01T00:00:00.000Z');
    const older = await app.user('Erin', 'alice-old-pass', '2023-02-01T00:00:00.000Z');
    const newer = await app.user('erin', 'carol-old-pass', '2023-03-01T00:00:00.000Z');
    const frank = await app.user('frank', 'dave-old-pass', '2023-04-01T00:00:00.000Z');
    await app.history(bob, older, [{ from: older, to: bob, content: 'from the older Erin', createdAt: at(1) }]);
    await app.history(newer, bob, [{ from: newer, to: bob, content: 'from the newer erin', createdAt: at(2) }]);
    await app.history(frank, bob, [{ from: frank, to: bob, content: 'from old frank', createdAt: at(3) }]);
    const server = await start();
    const reg = await register(server.url, 'FRANK', 'new-frank-pass');
    assert.equal(reg.status, 201);
    return { server, bob, older, newer, frank, targetFrank: reg.body };
  }

  test('--on-conflict fail (the default) lists every collision and imports nothing', withWorld(mode, async ({ app, target, start }) => {
    const w = await collisionWorld(app, start);
    const run = await runImport(target, sourceArgs(app));
    assert.notEqual(run.code, 0, 'the import fails');
    assert.match(run.stdout, new RegExp(`"erin" \\(${w.newer.id}\\): taken by "Erin" \\(${w.older.id}, an older account of the old app\\): the import fails`));
    assert.match(run.stdout, new RegExp(`"frank" \\(${w.frank.id}\\): taken by "FRANK" \\(${w.targetFrank.id}, already in the target\\): the import fails`));
    assert.match(run.stderr, /nothing was imported: 2 username\(s\).*--on-conflict skip or suffix/);
    assert.equal((await login(w.server.url, 'bob', 'bob-old-pass')).status, 401, 'not even the accounts without a conflict');
    const dry = await runImport(target, [...sourceArgs(app), '--dry-run']);
    assert.notEqual(dry.code, 0, 'a dry run says the same');
  }));

  test('--on-conflict skip leaves the later account out and counts its messages', withWorld(mode, async ({ app, target, start }) => {
    const w = await collisionWorld(app, start);
    const run = await runImport(target, [...sourceArgs(app), '--on-conflict', 'skip']);
    assertSucceeded(run);
    assert.deepEqual(accountLine(run), { found: 4, toImport: 2, already: 0, taken: 2, refused: 0 });
    assert.match(run.stdout, /"erin" \([0-9a-f-]+\): taken by "Erin" .*: left out \(--on-conflict skip\)/);
    assert.equal(messageLine(run).withoutPeople, 2);
    assert.match(run.stdout, new RegExp(`"erin" ${w.newer.id} \\(username taken\\): 1 message`));
    assert.deepEqual(done(run), { accounts: 2, messages: 1 });

    await signIn(w.server.url, 'erin', 'alice-old-pass'); // the older Erin, any case
    assert.equal((await login(w.server.url, 'erin', 'carol-old-pass')).status, 401, 'the newer erin is not imported');
    await signIn(w.server.url, 'frank', 'new-frank-pass'); // the target's FRANK is untouched
    const bob = await signIn(w.server.url, 'bob', 'bob-old-pass');
    assert.deepEqual((await historyOf(w.server.url, bob.token, w.older.id)).map((m) => m.content), ['from the older Erin']);
  }));

  test('--on-conflict suffix imports the later account as name_2 with its history', withWorld(mode, async ({ app, target, start }) => {
    const w = await collisionWorld(app, start);
    const run = await runImport(target, [...sourceArgs(app), '--on-conflict', 'suffix']);
    assertSucceeded(run);
    assert.match(run.stdout, /"erin" \([0-9a-f-]+\): taken by "Erin" .*: imported as "erin_2" \(--on-conflict suffix\)/);
    assert.match(run.stdout, /"frank" \([0-9a-f-]+\): taken by "FRANK" .*: imported as "frank_2" \(--on-conflict suffix\)/);
    assert.deepEqual(done(run), { accounts: 4, messages: 3 });

    const erin2 = await signIn(w.server.url, 'erin_2', 'carol-old-pass');
    assert.equal(erin2.user.id, w.newer.id);
    assert.deepEqual((await historyOf(w.server.url, erin2.token, w.bob.id)).map((m) => m.content), ['from the newer erin']);
    const frank2 = await signIn(w.server.url, 'frank_2', 'dave-old-pass');
    assert.deepEqual((await historyOf(w.server.url, frank2.token, w.bob.id)).map((m) => m.content), ['from old frank']);
    await signIn(w.server.url, 'FRANK', 'new-frank-pass');

    const again = await runImport(target, [...sourceArgs(app), '--on-conflict', 'suffix']);
    assert.deepEqual(done(again), { accounts: 0, messages: 0 }, 'renamed accounts are recognised by id on a re-run');
  }));
});

test('with REDIS_URL set, the import drops the history cache of the conversations it adds to', async () => {
  const app = await oldApp();
  const target = await newTarget('postgres');
  const redisPrefix = `nexus_test_${randomBytes(6).toString('hex')}`;
  const cluster = { REDIS_URL, REDIS_PREFIX: redisPrefix, JWT_SECRET: randomBytes(24).toString('hex') };
  let server;
  try {
    const expected = await fillOldApp(app);
    assertSucceeded(await runImport(target, sourceArgs(app), cluster));
    server = await target.start(cluster);
    const alice = await signIn(server.url, 'alice', 'secret123');
    // Reading the history fills the Redis cache, which then claims to hold the conversation.
    assert.equal((await historyOf(server.url, alice.token, expected.bob.id)).length, expected.withBob.length);

    await app.history(expected.bob, expected.alice, [{ from: expected.bob, to: expected.alice, content: 'late', createdAt: at(40) }]);
    const last = await runImport(target, sourceArgs(app), cluster);
    assertSucceeded(last);
    assert.match(last.stdout, /Dropped the Redis history cache of 3 conversation\(s\)\./);
    const page = await historyOf(server.url, alice.token, expected.bob.id);
    assert.equal(page.at(-1).content, 'late', 'the running server shows the message imported behind its cache');
  } finally {
    await server?.stop();
    await deleteDeploymentKeys(redisPrefix);
    await app.cleanup();
    await target.cleanup();
  }
});

test('the help says everything an operator needs', async () => {
  const run = await runImport({ env: {} }, ['--help']);
  assert.equal(run.code, 0);
  for (const needle of ['--source-database-url', '--source-redis-url', '--dry-run', '--on-conflict', 'suffix', '--on-invalid-username', 'DATABASE_URL', 'DATA_DIR', 'nothing twice', 'createdAt']) {
    assert.ok(run.stdout.includes(needle), `--help mentions ${needle}`);
  }
  assert.ok(existsSync(NEXUS_BIN));
});

const SCRIPT = ['/usr/bin/script', '/bin/script'].find((p) => existsSync(p));

test('on a terminal it draws a progress bar while it writes', { skip: !SCRIPT && 'script(1) is needed for a terminal' }, async () => {
  const app = await oldApp();
  const target = await newTarget('sqlite');
  try {
    await fillOldApp(app);
    const childEnv = { ...process.env, ...target.env, RUST_LOG: 'warn' };
    for (const k of ['DATABASE_URL', 'DB_HOST', 'REDIS_URL', 'REDIS_HOST']) delete childEnv[k];
    const command = [NEXUS_BIN, 'import-nest', ...sourceArgs(app)].map((a) => `'${a}'`).join(' ');
    // script(1) runs the importer on a pseudo-terminal and copies what it draws to stdout.
    const run = await new Promise((resolve, reject) => {
      const proc = spawn(SCRIPT, ['-qec', command, '/dev/null'], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      proc.stdout.on('data', (d) => { out += d; });
      const timer = setTimeout(() => proc.kill('SIGKILL'), 120_000);
      proc.on('error', reject);
      proc.on('exit', (code) => { clearTimeout(timer); resolve({ code, out }); });
    });
    assert.equal(run.code, 0, run.out);
    assert.match(run.out, /importing \[[=> ]+\] \d+\/17 /, 'the bar counts accounts and messages (4 + 13)');
    assert.match(run.out, /Done: imported 4 account\(s\) and 13 message\(s\)/);
  } finally {
    await app.cleanup();
    await target.cleanup();
  }
});
