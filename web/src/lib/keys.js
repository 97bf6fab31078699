/**
 * Conversation keys. A direct chat is keyed by the peer's user id (as before rooms existed, so a
 * saved open conversation still reopens); a room by `room:<roomId>`. User ids are UUIDs and never
 * start with `room:`, so the two cannot collide.
 */

const ROOM_PREFIX = 'room:';

/** The key of a room's conversation. */
export function roomKey(roomId) {
  return `${ROOM_PREFIX}${roomId}`;
}

/** `{kind: 'direct', peerId}` or `{kind: 'room', roomId}` for a key; null for none. */
export function parseKey(key) {
  if (!key || typeof key !== 'string') return null;
  if (key.startsWith(ROOM_PREFIX)) return { kind: 'room', roomId: key.slice(ROOM_PREFIX.length) };
  return { kind: 'direct', peerId: key };
}

/** Whether a key names a room. */
export function isRoomKey(key) {
  return typeof key === 'string' && key.startsWith(ROOM_PREFIX);
}

/** The conversation a message belongs to, seen from `myId`: its room, else the other party. */
export function keyOfMessage(message, myId) {
  if (message?.roomId) return roomKey(message.roomId);
  return message.senderId === myId ? message.receiverId : message.senderId;
}

/** The payload fields that address a conversation: `{roomId}` or `{receiverId}`. */
export function targetOf(key) {
  const parsed = parseKey(key);
  if (!parsed) return null;
  return parsed.kind === 'room' ? { roomId: parsed.roomId } : { receiverId: parsed.peerId };
}
