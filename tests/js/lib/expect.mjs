// Assertions for the contract's shapes, so each test states what it checks in one line.

import assert from 'node:assert/strict';
import { emitAck, isIsoMillis, isUuid } from './harness.mjs';

const MESSAGE_KEYS = ['content', 'createdAt', 'id', 'receiverId', 'senderId'];
const sortedKeys = (o) => Object.keys(o).sort();

/** A stored message as acked and listed in history: exactly the contract's five fields. */
export function assertMessage(msg, expected = {}) {
  assert.ok(msg && typeof msg === 'object' && !Array.isArray(msg), `not a message: ${JSON.stringify(msg)}`);
  assert.deepEqual(sortedKeys(msg), MESSAGE_KEYS, `message keys of ${JSON.stringify(msg)}`);
  assert.ok(isUuid(msg.id), `message id is a UUID: ${msg.id}`);
  assert.ok(isUuid(msg.senderId), `senderId is a UUID: ${msg.senderId}`);
  assert.ok(isUuid(msg.receiverId), `receiverId is a UUID: ${msg.receiverId}`);
  assert.equal(typeof msg.content, 'string');
  assert.ok(isIsoMillis(msg.createdAt), `createdAt is ISO-8601 UTC with ms: ${msg.createdAt}`);
  for (const [k, v] of Object.entries(expected)) assert.equal(msg[k], v, `message.${k}`);
}

/** A `message:new` payload: the stored message plus `senderUsername`. */
export function assertMessageNew(msg, expected = {}) {
  assert.ok(msg && typeof msg === 'object', `not a message:new payload: ${JSON.stringify(msg)}`);
  assert.deepEqual(
    sortedKeys(msg),
    [...MESSAGE_KEYS, 'senderUsername'].sort(),
    `message:new keys of ${JSON.stringify(msg)}`,
  );
  const { senderUsername, ...stored } = msg;
  assert.equal(typeof senderUsername, 'string');
  assertMessage(stored);
  for (const [k, v] of Object.entries(expected)) assert.equal(msg[k], v, `message:new.${k}`);
}

/** An online user as listed by user:init and sent by user:online. */
export function assertOnlineUser(u, expected = {}) {
  assert.deepEqual(sortedKeys(u), ['createdAt', 'id', 'status', 'username'], `online user keys of ${JSON.stringify(u)}`);
  assert.ok(isUuid(u.id), `user id is a UUID: ${u.id}`);
  assert.equal(u.status, 'online');
  assert.equal(typeof u.username, 'string');
  assert.ok(isIsoMillis(u.createdAt), `createdAt is ISO-8601 UTC with ms: ${u.createdAt}`);
  for (const [k, v] of Object.entries(expected)) assert.equal(u[k], v, `user.${k}`);
}

/** An ack of a failed event: exactly `{error: {code, message}}` with the given code. */
export function assertErrorAck(ack, code, context = '') {
  const where = context ? ` (${context})` : '';
  assert.ok(ack && typeof ack === 'object' && !Array.isArray(ack), `expected an error ack${where}, got ${JSON.stringify(ack)}`);
  assert.deepEqual(Object.keys(ack), ['error'], `error ack has only "error"${where}: ${JSON.stringify(ack)}`);
  assert.deepEqual(sortedKeys(ack.error), ['code', 'message'], `error ack fields${where}: ${JSON.stringify(ack)}`);
  assert.equal(ack.error.code, code, `error code${where}: ${JSON.stringify(ack)}`);
  assert.equal(typeof ack.error.message, 'string');
  assert.ok(ack.error.message.length > 0, `error message is human text${where}`);
}

/** Asserts an ack is a success (no truthy `error`, as the React client checks) and returns it. */
export function assertOk(ack, context = '') {
  assert.ok(ack && !ack.error, `expected success${context ? ` (${context})` : ''}, got ${JSON.stringify(ack)}`);
  return ack;
}

/** A NestJS error body. */
export function assertNestError(res, status, message, error) {
  assert.equal(res.status, status, `status of ${res.text}`);
  assert.deepEqual(sortedKeys(res.body ?? {}), ['error', 'message', 'statusCode'], `error body keys: ${res.text}`);
  assert.equal(res.body.statusCode, status);
  assert.equal(typeof res.body.message, 'string', `message is a string: ${res.text}`);
  if (message !== undefined) assert.equal(res.body.message, message);
  if (error !== undefined) assert.equal(res.body.error, error);
}

/** Sends a message and asserts the ack is a stored message; returns it. */
export async function send(socket, receiverId, content, extra = {}) {
  const ack = await emitAck(socket, 'message:send', { receiverId, content, ...extra });
  assertOk(ack, `message:send to ${receiverId}`);
  return ack;
}

