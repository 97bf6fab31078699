// GET /api/openapi.json: the description lists exactly the routes the server serves (read from
// the route table's source and probed over HTTP), each operation is well formed, and the bugs the
// schemathesis fuzz (rest-fuzz.mjs) found stay fixed.

import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { forEachMode, http, randomName, randomUUID, withServer } from '../lib/harness.mjs';
import { assertNestError, createRoom, roomSend, send } from '../lib/expect.mjs';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

/** Every Rust file under src/http. */
async function httpSources() {
  const dir = path.join(ROOT, 'src/http');
  const files = [];
  for (const entry of await readdir(dir, { recursive: true })) {
    if (entry.endsWith('.rs')) files.push(await readFile(path.join(dir, entry), 'utf8'));
  }
  return files.join('\n');
}

/** `METHOD path` of every handler documented with `#[utoipa::path]`, and every `.route("…")`. */
async function routesInSource() {
  const source = await httpSources();
  const documented = [...source.matchAll(/#\[utoipa::path\(\s*(\w+),\s*path\s*=\s*"([^"]+)"/g)]
    .map(([, method, p]) => `${method.toUpperCase()} ${p}`);
  const plain = [...source.matchAll(/\.(?:route|route_service|nest|nest_service)\(\s*"([^"]+)"/g)].map(([, p]) => p);
  return { documented, plain };
}

/** `METHOD path` of every operation of the description. */
function operations(doc) {
  return Object.entries(doc.paths).flatMap(([p, item]) =>
    METHODS.filter((m) => item[m]).map((m) => ({ key: `${m.toUpperCase()} ${p}`, method: m, path: p, op: item[m] })));
}

/** A user with a conversation and a room, so that every path can be filled with real ids. */
async function seeded(w) {
  const alice = await w.online('alice');
  const bob = await w.online('bob');
  const dm = await send(alice.socket, bob.user.id, 'hello');
  const room = await createRoom(alice.socket, 'openapi', [bob.user.id]);
  const inRoom = await roomSend(alice.socket, room.id, 'hi all');
  return { alice, bob, dm, room, inRoom, ids: { peerId: bob.user.id, roomId: room.id } };
}

const fill = (p, ids) => p.replace(/\{(\w+)\}/g, (_, name) => {
  assert.ok(ids[name], `no value to fill path parameter ${name} of ${p}`);
  return ids[name];
});

forEachMode((mode) => {
  test('the description is OpenAPI 3.1 and lists exactly the routes the server serves', withServer({ mode }, async (w) => {
    const res = await http(`${w.url}/api/openapi.json`);
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const doc = res.body;
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(doc.components.securitySchemes.bearer.scheme, 'bearer');

    const ops = operations(doc);
    const { documented, plain } = await routesInSource();
    assert.deepEqual(ops.map((o) => o.key).sort(), [...new Set(documented)].sort(),
      'every documented handler is in the description, and nothing else');
    for (const p of ['/auth/register', '/auth/login', '/api/me', '/api/conversations', '/api/conversations/{peerId}/messages',
      '/api/rooms/{roomId}', '/api/rooms/{roomId}/messages', '/api/users', '/api/instance', '/health', '/ready', '/metrics',
      '/api/openapi.json']) {
      assert.ok(doc.paths[p], `the description has ${p}`);
    }

    const ids = new Set();
    const { alice, ids: values } = await seeded(w);
    for (const { key, method, path: p, op } of ops) {
      assert.ok(op.operationId && !ids.has(op.operationId), `${key}: a unique operationId`);
      ids.add(op.operationId);
      for (const [status, response] of Object.entries(op.responses)) {
        if (Number(status) >= 400) {
          const ref = response.content['application/json'].schema.$ref;
          const schema = doc.components.schemas[ref.split('/').at(-1)];
          const errorBody = '#/components/schemas/ErrorBody';
          assert.ok(ref === errorBody || schema.allOf?.some((part) => part.$ref === errorBody),
            `${key} ${status}: the NestJS error body (${ref})`);
        }
      }
      // The route is served: it answers one of its documented statuses, never the router's 404.
      // POST bodies: a fresh name each time (register), a wrong password (login).
      const body = () => (method === 'post' ? { username: randomName('probe'), password: 'not-the-password' } : undefined);
      const served = await http(`${w.url}${fill(p, values)}`, { method: method.toUpperCase(), body: body(), token: alice.token });
      assert.ok(op.responses[String(served.status)], `${key} answered ${served.status}, which it does not document: ${served.text}`);
      // Protected operations say so, and refuse a request without a token.
      const anonymous = await http(`${w.url}${fill(p, values)}`, { method: method.toUpperCase(), body: body() });
      if (op.security) {
        assert.equal(anonymous.status, 401, `${key} without a token`);
        assert.ok(op.responses['401'], `${key} documents its 401`);
      } else {
        assert.equal(anonymous.status, served.status, `${key} declares no security, so a token changes nothing`);
      }
      // No other method is served on that path.
      for (const other of ['PUT', 'DELETE', 'PATCH', method === 'post' ? 'GET' : 'POST']) {
        if (doc.paths[p][other.toLowerCase()]) continue;
        const res2 = await http(`${w.url}${fill(p, values)}`, { method: other, token: alice.token, body: other === 'GET' ? undefined : {} });
        assert.equal(res2.status, 405, `${other} ${p} is not described, so it is not served`);
      }
    }

    // A route registered without a description may only be the web client (an HTML page) or a
    // fallback (404 to every method).
    const described = new Set(ops.map((o) => o.path));
    for (const p of new Set(plain)) {
      if (described.has(p)) continue;
      const probe = p.replace(/\{\*\w+\}/, 'anything').replace(/\{\w+\}/g, randomUUID());
      const page = await http(`${w.url}${probe}`);
      if (page.status === 200 && /^text\/html/.test(page.headers.get('content-type') ?? '')) continue;
      for (const method of ['GET', 'POST', 'DELETE']) {
        const res2 = await http(`${w.url}${probe}`, { method, token: alice.token });
        assert.equal(res2.status, 404, `${method} ${p} is a route that the description does not list`);
      }
    }
    // And the probe can tell: a path that is no route answers 404.
    assert.equal((await http(`${w.url}/api/no-such-route`, { token: alice.token })).status, 404);
  }));

  test('what the REST fuzz found stays fixed', withServer({ mode }, async (w) => {
    const { alice, ids } = await seeded(w);
    const get = (p) => http(`${w.url}${p}`, { token: alice.token });

    // A NUL in the directory query was a 500 on PostgreSQL: no name holds one.
    const nul = await get('/api/users?q=a%00');
    assert.equal(nul.status, 200, nul.text);
    assert.deepEqual(nul.body, []);

    // A parameter given twice was a text/plain 400.
    for (const p of [`/api/conversations/${ids.peerId}/messages?limit=1&limit=2`, `/api/rooms/${ids.roomId}/messages?limit=1&limit=2`,
      '/api/users?limit=1&limit=2']) {
      const res = await get(p);
      assertNestError(res, 400, undefined, 'Bad Request');
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/, p);
    }

    // An empty `limit` or `before` was taken as absent although it is no number and no id.
    for (const p of [`/api/conversations/${ids.peerId}/messages?limit=`, `/api/conversations/${ids.peerId}/messages?before=`,
      `/api/rooms/${ids.roomId}/messages?limit=`, `/api/rooms/${ids.roomId}/messages?before=`, '/api/users?limit=']) {
      assertNestError(await get(p), 400, undefined, 'Bad Request');
    }
    // Absent, they still mean the defaults.
    assert.equal((await get(`/api/conversations/${ids.peerId}/messages`)).body.messages.length, 1);
    assert.equal((await get(`/api/rooms/${ids.roomId}/messages`)).body.messages.length, 1);
    assert.equal((await get('/api/users?q=bob')).status, 200);
  }));
});
