/**
 * The sidebar: direct chats and rooms from `GET /api/conversations`, kept most recent first as
 * messages come and go, plus people the caller has not talked to yet (online users, or the user
 * directory's answer to a search).
 *
 * An entry is `{key, kind: 'direct', peer: {id, username, online}, lastMessage}` or
 * `{key, kind: 'room', room: {id, name, memberCount}, lastMessage, since}`. It sorts by its last
 * message, and a room without messages by `since`, its creation time.
 */
import { keyOfMessage, roomKey } from './keys.js';
import { timeOf } from './messages.js';

/** The time an entry sorts by: its last message, else (a room) its creation. */
export function activityOf(entry) {
  return timeOf(entry.lastMessage?.createdAt ?? entry.since);
}

function byNewest(a, b) {
  return activityOf(b) - activityOf(a);
}

function preview(message) {
  if (!message?.id) return null;
  const { id, content, senderId, receiverId, roomId, createdAt, senderUsername } = message;
  const entry = { id, content, senderId, createdAt };
  if (roomId) entry.roomId = roomId;
  else entry.receiverId = receiverId;
  if (senderUsername) entry.senderUsername = senderUsername;
  return entry;
}

function roomSummary(room, current) {
  const memberCount = Array.isArray(room.members) ? room.members.length : room.memberCount;
  return {
    id: room.id,
    name: typeof room.name === 'string' ? room.name : current?.name ?? '',
    memberCount: Number.isFinite(memberCount) ? memberCount : current?.memberCount ?? 0,
  };
}

/**
 * The API's list, validated and sorted most recent first. The list does not say when a room was
 * created, so a room without messages keeps the place the server gave it (its creation order):
 * it sorts as if it were as recent as the entry above it (or, at the top, as recent as `now`).
 */
export function normalizeConversations(list, now = new Date()) {
  if (!Array.isArray(list)) return [];
  const entries = [];
  let previous = null;
  for (const item of list) {
    let entry = null;
    if (item?.peer?.id) {
      entry = {
        key: item.peer.id,
        kind: 'direct',
        peer: { id: item.peer.id, username: item.peer.username, online: Boolean(item.peer.online) },
        lastMessage: preview(item.lastMessage),
      };
    } else if (item?.room?.id) {
      entry = { key: roomKey(item.room.id), kind: 'room', room: roomSummary(item.room), lastMessage: preview(item.lastMessage) };
      const since = item.room.createdAt ?? (entry.lastMessage ? null : previous ?? now.toISOString());
      if (since) entry.since = since;
    }
    if (!entry) continue;
    previous = entry.lastMessage?.createdAt ?? entry.since ?? previous ?? new Date(0).toISOString();
    entries.push(entry);
  }
  return entries.sort(byNewest);
}

/** The other side of a direct message, seen from `myId`. */
export function peerIdOf(message, myId) {
  return message.senderId === myId ? message.receiverId : message.senderId;
}

/**
 * The conversations after a message to or from the caller: its conversation moves to the top with
 * the message as preview (unless it already shows a newer one); a first message creates it.
 * `peer` names the other side of a direct message; `room` a room message's room.
 */
export function applyMessageToConversations(conversations, message, { myId, peer, room } = {}) {
  if (!message?.id) return conversations;
  const key = keyOfMessage(message, myId);
  const at = conversations.findIndex((item) => item.key === key);
  const current = at === -1 ? null : conversations[at];
  if (current?.lastMessage && timeOf(current.lastMessage.createdAt) > timeOf(message.createdAt)) {
    return conversations;
  }
  let updated;
  if (message.roomId) {
    updated = {
      key,
      kind: 'room',
      room: current?.room ?? roomSummary(room ?? { id: message.roomId, name: '', memberCount: 0 }),
      lastMessage: preview(message),
    };
    if (current?.since) updated.since = current.since;
  } else {
    const peerId = key;
    updated = {
      key,
      kind: 'direct',
      peer: current?.peer ?? { id: peerId, username: peer?.username ?? '', online: Boolean(peer?.online) },
      lastMessage: preview(message),
    };
    if (!updated.peer.username && peer?.username) updated.peer = { ...updated.peer, username: peer.username };
  }
  const rest = conversations.filter((item) => item.key !== key);
  return [updated, ...rest].sort(byNewest);
}