/**
 * Pages back through `message:history` with `before` until a short page and returns every message,
 * oldest first.
 */
export async function collectHistory(socket, receiverId, limit = 100) {
  const all = [];
  let before;
  for (let page = 0; page < 1000; page++) {
    const ack = await emitAck(socket, 'message:history', { receiverId, limit, ...(before ? { before } : {}) });
    assert.ok(Array.isArray(ack), `history page is an array: ${JSON.stringify(ack)}`);
    all.unshift(...ack);
    if (ack.length < limit) return all;
    before = ack[0].id;
  }
  throw new Error('history paging did not end');
}

export function assertDistinct(ids, what = 'ids') {
  assert.equal(new Set(ids).size, ids.length, `${what} are distinct`);
}

const ROOM_MESSAGE_KEYS = ['content', 'createdAt', 'id', 'roomId', 'senderId'];

/** A room as acked and sent in `room:updated`: `{id, name, ownerId, createdAt, members}`. */
export function assertRoom(room, expected = {}) {
  assert.ok(room && typeof room === 'object' && !Array.isArray(room), `not a room: ${JSON.stringify(room)}`);
  assert.deepEqual(sortedKeys(room), ['createdAt', 'id', 'members', 'name', 'ownerId'], `room keys of ${JSON.stringify(room)}`);
  assert.ok(isUuid(room.id) && isUuid(room.ownerId), `room ids: ${JSON.stringify(room)}`);
  assert.ok(isIsoMillis(room.createdAt), `room createdAt: ${room.createdAt}`);
  assert.ok(Array.isArray(room.members) && room.members.length >= 1, 'a room has members');
  for (const m of room.members) {
    assert.deepEqual(sortedKeys(m), ['id', 'joinedAt', 'role', 'username'], `member keys of ${JSON.stringify(m)}`);
    assert.ok(['owner', 'member'].includes(m.role), `role ${m.role}`);
    assert.ok(isIsoMillis(m.joinedAt), `joinedAt ${m.joinedAt}`);
  }
  assert.equal(room.members.filter((m) => m.role === 'owner').length, 1, 'exactly one owner');
  assert.equal(room.members.find((m) => m.role === 'owner').id, room.ownerId, 'ownerId names the owner');
  for (const [k, v] of Object.entries(expected)) assert.equal(room[k], v, `room.${k}`);
}

/** A stored room message: `{id, content, senderId, roomId, createdAt}` (no receiverId). */
export function assertRoomMessage(msg, expected = {}) {
  assert.deepEqual(sortedKeys(msg ?? {}), ROOM_MESSAGE_KEYS, `room message keys of ${JSON.stringify(msg)}`);
  assert.ok(isUuid(msg.id) && isUuid(msg.senderId) && isUuid(msg.roomId), `room message ids: ${JSON.stringify(msg)}`);
  assert.ok(isIsoMillis(msg.createdAt), `createdAt ${msg.createdAt}`);
  for (const [k, v] of Object.entries(expected)) assert.equal(msg[k], v, `room message.${k}`);
}

/** A `room:message` payload: the stored room message plus `senderUsername`. */
export function assertRoomMessageEvent(msg, expected = {}) {
  const { senderUsername, ...stored } = msg ?? {};
  assert.equal(typeof senderUsername, 'string', `senderUsername of ${JSON.stringify(msg)}`);
  assertRoomMessage(stored, expected);
}

/** Creates a room and asserts the ack is one; returns it. */
export async function createRoom(socket, name, memberIds) {
  const ack = await emitAck(socket, 'room:create', { name, memberIds });
  assertOk(ack, `room:create ${name}`);
  assertRoom(ack);
  return ack;
}

/** Sends to a room and asserts the ack is a stored room message; returns it. */
export async function roomSend(socket, roomId, content, extra = {}) {
  const ack = await emitAck(socket, 'room:send', { roomId, content, ...extra });
  assertOk(ack, `room:send to ${roomId}`);
  return ack;
}

/** Pages back through `room:history` with `before` and returns every message, oldest first. */
export async function collectRoomHistory(socket, roomId, limit = 100) {
  const all = [];
  let before;
  for (let page = 0; page < 1000; page++) {
    const ack = await emitAck(socket, 'room:history', { roomId, limit, ...(before ? { before } : {}) });
    assert.ok(Array.isArray(ack), `room history page is an array: ${JSON.stringify(ack)}`);
    all.unshift(...ack);
    if (ack.length < limit) return all;
    before = ack[0].id;
  }
  throw new Error('room history paging did not end');
}
