// Abuse at the front door: forged and invalid tokens (refused both at the Socket.io handshake and
// on the REST API), secrets never written to the logs, login throttling, and the cap on sockets
// per user.

import assert from 'node:assert/strict';
import { constants, createHmac, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { test } from 'node:test';
import {
  connectError, emitAck, eventually, forEachMode, http, login, randomName, randomUUID, recordEvents,
  register, signJwt, sleep, waitForEvent, withServer,
} from '../lib/harness.mjs';
import { assertNestError, send } from '../lib/expect.mjs';

const now = () => Math.floor(Date.now() / 1000);
const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** A JWT with any header, claims and signature (no checks: the point is to build bad ones). */
function rawJwt(header, claims, signer = () => '') {
  const signingInput = `${b64(header)}.${b64(claims)}`;
  return `${signingInput}.${signer(signingInput)}`;
}
const hs256 = (secret) => (input) => createHmac('sha256', secret).update(input).digest('base64url');

/** Claims of a valid token for `user`, with `extra` merged over them (undefined deletes). */
function claimsFor(user, extra = {}) {
  const c = { sub: user.id, username: user.username, iat: now(), exp: now() + 3600, ...extra };
  for (const [k, v] of Object.entries(c)) if (v === undefined) delete c[k];
  return c;
}

/** A token refused everywhere: connect_error "Unauthorized" over both transports, and 401 on REST. */
async function assertTokenRefused(url, token, what) {
  for (const transports of [['websocket'], ['polling']]) {
    const err = await connectError(url, token, { transports });
    assert.equal(err.message, 'Unauthorized', `${what}: connect_error over ${transports} was "${err.message}"`);
  }
  const res = await http(`${url}/api/me`, { token });
  assertNestError(res, 401, undefined, 'Unauthorized');
}

const THROTTLE = { LOGIN_FAILURES_BEFORE_BACKOFF: '5', LOGIN_IP_FAILURES_BEFORE_BACKOFF: '20' };

/** A 429 from the login throttle: NestJS body and an integer Retry-After ≥ 1; returns its seconds. */
function assertThrottled(res, what) {
  assert.equal(res.status, 429, `${what}: expected 429, got ${res.status} ${res.text}`);
  assertNestError(res, 429, undefined, 'Too Many Requests');
  const retryAfter = res.headers.get('retry-after');
  assert.match(retryAfter ?? '', /^\d+$/, `${what}: Retry-After is integer seconds: ${retryAfter}`);
  assert.ok(Number(retryAfter) >= 1, `${what}: Retry-After ≥ 1: ${retryAfter}`);
  return Number(retryAfter);
}

forEachMode((mode) => {
  test('forged, expired and malformed tokens are refused at the handshake and by the REST API', withServer({ mode }, async (w, t) => {
    const { user: alice, token: aliceToken } = await w.user(randomName('alice'));
    const { user: bob } = await w.user(randomName('bob'));
    const secret = w.server.jwtSecret;
    const HS = { alg: 'HS256', typ: 'JWT' };
    const [head, , sig] = aliceToken.split('.');

    const cases = {
      'alg none, no signature': rawJwt({ alg: 'none', typ: 'JWT' }, claimsFor(alice)),
      'alg "None", no signature': rawJwt({ alg: 'None', typ: 'JWT' }, claimsFor(alice)),
      'alg none with a valid HS256 signature attached': rawJwt({ alg: 'none', typ: 'JWT' }, claimsFor(alice), hs256(secret)),
      'alg HS512 signed with the secret': rawJwt({ alg: 'HS512', typ: 'JWT' }, claimsFor(alice),
        (i) => createHmac('sha512', secret).update(i).digest('base64url')),
      'wrong secret': signJwt(claimsFor(alice), `${secret}x`),
      'empty secret': signJwt(claimsFor(alice), ''),
      expired: signJwt(claimsFor(alice, { iat: now() - 7200, exp: now() - 60 }), secret),
      'not yet valid (nbf in an hour)': signJwt(claimsFor(alice, { nbf: now() + 3600 }), secret),
      'no exp': signJwt(claimsFor(alice, { exp: undefined }), secret),
      'no sub': signJwt(claimsFor(alice, { sub: undefined }), secret),
      'sub of an unknown user': signJwt(claimsFor(alice, { sub: randomUUID() }), secret),
      'sub not a UUID': signJwt(claimsFor(alice, { sub: 'not-a-uuid' }), secret),
      'sub a number': signJwt(claimsFor(alice, { sub: 12345 }), secret),
      'sub the username': signJwt(claimsFor(alice, { sub: alice.username }), secret),
      'tampered payload (bob\'s sub, alice\'s signature)': `${head}.${b64(claimsFor(bob))}.${sig}`,
      'signature stripped': `${head}.${aliceToken.split('.')[1]}.`,
      'signature of another token': `${head}.${b64(claimsFor(alice, { exp: now() + 999_999 }))}.${sig}`,
      'header is not JSON': `${b64('not json')}.${aliceToken.split('.')[1]}.${sig}`,
      'four segments': `${aliceToken}.${sig}`,
      'huge token (64 KiB)': signJwt(claimsFor(alice, { pad: 'x'.repeat(64 * 1024) }), `${secret}x`),
    };
    for (const [what, token] of Object.entries(cases)) {
      await t.test(what, () => assertTokenRefused(w.url, token, what));
    }
    // Sanity: the same construction with the right inputs is accepted, so the cases above fail
    // for the reason they name.
    const good = rawJwt(HS, claimsFor(alice), hs256(secret));
    assert.equal((await http(`${w.url}/api/me`, { token: good })).status, 200);
    (await w.connect(good)).close();
  }));

  test('HS/RS confusion: an RS256 token whose public key PEM is the HS256 secret is refused', async (t) => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' });
    await withServer({ mode, env: { JWT_SECRET: pem } }, async (w) => {
      const { user } = await w.user(randomName('alice'));
      const rs256 = rawJwt({ alg: 'RS256', typ: 'JWT' }, claimsFor(user),
        (i) => sign('sha256', Buffer.from(i), privateKey).toString('base64url'));
      await assertTokenRefused(w.url, rs256, 'RS256 signed with the private key of the PEM secret');
      const ps256 = rawJwt({ alg: 'PS256', typ: 'JWT' }, claimsFor(user),
        (i) => sign('sha256', Buffer.from(i), { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING }).toString('base64url'));
      await assertTokenRefused(w.url, ps256, 'PS256 signed with the private key of the PEM secret');
      // Control: HS256 with the PEM as the shared secret is simply the server's own kind of token.
      const hs = rawJwt({ alg: 'HS256', typ: 'JWT' }, claimsFor(user), hs256(pem));
      assert.equal((await http(`${w.url}/api/me`, { token: hs })).status, 200, 'the PEM works as an HS256 secret');
    })(t);
  });

  test('a v5 client\'s token in the query string is ignored: refused', withServer({ mode }, async (w) => {
    const { token } = await w.user(randomName('alice'));
    for (const transports of [['websocket'], ['polling'], ['polling', 'websocket']]) {
      const err = await connectError(w.url, null, { query: { token }, transports });
      assert.equal(err.message, 'Unauthorized', `query token over ${transports}: ${err.message}`);
    }
    assertNestError(await http(`${w.url}/api/me?token=${token}`), 401, undefined, 'Unauthorized');
    assertNestError(await http(`${w.url}/api/me?access_token=${token}`), 401, undefined, 'Unauthorized');
  }));

  test('no secret, token or password ever appears in the debug log', withServer({ mode, env: { RUST_LOG: 'debug' } }, async (w) => {
    const secrets = new Map([['JWT_SECRET', w.server.jwtSecret]]);
    const pw = (label) => {
      const p = `pw-${label}-${randomBytes(8).toString('hex')}`;
      secrets.set(`password ${label}`, p);
      return p;
    };
    const aliceName = randomName('alice');
    const bobName = randomName('bob');
    assert.equal((await register(w.url, aliceName, pw('alice'))).status, 201);
    assert.equal((await register(w.url, bobName, pw('bob'))).status, 201);
    assert.equal((await register(w.url, randomName('long'), `${pw('too-long')}${'y'.repeat(80)}`)).status, 400);
    assert.equal((await register(w.url, aliceName, pw('duplicate'))).status, 409);
    const a = await login(w.url, aliceName, secrets.get('password alice'));
    const b = await login(w.url, bobName, secrets.get('password bob'));
    assert.equal(a.status, 201);
    assert.equal(b.status, 201);
    const tokens = { alice: a.body.access_token, bob: b.body.access_token };
    for (const [who, tok] of Object.entries(tokens)) {
      secrets.set(`token of ${who}`, tok);
      secrets.set(`signature of ${who}'s token`, tok.split('.')[2]);
    }
    assert.equal((await login(w.url, aliceName, pw('wrong'))).status, 401);
    assert.equal((await login(w.url, randomName('nobody'), pw('unknown-user'))).status, 401);
    assert.equal((await login(w.url, aliceName.toUpperCase(), pw('wrong-upper'))).status, 401);

    // REST with the token, and with a broken one.
    assert.equal((await http(`${w.url}/api/me`, { token: tokens.alice })).status, 200);
    assert.equal((await http(`${w.url}/api/me`, { token: `${tokens.bob}x` })).status, 401);
    // Sockets: v5 auth over websocket and polling, the Authorization header, a v2 client with the
    // token in the query (websocket and polling), a v5 client trying the query, and refusals.
    const alice = await w.connect(tokens.alice);
    const alicePolling = await w.connect(tokens.alice, { transports: ['polling'] });
    const bobHeader = await w.connect(null, { transports: ['polling', 'websocket'], extraHeaders: { Authorization: `Bearer ${tokens.bob}` } });
    const bobV2 = await w.connectV2({ query: { token: tokens.bob } });
    const bobV2Polling = await w.connectV2({ query: { token: tokens.bob }, transports: ['polling'] });
    await connectError(w.url, null, { query: { token: tokens.alice } });
    await connectError(w.url, `${tokens.alice}x`);
    const forged = signJwt({ sub: randomUUID(), exp: now() + 60 }, pw('forging-secret'));
    secrets.set('forged token', forged);
    await connectError(w.url, forged);
    const bobUser = (await http(`${w.url}/api/me`, { token: tokens.bob })).body;
    await send(alice, bobUser.id, 'hello over debug logging');
    await emitAck(bobV2, 'message:history', { receiverId: a.body.user.id });
    for (const s of [alice, alicePolling, bobHeader, bobV2, bobV2Polling]) s.close();
    await sleep(500);

    const log = w.server.log();
    assert.ok(log.length > 1000, `the debug log has content (${log.length} bytes)`);
    const leaked = [...secrets].filter(([, value]) => log.includes(value)).map(([what]) => what);
    const excerpts = [...secrets].filter(([, v]) => log.includes(v)).map(([what, v]) => {
      const i = log.indexOf(v);
      return `${what}: …${log.slice(Math.max(0, i - 200), i + v.length + 50)}…`;
    });
    assert.deepEqual(leaked, [], `secrets found in the server log:\n${excerpts.join('\n')}`);
    assert.doesNotMatch(log, /\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}/, 'no bcrypt hash in the log');
    assert.doesNotMatch(log, /[?&]token=/, 'no query string carrying a token in the log');
  }));

  test('login throttling: after 5 failures for a username, 429 with Retry-After even with the right password; other usernames still work', withServer({ mode, env: THROTTLE }, async (w) => {
    const alice = randomName('alice');
    const bob = randomName('bob');
    assert.equal((await register(w.url, alice)).status, 201);
    assert.equal((await register(w.url, bob)).status, 201);
    for (let i = 0; i < 5; i++) {
      assertNestError(await login(w.url, alice, `wrong password ${i}`), 401, 'Invalid credentials', 'Unauthorized');
    }
    assertThrottled(await login(w.url, alice), 'the right password after 5 failures');
    assertThrottled(await login(w.url, alice, 'wrong again'), 'a wrong password after 5 failures');
    // Usernames are case-insensitive, so is the throttle: another spelling is no way around it.
    const retryAfter = assertThrottled(await login(w.url, alice.toUpperCase()), 'another spelling of the username');
    assert.ok(retryAfter <= 900, `Retry-After within LOGIN_BACKOFF_MAX_SECS: ${retryAfter}`);
    // Another username from the same address is not affected.
    assert.equal((await login(w.url, bob)).status, 201, 'another username still logs in');
    // The backoff ends when Retry-After says it does.
    if (retryAfter <= 10) {
      await sleep(retryAfter * 1000 + 300);
      const res = await login(w.url, alice);
      assert.equal(res.status, 201, `the right password after waiting Retry-After (${retryAfter} s): ${res.status} ${res.text}`);
    }
  }));

  test('login throttling: a successful login resets the username\'s failure count', withServer({ mode, env: THROTTLE }, async (w) => {
    const carol = randomName('carol');
    assert.equal((await register(w.url, carol)).status, 201);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 4; i++) assert.equal((await login(w.url, carol, `wrong ${round}.${i}`)).status, 401, `round ${round} failure ${i}`);
      const ok = await login(w.url, carol);
      assert.equal(ok.status, 201, `round ${round}: 4 failures then the right password: ${ok.status} ${ok.text}`);
    }
  }));

  test('login throttling per address: after 20 failures across usernames, every login from it answers 429', withServer({ mode, env: THROTTLE }, async (w) => {
    const real = [];
    for (let i = 0; i < 10; i++) {
      const name = randomName(`real${i}`);
      assert.equal((await register(w.url, name)).status, 201);
      real.push(name);
    }
    const dave = randomName('dave');
    assert.equal((await register(w.url, dave)).status, 201);
    // 20 failures, never more than one per username: 10 wrong passwords, 10 unknown users.
    for (let i = 0; i < 20; i++) {
      const name = i % 2 === 0 ? real[i / 2] : randomName('nobody');
      const res = await login(w.url, name, 'wrong password');
      assertNestError(res, 401, 'Invalid credentials', 'Unauthorized');
    }
    assertThrottled(await login(w.url, dave), 'a fresh username with the right password after 20 failures from this address');
    assertThrottled(await login(w.url, randomName('nobody'), 'x'.repeat(10)), 'an unknown user after 20 failures from this address');
    // Registration is not login: it still works (its own limits are out of scope here).
    assert.equal((await register(w.url, randomName('late'))).status, 201);
  }));

  test('MAX_SOCKETS_PER_USER=3: the 4th socket of a user is refused with "Too many connections", the first three keep working', withServer({ mode, env: { MAX_SOCKETS_PER_USER: '3' } }, async (w) => {
    const alice = await w.online(randomName('alice'), { tabs: 3 });
    const bob = await w.online(randomName('bob'));
    for (const transports of [['websocket'], ['polling']]) {
      const err = await connectError(w.url, alice.token, { transports });
      assert.equal(err.message, 'Too many connections', `4th socket over ${transports}: ${err.message}`);
    }
    for (const s of alice.sockets) assert.ok(s.connected, 'the first three are still connected');
    const inboxes = alice.sockets.map((s) => recordEvents(s, 'message:new'));
    const m = await send(bob.socket, alice.user.id, 'to every tab');
    await eventually(() => inboxes.every((l) => l.some((x) => x.id === m.id)), 'each of the three tabs gets the message', 5_000);
    for (const s of alice.sockets) {
      const users = await emitAck(s, 'user:init', null);
      assert.ok(users.some((u) => u.id === alice.user.id), 'each tab answers user:init');
    }
    // Another user is not affected by alice's cap.
    const bobTab2 = await w.connect(bob.token);
    assert.ok(bobTab2.connected);
    // Closing a tab frees its slot.
    const closed = waitForEvent(bob.socket, 'user:offline', () => true, 1_000).catch(() => null);
    alice.sockets[2].close();
    await eventually(async () => {
      try {
        (await w.connect(alice.token)).connected;
        return true;
      } catch (err) {
        if (err.message !== 'Too many connections') throw err;
        return false;
      }
    }, 'a 4th connect succeeds once a tab closed', 5_000, 100);
    assert.equal(await closed, null, 'alice never went offline (two tabs stayed open)');
    await send(alice.sockets[0], bob.user.id, 'still fine');
  }));

  test('MAX_SOCKETS_PER_USER=3 holds for 20 simultaneous connects of one user', withServer({ mode, env: { MAX_SOCKETS_PER_USER: '3' } }, async (w) => {
    const { token } = await w.user(randomName('burst'));
    const results = await Promise.all(Array.from({ length: 20 }, () => w.connect(token).then((s) => s, (err) => err.message)));
    const connected = results.filter((r) => typeof r !== 'string');
    const refused = results.filter((r) => typeof r === 'string');
    assert.deepEqual([...new Set(refused)], ['Too many connections'], `refusals: ${JSON.stringify(refused)}`);
    assert.equal(connected.length, 3, `at most 3 sockets of one user connect at once (${connected.length} did)`);
  }));
});
