/**
 * The whole chat state as one pure reducer: conversations (direct chats and rooms), presence, one
 * thread per conversation, rooms and their members, unread counts, read cursors, who is typing,
 * and the sync cursor. The socket and REST code only dispatch what they heard.
 *
 * Conversations are addressed by key (see keys.js): the peer's id for a direct chat,
 * `room:<roomId>` for a room.
 */
import { keyOfMessage, parseKey, roomKey } from './keys.js';
import { addPending, applyAck, markFailed, markRetrying, mergeMessages, timeOf } from './messages.js';
import { applyHistoryPage, emptyThread } from './pagination.js';
import { firstUnreadId, laterCursor, newestStored, unreadAfter } from './receipts.js';
import { advanceCursor } from './sync.js';
import { applyTypingEvent, expireTyping, withoutTypist } from './typing.js';
import { applyMessageToConversations, normalizeConversations, removeConversation, upsertRoom } from './conversations.js';

/** The state of a signed-in user before anything was loaded. */
export function initialChatState(me) {
  return {
    me,
    connection: 'connecting',
    conversations: [],
    conversationsLoaded: false,
    users: {},
    onlineUsers: [],
    online: new Set(),
    presenceReady: false,
    threads: {},
    /** Unread messages per conversation key. */
    unread: {},
    cursor: null,
    /** The open conversation's key, or null. */
    activeKey: null,
    /** Whether the window is visible and focused: only then is the open conversation being read. */
    attention: true,
    instance: null,
    /** Rooms by id, as the server last described them (`{id, name, ownerId, createdAt, members}`). */
    rooms: {},
    /** Rooms this tab was removed from or left, so late events for them are ignored. */
    leftRooms: new Set(),
    /** Counts room events; `roomSeen` holds the count at each room's last one (see conversations/loaded). */
    roomEvents: 0,
    roomSeen: {},
    /** Other participants' read cursors: `{key: {userId: messageId}}`. */
    reads: {},
    /** The caller's own cursor per conversation, as last acked or heard from another tab. */
    myReads: {},
    /** Who is typing: `{key: {userId: {username, until}}}`. */
    typing: {},
    /** Where the "new messages" divider goes in the open conversation: `{key, count, firstUnreadId}`. */
    marker: null,
    /** A message for the user (for example: removed from a room), or null. */
    notice: null,
  };
}

function threadOf(state, key) {
  return state.threads[key] ?? emptyThread();
}

function withThread(state, key, update) {
  return { ...state, threads: { ...state.threads, [key]: update(threadOf(state, key)) } };
}

function rememberUsers(users, list) {
  let next = users;
  for (const user of list) {
    if (!user?.id || !user.username || next[user.id]?.username === user.username) continue;
    if (next === users) next = { ...users };
    next[user.id] = { id: user.id, username: user.username };
  }
  return next;
}

/** Whether the user is looking at conversation `key` right now. */
export function isBeingRead(state, key) {
  return state.activeKey === key && state.attention;
}

function setUnread(state, key, count) {
  if ((state.unread[key] ?? 0) === count) return state;
  return { ...state, unread: { ...state.unread, [key]: count } };
}

/** Places the divider once the open conversation's messages are there. */
function resolveMarker(state) {
  const marker = state.marker;
  if (!marker || marker.firstUnreadId || !marker.count) return state;
  const thread = state.threads[marker.key];
  if (!thread?.loaded) return state;
  const id = firstUnreadId(thread.messages, state.me.id, marker.count);
  return id ? { ...state, marker: { ...marker, firstUnreadId: id } } : state;
}

/** The open conversation is being read: its unread count goes to 0 and, if it had some, the divider goes above them. */
function readActive(state, { reopened = false } = {}) {
  const key = state.activeKey;
  if (!key) return { ...state, marker: null };
  const count = state.attention ? state.unread[key] ?? 0 : 0;
  let next = state;
  if (!reopened || count > 0 || next.marker?.key !== key) {
    next = { ...next, marker: { key, count, firstUnreadId: null } };
  }
  if (state.attention) next = setUnread(next, key, 0);
  return resolveMarker(next);
}

function roomSummaryFor(state, roomId) {
  const room = state.rooms[roomId];
  return room ? { id: room.id, name: room.name, memberCount: room.members?.length ?? 0 } : null;
}

