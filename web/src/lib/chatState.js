/**
 * The whole chat state as one pure reducer: conversations, presence, one thread per peer, unread
 * counts and the sync cursor. The socket and REST code only dispatch what they heard.
 */
import { addPending, applyAck, markFailed, markRetrying, mergeMessages } from './messages.js';
import { applyHistoryPage, emptyThread } from './pagination.js';
import { advanceCursor } from './sync.js';
import { applyMessageToConversations, normalizeConversations, peerIdOf } from './conversations.js';

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
    unread: {},
    cursor: null,
    activePeerId: null,
    instance: null,
  };
}

function threadOf(state, peerId) {
  return state.threads[peerId] ?? emptyThread();
}

function withThread(state, peerId, update) {
  return { ...state, threads: { ...state.threads, [peerId]: update(threadOf(state, peerId)) } };
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

function receive(state, messages, { live }) {
  const myId = state.me.id;
  let next = state;
  for (const message of messages) {
    if (!message?.id || !message.senderId || !message.receiverId) continue;
    if (message.senderId !== myId && message.receiverId !== myId) continue;
    const peerId = peerIdOf(message, myId);
    const thread = threadOf(next, peerId);
    const isNew = !thread.messages.some((entry) => entry.id === message.id);
    next = withThread(next, peerId, (t) => ({ ...t, messages: mergeMessages(t.messages, [message], { myId, live }) }));
    const peer = next.users[peerId] ?? (message.senderUsername && message.senderId === peerId
      ? { id: peerId, username: message.senderUsername }
      : null);
    next = {
      ...next,
      users: peer ? rememberUsers(next.users, [peer]) : next.users,
      conversations: applyMessageToConversations(next.conversations, message, {
        myId,
        peer: peer && { ...peer, online: next.online.has(peerId) },
      }),
      cursor: advanceCursor(next.cursor, [message]),
    };
    if (isNew && message.senderId !== myId && peerId !== next.activePeerId) {
      next = { ...next, unread: { ...next.unread, [peerId]: (next.unread[peerId] ?? 0) + 1 } };
    }
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
    case 'conversations/loaded': {
      const fetched = normalizeConversations(action.list);
      // Messages heard on the socket while the request was in flight may be newer than the response.
      let conversations = fetched;
      for (const { lastMessage, peer } of state.conversations) {
        if (lastMessage) conversations = applyMessageToConversations(conversations, lastMessage, { myId: state.me.id, peer });
      }
      return {
        ...state,
        conversations,
        conversationsLoaded: true,
        users: rememberUsers(state.users, fetched.map((item) => item.peer)),
        cursor: advanceCursor(state.cursor, fetched.map((item) => item.lastMessage).filter(Boolean)),
      };
    }
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
    case 'active':
      return {
        ...state,
        activePeerId: action.peerId,
        unread: action.peerId ? { ...state.unread, [action.peerId]: 0 } : state.unread,
      };
    case 'thread/loading':
      return withThread(state, action.peerId, (t) => ({
        ...t,
        error: null,
        ...(action.older ? { loadingOlder: true } : { loading: true }),
      }));
    case 'thread/page': {
      const next = withThread(state, action.peerId, (t) =>
        applyHistoryPage(t, action.page, { older: action.older, limit: action.limit, myId: state.me.id }),
      );
      return action.older ? next : { ...next, cursor: advanceCursor(next.cursor, action.page) };
    }
    case 'thread/error':
      return withThread(state, action.peerId, (t) => ({ ...t, loading: false, loadingOlder: false, error: action.error }));
    case 'message/received':
      return receive(state, action.messages, { live: Boolean(action.live) });
    case 'message/pending':
      return withThread(state, action.message.receiverId, (t) => ({
        ...t,
        messages: addPending(t.messages, { ...action.message, senderId: state.me.id }),
      }));
    case 'message/ack': {
      const { message, clientMsgId } = action;
      const next = withThread(state, action.peerId, (t) => ({ ...t, messages: applyAck(t.messages, clientMsgId, message) }));
      return {
        ...next,
        conversations: applyMessageToConversations(next.conversations, message, {
          myId: state.me.id,
          peer: state.users[action.peerId] && { ...state.users[action.peerId], online: state.online.has(action.peerId) },
        }),
        cursor: advanceCursor(next.cursor, [message]),
      };
    }
    case 'message/failed':
      return withThread(state, action.peerId, (t) => ({
        ...t,
        messages: markFailed(t.messages, action.clientMsgId, action.error),
      }));
    case 'message/retry':
      return withThread(state, action.peerId, (t) => ({ ...t, messages: markRetrying(t.messages, action.clientMsgId) }));
    default:
      return state;
  }
}
