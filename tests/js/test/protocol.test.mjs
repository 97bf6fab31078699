// docs/protocol.md stays true: every REST route it names is served (a success for valid input,
// never the router's 404 or 405 nor the web client's page), every client event it names gets an
// ack (an error ack is fine, silence is not), every server event it names is observed in a short
// scripted session, and, the other way round, everything the server serves is in the document.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import {
  NO_PAYLOAD, emitAck, eventually, forEachMode, http, randomName, withServer,
} from '../lib/harness.mjs';
import { createRoom, roomSend, send } from '../lib/expect.mjs';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const DOC = 'docs/protocol.md';
const EVENT_NAME = /^(?:[a-z]+:[a-z]+|typing)$/;
const ROUTE = /^(GET|POST|PUT|PATCH|DELETE) (\/[^\s?`]*)/;

/** The first cell of every table row, by the header of its table. */
function tables(markdown) {
  const rows = [];
  let header = null;
  for (const line of markdown.split('\n')) {
    if (!line.startsWith('|')) {
      header = null;
      continue;
    }
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    if (header === null) header = cells[0];
    else if (!/^-+$/.test(cells[0])) rows.push({ header, first: cells[0] });
  }
  return rows;
}

const backticked = (text) => [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1]);

/** What docs/protocol.md says the server serves. */
async function documented() {
  const text = await readFile(path.join(ROOT, DOC), 'utf8');
  const rows = tables(text);
  const names = (header) => new Set(rows.filter((r) => r.header === header)
    .flatMap((r) => backticked(r.first)).filter((n) => EVENT_NAME.test(n)));
  const client = names('client emits');
  const server = names('server emits');
  // Outside the code examples: every backticked route, and every backticked event name (each
  // must be in one of the event tables).
  const prose = text.replace(/```[\s\S]*?```/g, '');
  const routes = new Map();
  for (const token of backticked(prose)) {
    const m = ROUTE.exec(token);
    if (m) routes.set(`${m[1]} ${m[2]}`, { method: m[1], path: m[2] });
  }
  const mentioned = new Set(backticked(prose).filter((n) => EVENT_NAME.test(n)));
  return { text, client, server, routes, mentioned };
}

/** The events the server registers a handler for (src/socket). */
async function handledInSource() {
  const source = await readFile(path.join(ROOT, 'src/socket/events.rs'), 'utf8');
  return new Set([...source.matchAll(/\bs\.on\("([^"]+)"/g)].map((m) => m[1]));
}

test(`${DOC} lists events and routes in tables this test can read`, async () => {
  const doc = await documented();
  assert.ok(doc.client.size >= 12, `client events found: ${[...doc.client]}`);
  assert.ok(doc.server.size >= 8, `server events found: ${[...doc.server]}`);
  assert.ok(doc.routes.size >= 13, `routes found: ${[...doc.routes.keys()]}`);
  for (const name of doc.mentioned) {
    assert.ok(doc.client.has(name) || doc.server.has(name), `${name} is mentioned but in no event table`);
  }
  const handled = await handledInSource();
  for (const name of handled) assert.ok(doc.client.has(name), `the server handles ${name}, which ${DOC} does not list`);
});

forEachMode((mode) => {
  test(`every route of ${DOC} is served, and every served route is in it`, withServer({ mode }, async (w) => {
    const { routes } = await documented();
    const alice = await w.online('alice');
    const bob = await w.online('bob');
    await send(alice.socket, bob.user.id, 'hello');
    const room = await createRoom(alice.socket, 'protocol', [bob.user.id]);
    await roomSend(alice.socket, room.id, 'hi');
    const ids = { peerId: bob.user.id, roomId: room.id };
    const newName = randomName('newcomer');
    const bodies = {
      'POST /auth/register': { username: newName, password: 'correct horse battery' },
      'POST /auth/login': { username: 'alice', password: 'correct horse battery' },
    };
    for (const [key, { method, path: p }] of routes) {
      const url = `${w.url}${p.replace(/\{(\w+)\}/g, (_, name) => {
        assert.ok(ids[name], `${key}: no value for {${name}}`);
        return ids[name];
      })}`;
      const res = await http(url, { method, body: bodies[key], token: alice.token });
      assert.ok(res.status >= 200 && res.status < 300, `${key} answered ${res.status}: ${res.text.slice(0, 200)}`);
      assert.doesNotMatch(res.headers.get('content-type') ?? '', /text\/html/, `${key} is the web client's page, not a route`);
    }

    // The other way round: every operation the server describes is in the document.
    const description = (await http(`${w.url}/api/openapi.json`)).body;
    for (const [p, item] of Object.entries(description.paths)) {
      for (const method of Object.keys(item).filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))) {
        assert.ok(routes.has(`${method.toUpperCase()} ${p}`), `the server serves ${method.toUpperCase()} ${p}, which ${DOC} does not list`);
      }
    }
  }));

  test(`every client event of ${DOC} is handled: an emit with an ack gets an answer`, withServer({ mode }, async (w) => {
    const { client } = await documented();
    const alice = await w.online('alice');
    for (const name of client) {
      // An empty object is a wrong payload for most events: an error ack is an answer too.
      const payload = name === 'user:init' ? null : {};
      const ack = await emitAck(alice.socket, name, payload, 5_000).catch((err) => ({ timeout: err.message }));
      assert.ok(!ack?.timeout, `${name}: ${ack?.timeout}`);
    }
    // And the check can fail: an event the server does not handle gets no answer.
    await assert.rejects(emitAck(alice.socket, 'no:such-event', {}, 1_000), /no ack/);
    // user:init without any payload is answered too (the old client's form).
    assert.ok(Array.isArray(await emitAck(alice.socket, 'user:init', NO_PAYLOAD)));
  }));

  test(`every server event of ${DOC} is emitted in a scripted session, and nothing else`, withServer({ mode }, async (w) => {
    const { server } = await documented();
    const seen = new Set();
    const listen = (socket) => socket.onAny((name) => seen.add(name));
    const alice = await w.online('alice', { tabs: 2 });
    const bob = await w.online('bob');
    for (const s of [...alice.sockets, bob.socket]) listen(s);

    // Someone comes online and, at the end, goes offline.
    const carol = await w.online('carol');
    await eventually(() => seen.has('user:online'), 'user:online');
    // A direct message, its receipt, typing.
    const dm = await send(alice.socket, bob.user.id, 'hello bob');
    await emitAck(bob.socket, 'conversation:read', { receiverId: alice.user.id, upTo: dm.id });
    alice.socket.emit('typing', { receiverId: bob.user.id, typing: true });
    // A room: created, a message, bob removed.
    const room = await createRoom(alice.socket, 'scripted', [bob.user.id]);
    await roomSend(alice.socket, room.id, 'hello room');
    await emitAck(alice.socket, 'room:remove', { roomId: room.id, userId: bob.user.id });
    carol.socket.close();

    for (const name of server) await eventually(() => seen.has(name), `${name} observed in the session`);
    for (const name of seen) assert.ok(server.has(name), `the server emitted ${name}, which ${DOC} does not list`);
  }));
});