function receive(state, messages, { live }) {
  const myId = state.me.id;
  let next = state;
  for (const message of messages) {
    if (!message?.id || !message.senderId) continue;
    if (message.roomId) {
      if (next.leftRooms.has(message.roomId)) continue;
    } else if (!message.receiverId || (message.senderId !== myId && message.receiverId !== myId)) {
      continue;
    }
    const key = keyOfMessage(message, myId);
    const thread = threadOf(next, key);
    const isNew = !thread.messages.some((entry) => entry.id === message.id);
    next = withThread(next, key, (t) => ({ ...t, messages: mergeMessages(t.messages, [message], { myId, live }) }));
    const sender = message.senderUsername ? { id: message.senderId, username: message.senderUsername } : null;
    const users = sender ? rememberUsers(next.users, [sender]) : next.users;
    const peerId = message.roomId ? null : key;
    const peer = peerId && users[peerId] ? { ...users[peerId], online: next.online.has(peerId) } : null;
    next = {
      ...next,
      users,
      conversations: applyMessageToConversations(next.conversations, message, {
        myId,
        peer,
        room: message.roomId ? roomSummaryFor(next, message.roomId) : null,
      }),
      cursor: advanceCursor(next.cursor, [message]),
      // A typist's message ends their typing.
      typing: withoutTypist(next.typing, key, message.senderId),
    };
    if (isNew && message.senderId === myId) continue;
    if (message.id === next.myReads[key]) {
      // Another tab read up to this message before it got here.
      next = setUnread(next, key, unreadAfter(threadOf(next, key).messages, myId, message.id) ?? 0);
    } else if (isNew && !isBeingRead(next, key)) {
      next = setUnread(next, key, (next.unread[key] ?? 0) + 1);
    }
  }
  return resolveMarker(next);
}

/** Unread after the caller's cursor moved to `upTo` (here or in another tab). */
function unreadAfterCursor(state, key, upTo) {
  if (isBeingRead(state, key)) return 0;
  const entry = state.conversations.find((item) => item.key === key);
  const messages = threadOf(state, key).messages;
  if (entry?.lastMessage?.id === upTo || newestStored(messages)?.id === upTo) return 0;
  return unreadAfter(messages, state.me.id, upTo) ?? state.unread[key] ?? 0;
}

function moveMyCursor(state, key, upTo) {
  if (!key || !upTo) return state;
  const messages = threadOf(state, key).messages;
  const cursor = laterCursor(messages, state.myReads[key], upTo);
  const next = { ...state, myReads: { ...state.myReads, [key]: cursor } };
  return setUnread(next, key, unreadAfterCursor(next, key, cursor));
}

function moveReadCursor(state, key, userId, upTo) {
  if (!key || !userId || !upTo) return state;
  const current = state.reads[key] ?? {};
  const cursor = laterCursor(threadOf(state, key).messages, current[userId], upTo);
  if (cursor === current[userId]) return state;
  return { ...state, reads: { ...state.reads, [key]: { ...current, [userId]: cursor } } };
}

function applyRoom(state, room, { withReads = false } = {}) {
  if (!room?.id) return state;
  const key = roomKey(room.id);
  const members = Array.isArray(room.members) ? room.members.filter((member) => member?.id) : state.rooms[room.id]?.members ?? [];
  const leftRooms = state.leftRooms.has(room.id) ? new Set([...state.leftRooms].filter((id) => id !== room.id)) : state.leftRooms;
  const roomEvents = state.roomEvents + 1;
  let next = {
    ...state,
    roomEvents,
    roomSeen: { ...state.roomSeen, [room.id]: roomEvents },
    rooms: { ...state.rooms, [room.id]: { ...state.rooms[room.id], ...room, members } },
    conversations: upsertRoom(state.conversations, { ...room, members }),
    users: rememberUsers(state.users, members),
    leftRooms,
  };
  // Someone no longer in the room stops typing in it.
  const ids = new Set(members.map((member) => member.id));
  for (const userId of Object.keys(next.typing[key] ?? {})) {
    if (!ids.has(userId)) next = { ...next, typing: withoutTypist(next.typing, key, userId) };
  }
  if (withReads) {
    for (const member of members) {
      if (!member.readUpTo) continue;
      next = member.id === state.me.id ? moveMyCursor(next, key, member.readUpTo) : moveReadCursor(next, key, member.id, member.readUpTo);
    }
  }
  return next;
}

