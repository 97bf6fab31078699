// Issue 13, cases 1, 2 and 7: MAX_PAYLOAD_BYTES holds on WebSocket frames, content is bounded before
// trimming as well as after, and every HTTP error (unknown routes, bad query strings and URLs,
// names no file can have) is the NestJS JSON body. Each test here failed on the code before.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { assertErrorAck, assertNestError, createRoom, roomSend, send } from '../lib/expect.mjs';
import { emitAck, forEachMode, http, processStats, randomName, recordEvents, sleep, withServer } from '../lib/harness.mjs';
import { rawConnect } from '../lib/rawsocket.mjs';

const MAX_PAYLOAD = 1_000_000;
// Large enough that a 1 MB frame of spaces and one letter is valid content, so only the frame limit
// can refuse it.
const ROOMY_CONTENT = { MAX_MESSAGE_CHARS: '250000', MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD) };

/** A `message:send` frame with ack id `ackId` of exactly `bytes` bytes: spaces, then "x". */
function sendFrameOf(bytes, receiverId, ackId) {
  const frame = (content) => `42${ackId}${JSON.stringify(['message:send', { receiverId, content }])}`;
  const overhead = Buffer.byteLength(frame('x'));
  const text = frame(`${' '.repeat(bytes - overhead)}x`);
  assert.equal(Buffer.byteLength(text), bytes);
  return text;
}

forEachMode((mode) => {
  test('WebSocket frames over MAX_PAYLOAD_BYTES (1.1, 2 and 8 MB) are refused: no ack, nothing stored or delivered, the server stays healthy; just under the limit works', withServer({ mode, env: ROOMY_CONTENT }, async (w, t) => {
    const before = await processStats(w.server);
    const alice = await w.user(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const bobInbox = recordEvents(bob.socket, 'message:new');

    let ackId = 1;
    for (const bytes of [1_100_000, 2_000_000, 8_000_000]) {
      const raw = await rawConnect(w.url, alice.token);
      const id = ackId++;
      raw.sendRaw(sendFrameOf(bytes, bob.user.id, id));
      const ack = await raw.ack(id);
      assert.equal(ack, undefined, `a ${bytes}-byte frame is not acked: ${JSON.stringify(ack)?.slice(0, 200)}`);
      assert.ok(raw.isClosed, `the connection that sent a ${bytes}-byte frame is closed`);
      assert.equal((await http(`${w.url}/health`)).status, 200, `healthy after a ${bytes}-byte frame`);
    }
    const history = await emitAck(bob.socket, 'message:history', { receiverId: alice.user.id }, 20_000);
    assert.deepEqual(history, [], 'nothing was stored');
    assert.deepEqual(bobInbox, [], 'nothing was delivered');
    const after8 = await processStats(w.server);
    t.diagnostic(`RSS ${(before.rssBytes / 2 ** 20).toFixed(1)} MiB before, ${(after8.rssBytes / 2 ** 20).toFixed(1)} MiB after the 1.1/2/8 MB frames`);

    // Just under the limit: stored and acked, and the connection stays open.
    const raw = await rawConnect(w.url, alice.token);
    const id = ackId++;
    raw.sendRaw(sendFrameOf(MAX_PAYLOAD - 16, bob.user.id, id));
    const ack = await raw.ack(id);
    assert.equal(ack?.error, undefined, `a frame just under the limit is acked as stored: ${JSON.stringify(ack?.error)}`);
    assert.equal(ack.senderId, alice.user.id);
    assert.ok(!raw.isClosed, 'the connection stays open');
    const after = await emitAck(bob.socket, 'message:history', { receiverId: alice.user.id }, 20_000);
    assert.deepEqual(after.map((m) => m.id), [ack.id]);
    raw.close();
  }));

  test('content is at most 4 x MAX_MESSAGE_CHARS before trimming: 900,000 spaces and "x" acks content_too_long and stores nothing, direct and in a room', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.online(randomName('bob'));
    const padded = `${' '.repeat(900_000)}x`;

    const ack = await emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: padded });
    assertErrorAck(ack, 'content_too_long');
    assert.deepEqual(await emitAck(alice.socket, 'message:history', { receiverId: bob.user.id }), []);
    const page = await http(`${w.url}/api/conversations/${bob.user.id}/messages`, { token: alice.token });
    assert.equal(page.status, 200);
    assert.deepEqual(page.body.messages, []);

    const room = await createRoom(alice.socket, 'padded', [bob.user.id]);
    const roomAck = await emitAck(alice.socket, 'room:send', { roomId: room.id, content: padded });
    assertErrorAck(roomAck, 'content_too_long');
    assert.deepEqual(await emitAck(alice.socket, 'room:history', { roomId: room.id }), []);

    // The edges at the default MAX_MESSAGE_CHARS (10,000): 40,000 characters before trimming are
    // fine, one more is not, even though a single character is left after trimming.
    const edge = `${' '.repeat(39_999)}x`;
    const stored = await send(alice.socket, bob.user.id, edge);
    assert.equal(stored.content, edge, 'stored as sent');
    assertErrorAck(await emitAck(alice.socket, 'message:send', { receiverId: bob.user.id, content: ` ${edge}` }), 'content_too_long');
    await roomSend(alice.socket, room.id, edge);
    assertErrorAck(await emitAck(alice.socket, 'room:send', { roomId: room.id, content: ` ${edge}` }), 'content_too_long');
    // Characters, not bytes: 10,000 two-byte characters padded to 40,000 characters (50,000 bytes).
    await send(alice.socket, bob.user.id, `${' '.repeat(15_000)}${'é'.repeat(10_000)}${' '.repeat(15_000)}`);
    assert.equal((await emitAck(alice.socket, 'message:history', { receiverId: bob.user.id })).length, 2);
  }));
});