/** The conversations after `room:updated` (or a create ack): the room's name and size, added if new. */
export function upsertRoom(conversations, room) {
  if (!room?.id) return conversations;
  const key = roomKey(room.id);
  const at = conversations.findIndex((item) => item.key === key);
  if (at === -1) {
    const entry = { key, kind: 'room', room: roomSummary(room), lastMessage: null };
    if (room.createdAt) entry.since = room.createdAt;
    return [entry, ...conversations].sort(byNewest);
  }
  const current = conversations[at];
  const summary = roomSummary(room, current.room);
  if (summary.name === current.room.name && summary.memberCount === current.room.memberCount && (current.since || !room.createdAt)) {
    return conversations;
  }
  const next = conversations.slice();
  next[at] = { ...current, room: summary, ...(current.since || !room.createdAt ? {} : { since: room.createdAt }) };
  return next.sort(byNewest);
}

/** The conversations without `key` (a room the caller left or was removed from). */
export function removeConversation(conversations, key) {
  return conversations.some((item) => item.key === key) ? conversations.filter((item) => item.key !== key) : conversations;
}

/**
 * The sidebar rows: conversations (direct chats and rooms) most recent first, then people without
 * a conversation. Without a search those are the online users by name; with one, the user
 * directory's answer (`directory`, online first then by name, offline people included) when the
 * server gave one, else the online users again. Presence comes from the socket (`online`, a set of
 * ids) once `user:init` answered, before that from the API's `peer.online`. `query` filters
 * conversations by username or room name.
 *
 * Direct rows: `{key, kind: 'direct', id, username, online, lastMessage, unread, section}`; room rows:
 * `{key, kind: 'room', id, name, memberCount, lastMessage, unread, section}`; `section` is 'chats' or
 * 'people'.
 */
export function sidebarEntries({ conversations, onlineUsers, online, presenceReady, myId, unread = {}, query = '', directory = null }) {
  const needle = query.trim().toLowerCase();
  const matches = (name) => !needle || (name ?? '').toLowerCase().includes(needle);
  const isOnline = (id, fallback) => (presenceReady ? online.has(id) : Boolean(fallback));
  const rows = [];
  const seen = new Set([myId]);
  for (const entry of conversations) {
    if (seen.has(entry.key)) continue;
    seen.add(entry.key);
    const count = unread[entry.key] ?? 0;
    if (entry.kind === 'room') {
      if (!matches(entry.room.name)) continue;
      rows.push({
        key: entry.key,
        kind: 'room',
        id: entry.room.id,
        name: entry.room.name,
        memberCount: entry.room.memberCount,
        lastMessage: entry.lastMessage,
        unread: count,
        section: 'chats',
      });
      continue;
    }
    const { peer } = entry;
    if (!matches(peer.username)) continue;
    rows.push({
      key: entry.key,
      kind: 'direct',
      id: peer.id,
      username: peer.username,
      online: isOnline(peer.id, peer.online),
      lastMessage: entry.lastMessage,
      unread: count,
      section: 'chats',
    });
  }
  const person = (user, isUserOnline) => ({
    key: user.id,
    kind: 'direct',
    id: user.id,
    username: user.username,
    online: isUserOnline,
    lastMessage: null,
    unread: unread[user.id] ?? 0,
    section: 'people',
  });
  if (needle && Array.isArray(directory)) {
    for (const user of directory) {
      if (!user?.id || !user.username || seen.has(user.id)) continue;
      seen.add(user.id);
      rows.push(person(user, isOnline(user.id, user.online)));
    }
    return rows;
  }
  const others = onlineUsers
    .filter((user) => user?.id && !seen.has(user.id) && online.has(user.id) && matches(user.username))
    .sort((a, b) => a.username.localeCompare(b.username));
  for (const user of others) {
    seen.add(user.id);
    rows.push(person(user, true));
  }
  return rows;
}