function dropKey(map, key) {
  if (!(key in map)) return map;
  const next = { ...map };
  delete next[key];
  return next;
}

function removeRoom(state, { roomId, self }) {
  const key = roomKey(roomId);
  const known = state.rooms[roomId] || state.conversations.some((item) => item.key === key);
  const name = state.rooms[roomId]?.name ?? state.conversations.find((item) => item.key === key)?.room.name;
  const next = {
    ...state,
    rooms: dropKey(state.rooms, roomId),
    conversations: removeConversation(state.conversations, key),
    threads: dropKey(state.threads, key),
    unread: dropKey(state.unread, key),
    reads: dropKey(state.reads, key),
    myReads: dropKey(state.myReads, key),
    typing: dropKey(state.typing, key),
    leftRooms: new Set([...state.leftRooms, roomId]),
  };
  if (state.activeKey === key) {
    next.activeKey = null;
    next.marker = null;
  }
  if (known && !self) next.notice = name ? `You are no longer a member of “${name}”.` : 'You are no longer a member of that group.';
  return next;
}

/**
 * The conversation list from the server. `since` is `roomEvents` when the request started: a room
 * the answer lacks is kept only if the socket told of it after that (created or joined meanwhile);
 * otherwise the user left it or was removed while away.
 */
function conversationsLoaded(state, list, since = state.roomEvents) {
  const myId = state.me.id;
  const fetched = normalizeConversations(list);
  // Messages and rooms heard on the socket while the request was in flight may be newer than the response.
  let conversations = fetched;
  for (const entry of state.conversations) {
    const missing = !conversations.some((item) => item.key === entry.key);
    if (entry.kind === 'room' && missing) {
      if (state.leftRooms.has(entry.room.id) || !((state.roomSeen[entry.room.id] ?? 0) > since)) continue;
      conversations = upsertRoom(conversations, { ...entry.room, createdAt: entry.since });
    }
    if (entry.lastMessage) {
      conversations = applyMessageToConversations(conversations, entry.lastMessage, { myId, peer: entry.peer, room: entry.room });
    }
  }
  conversations = conversations.filter((entry) => entry.kind !== 'room' || !state.leftRooms.has(entry.room.id));
  let next = {
    ...state,
    conversations,
    conversationsLoaded: true,
    users: rememberUsers(state.users, fetched.filter((item) => item.peer).map((item) => item.peer)),
    cursor: advanceCursor(state.cursor, fetched.map((item) => item.lastMessage).filter(Boolean)),
  };
  const raw = new Map();
  for (const item of Array.isArray(list) ? list : []) {
    const key = item?.peer?.id ?? (item?.room?.id ? roomKey(item.room.id) : null);
    if (key) raw.set(key, item);
  }
  for (const entry of fetched) {
    const item = raw.get(entry.key);
    if (Number.isFinite(item?.unread)) {
      // Messages that reached this tab after the server counted are not in its count.
      const since = timeOf(entry.lastMessage?.createdAt);
      const later = threadOf(next, entry.key).messages.filter(
        (message) => message.id && message.senderId !== myId && timeOf(message.createdAt) > since,
      ).length;
      next = setUnread(next, entry.key, isBeingRead(next, entry.key) ? 0 : item.unread + later);
    }
    if (entry.kind === 'direct' && item?.peerReadUpTo) next = moveReadCursor(next, entry.key, entry.peer.id, item.peerReadUpTo);
  }
  return next;
}

