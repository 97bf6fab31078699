// REST: registration, login, the bearer-protected /api/me, CORS and the operations endpoints.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import {
  decodeJwt, forEachMode, http, isIsoMillis, isUuid, login, randomName, register, withServer,
} from '../lib/harness.mjs';
import { assertNestError } from '../lib/expect.mjs';

const post = (url, body, opts = {}) => http(url, { method: 'POST', body, ...opts });

function assertBadRequest(res, what) {
  assert.equal(res.status, 400, `${what}: expected 400, got ${res.status} ${res.text}`);
  assertNestError(res, 400, undefined, 'Bad Request');
}

forEachMode((mode) => {
  test('register answers 201 with the public user and never a password or hash', withServer({ mode }, async (w) => {
    const name = randomName('alice');
    const res = await register(w.url, name, 's3cret-pass');
    assert.equal(res.status, 201, res.text);
    assert.deepEqual(Object.keys(res.body).sort(), ['createdAt', 'id', 'status', 'username']);
    assert.ok(isUuid(res.body.id), `id is a UUID: ${res.body.id}`);
    assert.equal(res.body.username, name);
    assert.equal(res.body.status, 'offline');
    assert.ok(isIsoMillis(res.body.createdAt), `createdAt: ${res.body.createdAt}`);
    assert.ok(!/s3cret-pass|\$2[aby]\$/.test(res.text), 'the body carries neither the password nor a bcrypt hash');
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  }));

  test('registering a taken username answers 409 even in another letter case', withServer({ mode }, async (w) => {
    const base = randomName('Alice');
    assert.equal((await register(w.url, base)).status, 201);
    for (const name of [base, base.toLowerCase(), base.toUpperCase()]) {
      const res = await register(w.url, name);
      assertNestError(res, 409, 'Username already exists', 'Conflict');
    }
  }));

  test('login answers 201 with a one-day HS256 JWT naming the user', withServer({ mode }, async (w) => {
    const name = randomName('bob');
    const reg = await register(w.url, name, 'pw-for-bob');
    const res = await login(w.url, name, 'pw-for-bob');
    assert.equal(res.status, 201, res.text);
    assert.deepEqual(Object.keys(res.body).sort(), ['access_token', 'user']);
    assert.deepEqual(res.body.user, { id: reg.body.id, username: name });

    const token = res.body.access_token;
    const { header, claims } = decodeJwt(token);
    assert.equal(header.alg, 'HS256');
    assert.equal(claims.sub, reg.body.id);
    assert.equal(claims.username, name);
    assert.ok(Number.isInteger(claims.iat) && Number.isInteger(claims.exp), 'iat and exp are integer seconds');
    assert.ok(Math.abs(claims.iat - Date.now() / 1000) < 60, 'iat is now');
    assert.equal(claims.exp - claims.iat, 86_400, 'lifetime is one day');

    const [h, p, sig] = token.split('.');
    const expected = createHmac('sha256', w.server.jwtSecret).update(`${h}.${p}`).digest('base64url');
    assert.equal(sig, expected, 'signed with JWT_SECRET');
  }));

  test('login with a wrong password or an unknown user answers the same 401', withServer({ mode }, async (w) => {
    const name = randomName('carol');
    await register(w.url, name, 'right-password');
    assertNestError(await login(w.url, name, 'wrong-password'), 401, 'Invalid credentials', 'Unauthorized');
    assertNestError(await login(w.url, randomName('nobody'), 'whatever'), 401, 'Invalid credentials', 'Unauthorized');
  }));

  test('an empty JSON object is a 400 for register and login, never a 500', withServer({ mode }, async (w) => {
    assertBadRequest(await post(`${w.url}/auth/register`, {}), 'register {}');
    assertBadRequest(await post(`${w.url}/auth/login`, {}), 'login {}');
  }));

  test('malformed JSON is a 400', withServer({ mode }, async (w) => {
    for (const path of ['/auth/register', '/auth/login']) {
      for (const raw of ['{"username": "x", ', 'not json', '']) {
        assertBadRequest(await http(`${w.url}${path}`, { method: 'POST', rawBody: raw }), `${path} ${JSON.stringify(raw)}`);
      }
    }
  }));

  test('missing, wrongly typed or empty fields are a 400', withServer({ mode }, async (w) => {
    const name = randomName('dave');
    const bodies = [
      { username: name },
      { password: 'only-a-password' },
      { username: 42, password: 'pw-123456' },
      { username: name, password: 123456 },
      { username: null, password: 'pw-123456' },
      { username: name, password: null },
      { username: [name], password: 'pw-123456' },
      { username: name, password: { pw: 1 } },
      { username: '', password: 'pw-123456' },
      { username: name, password: '' },
    ];
    for (const body of bodies) {
      assertBadRequest(await post(`${w.url}/auth/register`, body), `register ${JSON.stringify(body)}`);
      assertBadRequest(await post(`${w.url}/auth/login`, body), `login ${JSON.stringify(body)}`);
    }
    for (const raw of ['[]', '"a string"', '42', 'null']) {
      assertBadRequest(await http(`${w.url}/auth/register`, { method: 'POST', rawBody: raw }), `register ${raw}`);
    }
    // None of the refused registrations created the user.
    assert.equal((await register(w.url, name)).status, 201);
  }));

  test('a username or password far too long is a 400', withServer({ mode }, async (w) => {
    assertBadRequest(await register(w.url, 'u'.repeat(1000), 'pw-123456'), 'register long username');
    assertBadRequest(await register(w.url, randomName('erin'), 'p'.repeat(5000)), 'register long password');
  }));

  test('a CORS preflight answers 204 allowing any origin, the methods and the asked headers', withServer({ mode }, async (w) => {
    const res = await fetch(`${w.url}/auth/login`, {
      method: 'OPTIONS',
      headers: {
        Origin: 'http://localhost:5173',
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type,authorization',
      },
      signal: AbortSignal.timeout(5_000),
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    const methods = (res.headers.get('access-control-allow-methods') ?? '').toUpperCase();
    for (const m of ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE']) {
      assert.ok(methods.includes(m), `allowed methods ${methods} include ${m}`);
    }
    const allowed = (res.headers.get('access-control-allow-headers') ?? '').toLowerCase();
    assert.ok(allowed.includes('content-type') && allowed.includes('authorization'), `allowed headers: ${allowed}`);

    const plain = await post(`${w.url}/auth/login`, {}, { headers: { Origin: 'http://localhost:5173' } });
    assert.equal(plain.headers.get('access-control-allow-origin'), '*', 'plain responses carry the CORS header too');
  }));

  test('GET /api/me answers the caller with a token and 401 without one', withServer({ mode }, async (w) => {
    const { user, token } = await w.user(randomName('frank'));
    const me = await http(`${w.url}/api/me`, { token });
    assert.equal(me.status, 200, me.text);
    assert.deepEqual(me.body, { id: user.id, username: user.username, createdAt: user.createdAt });

    const unauthorized = { statusCode: 401, message: 'Unauthorized', error: 'Unauthorized' };
    for (const headers of [{}, { authorization: 'Bearer not.a.jwt' }, { authorization: `Basic ${token}` }, { authorization: `Bearer ${token}x` }]) {
      const res = await http(`${w.url}/api/me`, { headers });
      assert.equal(res.status, 401, `${JSON.stringify(headers)}: ${res.text}`);
      assert.deepEqual(res.body, unauthorized);
    }
  }));

  test('health, readiness and the instance identity answer', withServer({ mode, env: { INSTANCE_ID: 'test-instance-7' } }, async (w) => {
    assert.equal((await http(`${w.url}/health`)).status, 200);
    assert.equal((await http(`${w.url}/ready`)).status, 200);
    const inst = await http(`${w.url}/api/instance`);
    assert.equal(inst.status, 200);
    assert.equal(inst.body.instanceId, 'test-instance-7');
    assert.equal(typeof inst.body.version, 'string');
    assert.ok(inst.body.version.length > 0);
  }));
});