// ---------------------------------------------------------------------------------------------
// HTTP error bodies

/** A web client folder with an index page and one hashed asset. */
async function webDir() {
  const dir = await mkdtemp(path.join(tmpdir(), 'nexus-web-'));
  await mkdir(path.join(dir, 'assets'));
  await writeFile(path.join(dir, 'index.html'), '<!doctype html><title>Nexus Chat</title><div id="root"></div>');
  await writeFile(path.join(dir, 'assets', 'app-1234abcd.js'), 'console.log("nexus")');
  return dir;
}

forEachMode((mode) => {
  test('a repeated query parameter is a 400 NestJS body, not text/plain', withServer({ mode }, async (w) => {
    const alice = await w.online(randomName('alice'));
    const bob = await w.user(randomName('bob'));
    const direct = await http(`${w.url}/api/conversations/${bob.user.id}/messages?limit=1&limit=100`, { token: alice.token });
    assertNestError(direct, 400, undefined, 'Bad Request');
    assert.match(direct.headers.get('content-type'), /^application\/json/);
    assert.match(direct.body.message, /limit/);

    const room = await createRoom(alice.socket, 'q', [bob.user.id]);
    const inRoom = await http(`${w.url}/api/rooms/${room.id}/messages?limit=1&limit=100`, { token: alice.token });
    assertNestError(inRoom, 400, undefined, 'Bad Request');
    const users = await http(`${w.url}/api/users?q=a&q=b`, { token: alice.token });
    assertNestError(users, 400, undefined, 'Bad Request');
    // A valid query still works.
    const ok = await http(`${w.url}/api/conversations/${bob.user.id}/messages?limit=1`, { token: alice.token });
    assert.equal(ok.status, 200);
  }));

  test('a path parameter that is not UTF-8 (%C0%80) is a 400 NestJS body', withServer({ mode }, async (w) => {
    const alice = await w.user(randomName('alice'));
    for (const p of ['/api/conversations/%C0%80/messages', '/api/rooms/%C0%80', '/api/rooms/%C0%80/messages']) {
      const res = await http(`${w.url}${p}`, { token: alice.token });
      assertNestError(res, 400, undefined, 'Bad Request');
      assert.match(res.body.message, /Invalid URL/);
    }
    // Without a token the answer is still 401 first.
    assertNestError(await http(`${w.url}/api/conversations/%C0%80/messages`), 401);
  }));

  test('a path segment over 255 bytes under /assets/ is a 404 NestJS body, never a 500, and logs no ERROR; the web client is still served', async () => {
    const dir = await webDir();
    try {
      await withServer({ mode, env: { WEB_DIR: dir } }, async (w) => {
        for (const segment of ['a'.repeat(256), 'b'.repeat(300), `${'%41'.repeat(200)}`, 'c'.repeat(5000)]) {
          const res = await http(`${w.url}/assets/${segment}`);
          assertNestError(res, 404, undefined, 'Not Found');
          assert.match(res.body.message, /^Cannot GET \/assets\//);
          assert.ok(res.body.message.length < 300, 'the path is quoted short');
        }
        // Deeper, and at the root.
        assertNestError(await http(`${w.url}/assets/x/${'d'.repeat(400)}/y.js`), 404);
        assertNestError(await http(`${w.url}/${'e'.repeat(400)}`), 404);
        const asset = await http(`${w.url}/assets/app-1234abcd.js`);
        assert.equal(asset.status, 200);
        assert.equal(asset.text, 'console.log("nexus")');
        const spa = await http(`${w.url}/some/client/route`);
        assert.equal(spa.status, 200);
        assert.match(spa.text, /<div id="root">/);
        assert.equal((await http(`${w.url}/health`)).status, 200);
        await sleep(100);
        assert.doesNotMatch(w.server.log(), /ERROR/, 'no ERROR in the log');
      })({});
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('an unknown /api path answers a JSON 404, never index.html; a wrong method is a JSON 405', async () => {
    const dir = await webDir();
    try {
      await withServer({ mode, env: { WEB_DIR: dir } }, async (w) => {
        const alice = await w.user(randomName('alice'));
        for (const p of ['/api/nothing', '/api/conversations/x/y/z', '/api', '/api/']) {
          for (const token of [undefined, alice.token]) {
            const res = await http(`${w.url}${p}`, { token });
            assertNestError(res, 404, `Cannot GET ${p}`, 'Not Found');
            assert.doesNotMatch(res.text, /<div id="root">/);
          }
        }
        assertNestError(await http(`${w.url}/api/nothing`, { method: 'POST', body: {} }), 404, 'Cannot POST /api/nothing', 'Not Found');
        const wrongMethod = await http(`${w.url}/api/me`, { method: 'DELETE', token: alice.token });
        assertNestError(wrongMethod, 405, undefined, 'Method Not Allowed');
        assert.ok(wrongMethod.headers.get('allow'), 'Allow is kept');
        const getLogin = await http(`${w.url}/auth/login`);
        assertNestError(getLogin, 405, undefined, 'Method Not Allowed');
        // Known routes are untouched.
        assert.equal((await http(`${w.url}/api/me`, { token: alice.token })).status, 200);
      })({});
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('without a built web client, an unknown API path is still a JSON 404 and other paths say how to build the client', withServer({ mode, env: { WEB_DIR: '/nonexistent/nexus-web' } }, async (w) => {
    assertNestError(await http(`${w.url}/api/nothing`), 404, 'Cannot GET /api/nothing', 'Not Found');
    // Other paths are the single-page app's routes: the page that says how to get the client.
    for (const path of ['/', '/nothing/here']) {
      const res = await http(`${w.url}${path}`);
      assert.equal(res.status, 200, path);
      assert.match(res.text, /web client is not built/, path);
    }
  }));
});