/** Applies one action; unknown actions leave the state as it is. */
export function chatReducer(state, action) {
  switch (action.type) {
    case 'connection':
      return state.connection === action.status ? state : { ...state, connection: action.status };
    case 'instance':
      return { ...state, instance: action.instance };
    case 'conversations/loaded':
      return conversationsLoaded(state, action.list, action.since);
    case 'presence/init': {
      const users = (Array.isArray(action.users) ? action.users : []).filter((user) => user?.id);
      return {
        ...state,
        onlineUsers: users,
        online: new Set(users.map((user) => user.id)),
        presenceReady: true,
        users: rememberUsers(state.users, users),
      };
    }
    case 'presence/online': {
      const user = action.user;
      if (!user?.id) return state;
      const online = new Set(state.online);
      online.add(user.id);
      return {
        ...state,
        online,
        onlineUsers: [...state.onlineUsers.filter((item) => item.id !== user.id), user],
        users: rememberUsers(state.users, [user]),
      };
    }
    case 'presence/offline': {
      if (!state.online.has(action.id)) return state;
      const online = new Set(state.online);
      online.delete(action.id);
      return { ...state, online };
    }
    case 'users/remember':
      return { ...state, users: rememberUsers(state.users, action.users ?? []) };
    case 'active': {
      const reopened = action.key === state.activeKey;
      return readActive({ ...state, activeKey: action.key ?? null }, { reopened });
    }
    case 'attention': {
      const attention = Boolean(action.value);
      if (attention === state.attention) return state;
      const next = { ...state, attention };
      return attention ? readActive(next, { reopened: true }) : next;
    }
    case 'thread/loading':
      return withThread(state, action.key, (t) => ({
        ...t,
        error: null,
        ...(action.older ? { loadingOlder: true } : { loading: true }),
      }));
    case 'thread/page': {
      const next = withThread(state, action.key, (t) =>
        applyHistoryPage(t, action.page, { older: action.older, limit: action.limit, myId: state.me.id }),
      );
      return resolveMarker(action.older ? next : { ...next, cursor: advanceCursor(next.cursor, action.page) });
    }
    case 'thread/error':
      return withThread(state, action.key, (t) => ({ ...t, loading: false, loadingOlder: false, error: action.error }));
    case 'message/received':
      return receive(state, action.messages, { live: Boolean(action.live) });
    case 'message/pending': {
      const target = parseKey(action.key);
      const message = { ...action.message, senderId: state.me.id };
      if (target?.kind === 'room') message.roomId = target.roomId;
      else if (target) message.receiverId = target.peerId;
      return withThread(state, action.key, (t) => ({ ...t, messages: addPending(t.messages, message) }));
    }
    case 'message/ack': {
      const { message, clientMsgId, key } = action;
      const next = withThread(state, key, (t) => ({ ...t, messages: applyAck(t.messages, clientMsgId, message) }));
      const peerId = message.roomId ? null : key;
      return {
        ...next,
        conversations: applyMessageToConversations(next.conversations, message, {
          myId: state.me.id,
          peer: peerId && state.users[peerId] && { ...state.users[peerId], online: state.online.has(peerId) },
          room: message.roomId ? roomSummaryFor(state, message.roomId) : null,
        }),
        cursor: advanceCursor(next.cursor, [message]),
      };
    }
    case 'message/failed':
      return withThread(state, action.key, (t) => ({
        ...t,
        messages: markFailed(t.messages, action.clientMsgId, action.error),
      }));
    case 'message/retry':
      return withThread(state, action.key, (t) => ({ ...t, messages: markRetrying(t.messages, action.clientMsgId) }));
    case 'room/updated':
      return applyRoom(state, action.room);
    case 'room/loaded':
      return applyRoom(state, action.room, { withReads: true });
    case 'room/removed':
      return removeRoom(state, action);
    case 'read/event': {
      const event = action.event ?? {};
      if (event.roomId && state.leftRooms.has(event.roomId)) return state;
      if (event.readerId === state.me.id) {
        const key = event.roomId ? roomKey(event.roomId) : event.peerId;
        return moveMyCursor(state, key, event.upTo);
      }
      const key = event.roomId ? roomKey(event.roomId) : event.readerId;
      return moveReadCursor(state, key, event.readerId, event.upTo);
    }
    case 'read/marked':
      return moveMyCursor(state, action.key, action.upTo);
    case 'typing/event': {
      const event = action.event ?? {};
      if (!event.userId || event.userId === state.me.id) return state;
      if (event.roomId && state.leftRooms.has(event.roomId)) return state;
      const key = event.roomId ? roomKey(event.roomId) : event.userId;
      return { ...state, typing: applyTypingEvent(state.typing, { ...event, key }, action.now) };
    }
    case 'typing/expire': {
      const typing = expireTyping(state.typing, action.now);
      return typing === state.typing ? state : { ...state, typing };
    }
    case 'notice':
      return { ...state, notice: action.notice ?? null };
    default:
      return state;
  }
}

/** Unread messages over all conversations, leaving out the muted ones (for the tab title). */
export function totalUnread(unread, isMutedKey = () => false) {
  let total = 0;
  for (const [key, count] of Object.entries(unread)) if (!isMutedKey(key)) total += count;
  return total;
}
