/**
 * The live half of the client: one socket per session, every server event turned into a reducer
 * action, and the commands the UI needs (open a conversation, page back, send, retry, manage rooms,
 * say that the user types), plus marking the open conversation read while the user looks at it.
 */
import { useCallback, useEffect, useEffectEvent, useLayoutEffect, useReducer, useRef } from 'react';
import { io } from 'socket.io-client';
import { ApiError, fetchConversations, fetchInstance, fetchRoom, SERVER_ORIGIN } from '../api.js';
import { chatReducer, initialChatState } from '../lib/chatState.js';
import { newClientMsgId } from '../lib/ids.js';
import { isRoomKey, keyOfMessage, parseKey, targetOf } from '../lib/keys.js';
import { findOutgoing } from '../lib/messages.js';
import { canLoadOlder, emptyThread, historyRequest, PAGE_SIZE } from '../lib/pagination.js';
import { newestStored } from '../lib/receipts.js';
import { afterSyncPage, syncRequest } from '../lib/sync.js';
import { nextTypingExpiry, typingInput, typingStop } from '../lib/typing.js';

/** How long a send may wait for its ack before it shows as failed (a retry cannot duplicate it). */
const SEND_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 15_000;

function errorOf(ack) {
  const error = ack?.error;
  if (!error) return { code: 'internal', message: 'The server sent no answer.' };
  if (typeof error === 'object') return { code: error.code ?? 'error', message: error.message ?? 'Message not sent.' };
  return { code: 'error', message: String(error) };
}

/** A failed socket request, with the contract's error code (`not_found`, `forbidden`, …). */
export class SocketError extends Error {
  constructor({ code, message }) {
    super(message);
    this.name = 'SocketError';
    this.code = code;
  }
}

async function request(socket, event, payload) {
  let result;
  try {
    result = await socket.timeout(REQUEST_TIMEOUT_MS).emitWithAck(event, payload);
  } catch {
    throw new SocketError({ code: 'timeout', message: 'No answer from the server.' });
  }
  if (result && !Array.isArray(result) && result.error) throw new SocketError(errorOf(result));
  return result;
}

function presenceId(payload) {
  return typeof payload === 'string' ? payload : payload?.id;
}

function pageOf(result) {
  if (Array.isArray(result)) return result;
  return Array.isArray(result?.messages) ? result.messages : [];
}

/** The window is visible and focused: only then does the open conversation count as read. */
function hasAttention() {
  return document.visibilityState === 'visible' && document.hasFocus();
}

/**
 * Chat state and commands for a signed-in user. `onUnauthorized` runs when the server refuses the
 * token (expired, or signed by another secret): the caller signs out. `onLiveMessage(message, key)`
 * runs for each message that arrives live (for notifications).
 */
export function useChat({ token, me, initialKey, onUnauthorized, onLiveMessage }) {
  const [state, dispatch] = useReducer(chatReducer, me, (user) => ({
    ...initialChatState(user),
    activeKey: initialKey ?? null,
  }));
  const socketRef = useRef(null);
  const stateRef = useRef(state);
  const inflight = useRef(new Set());
  /** The newest message this tab marked read, per conversation, so each is marked once. */
  const marked = useRef({});
  /** Rooms this tab is leaving, so their `room:removed` is not announced as a removal. */
  const leaving = useRef(new Set());
  const typingState = useRef(null);

  const callbacks = useRef({ onUnauthorized, onLiveMessage });

  useLayoutEffect(() => {
    stateRef.current = state;
    callbacks.current = { onUnauthorized, onLiveMessage };
  });

  const loadRoomDetails = useCallback(
    async (roomId) => {
      try {
        const room = await fetchRoom(token, roomId);
        if (room?.id) dispatch({ type: 'room/loaded', room });
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) dispatch({ type: 'room/removed', roomId });
        else if (error instanceof ApiError && error.status === 401) callbacks.current.onUnauthorized();
      }
    },
    [token],
  );

  const loadThread = useCallback(async (key, { older = false } = {}) => {
    const socket = socketRef.current;
    const flight = `${key}:${older ? 'older' : 'latest'}`;
    if (!socket || !key || inflight.current.has(flight)) return;
    const thread = stateRef.current.threads[key] ?? emptyThread();
    if (older && !canLoadOlder(thread)) return;
    inflight.current.add(flight);
    dispatch({ type: 'thread/loading', key, older });
    const room = parseKey(key)?.kind === 'room' ? parseKey(key).roomId : null;
    try {
      const payload = historyRequest(key, thread, { older, limit: PAGE_SIZE });
      const page = await request(socket, room ? 'room:history' : 'message:history', payload);
      dispatch({ type: 'thread/page', key, page: pageOf(page), older, limit: PAGE_SIZE });
    } catch (error) {
      if (room && error.code === 'not_found') dispatch({ type: 'room/removed', roomId: room });
      else dispatch({ type: 'thread/error', key, error: error.message || 'Could not load messages.' });
    } finally {
      inflight.current.delete(flight);
    }
  }, []);

  const refreshConversations = useEffectEvent(async (signal) => {
    const since = stateRef.current.roomEvents;
    try {
      const list = await fetchConversations(token, signal);
      dispatch({ type: 'conversations/loaded', list, since });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) onUnauthorized();
      else if (error?.name !== 'AbortError') dispatch({ type: 'conversations/loaded', list: [], since: Infinity });
    }
  });

  const refreshInstance = useEffectEvent(async () => {
    try {
      dispatch({ type: 'instance', instance: await fetchInstance(token) });
    } catch {
      dispatch({ type: 'instance', instance: null });
    }
  });

  /** Loads what an opened conversation needs: its latest page and, for a room, members and their cursors. */
  const prepare = useCallback(
    (key) => {
      if (!key) return;
      const thread = stateRef.current.threads[key];
      if (!thread?.loaded && !thread?.loading) loadThread(key);
      if (isRoomKey(key)) loadRoomDetails(parseKey(key).roomId);
    },
    [loadThread, loadRoomDetails],
  );

  /** Catches up after a reconnect: `message:sync` from the newest message seen, page by page. */
  const catchUp = useEffectEvent(async (socket) => {
    let next = syncRequest(state.cursor);
    const activeKey = state.activeKey;
    marked.current = {};
    refreshConversations();
    if (activeKey && isRoomKey(activeKey)) loadRoomDetails(parseKey(activeKey).roomId);
    if (!next) {
      // Nothing was ever seen, so there is no cursor: reload what is on screen instead.
      if (activeKey) loadThread(activeKey);
      return;
    }
    try {
      while (next) {
        const step = afterSyncPage(next, await request(socket, 'message:sync', next));
        if (step.messages.length) dispatch({ type: 'message/received', messages: step.messages });
        next = step.next;
      }
    } catch {
      if (activeKey) loadThread(activeKey);
    }
  });

  const unauthorized = useEffectEvent(() => onUnauthorized());
  const heardLive = useCallback(
    (message) => {
      dispatch({ type: 'message/received', messages: [message], live: true });
      if (message?.id && message.senderId) callbacks.current.onLiveMessage?.(message, keyOfMessage(message, me.id));
    },
    [me.id],
  );

  useEffect(() => {
    const controller = new AbortController();
    refreshConversations(controller.signal);
    return () => controller.abort();
  }, [token]);

  useEffect(() => {
    const socket = io(SERVER_ORIGIN, { transports: ['websocket'], auth: { token }, autoConnect: false });
    socketRef.current = socket;
    // Connecting on the next task lets React's development double mount cancel the first socket
    // before it ever opens, instead of aborting a half-open WebSocket.
    const connectTimer = setTimeout(() => socket.connect(), 0);
    let connectedBefore = false;

    socket.on('connect', () => {
      dispatch({ type: 'connection', status: 'online' });
      socket.emit('user:init', null, (users) => dispatch({ type: 'presence/init', users }));
      refreshInstance();
      if (connectedBefore) catchUp(socket);
      else prepare(stateRef.current.activeKey);
      connectedBefore = true;
    });
    socket.on('disconnect', (reason) => {
      if (reason === 'io client disconnect') return;
      dispatch({ type: 'connection', status: 'reconnecting' });
      // The server closed the socket on purpose; socket.io does not come back by itself then.
      if (reason === 'io server disconnect') socket.connect();
    });
    socket.on('connect_error', (error) => {
      if (error?.message === 'Unauthorized') {
        unauthorized();
        return;
      }
      dispatch({ type: 'connection', status: connectedBefore ? 'reconnecting' : 'connecting' });
    });
    socket.on('message:new', heardLive);
    socket.on('room:message', heardLive);
    socket.on('room:updated', (room) => dispatch({ type: 'room/updated', room }));
    socket.on('room:removed', (payload) => {
      const roomId = payload?.roomId;
      if (!roomId) return;
      const self = leaving.current.delete(roomId);
      dispatch({ type: 'room/removed', roomId, self });
    });
    socket.on('conversation:read', (event) => dispatch({ type: 'read/event', event }));
    socket.on('typing', (event) => dispatch({ type: 'typing/event', event, now: Date.now() }));
    socket.on('user:online', (user) => dispatch({ type: 'presence/online', user }));
    socket.on('user:offline', (payload) => dispatch({ type: 'presence/offline', id: presenceId(payload) }));

    return () => {
      clearTimeout(connectTimer);
      socket.removeAllListeners();
      socket.disconnect();
      socketRef.current = null;
    };
  }, [token, loadThread, prepare, heardLive]);

  // The window's attention decides whether the open conversation is being read.
  useEffect(() => {
    const update = () => dispatch({ type: 'attention', value: hasAttention() });
    update();
    window.addEventListener('focus', update);
    window.addEventListener('blur', update);
    document.addEventListener('visibilitychange', update);
    return () => {
      window.removeEventListener('focus', update);
      window.removeEventListener('blur', update);
      document.removeEventListener('visibilitychange', update);
    };
  }, []);

  // Mark the open conversation read up to its newest message while the user looks at it.
  const activeThread = state.activeKey ? state.threads[state.activeKey] : null;
  const newestId = activeThread?.loaded ? newestStored(activeThread.messages)?.id : undefined;
  useEffect(() => {
    const key = state.activeKey;
    const socket = socketRef.current;
    if (!key || !newestId || !state.attention || state.connection !== 'online' || !socket) return;
    if (marked.current[key] === newestId || state.myReads[key] === newestId) return;
    marked.current[key] = newestId;
    socket.timeout(REQUEST_TIMEOUT_MS).emit('conversation:read', { ...targetOf(key), upTo: newestId }, (error, ack) => {
      if (error || ack?.error) {
        // Unanswered (or refused): let the next look try again.
        if (marked.current[key] === newestId) delete marked.current[key];
        return;
      }
      dispatch({ type: 'read/marked', key, upTo: ack?.upTo ?? newestId });
    });
  }, [state.activeKey, newestId, state.attention, state.connection, state.myReads]);

  // A typist counts as stopped 6 s after their last `typing: true`.
  useEffect(() => {
    const at = nextTypingExpiry(state.typing);
    if (at === null) return undefined;
    const timer = setTimeout(() => dispatch({ type: 'typing/expire', now: Date.now() }), Math.max(0, at - Date.now()) + 20);
    return () => clearTimeout(timer);
  }, [state.typing]);

  const emitTyping = useCallback((emits) => {
    const socket = socketRef.current;
    if (!socket?.connected) return;
    for (const { key, typing } of emits) socket.emit('typing', { ...targetOf(key), typing });
  }, []);

  /** The composer's text of `key` changed. */
  const typed = useCallback(
    (key, text) => {
      const step = typingInput(typingState.current, { key, text, now: Date.now() });
      typingState.current = step.state;
      emitTyping(step.emits);
    },
    [emitTyping],
  );

  /** The user stopped typing: sent the message, left the box or the conversation. */
  const stoppedTyping = useCallback(() => {
    const step = typingStop(typingState.current);
    typingState.current = step.state;
    emitTyping(step.emits);
  }, [emitTyping]);

  const deliver = useCallback(async (key, clientMsgId, content) => {
    const socket = socketRef.current;
    if (!socket) return;
    const room = isRoomKey(key);
    try {
      const ack = await socket
        .timeout(SEND_TIMEOUT_MS)
        .emitWithAck(room ? 'room:send' : 'message:send', { ...targetOf(key), content, clientMsgId });
      if (!ack || ack.error || !ack.id) dispatch({ type: 'message/failed', key, clientMsgId, error: errorOf(ack) });
      else dispatch({ type: 'message/ack', key, clientMsgId, message: ack });
    } catch {
      const error = { code: 'timeout', message: 'No answer from the server.' };
      dispatch({ type: 'message/failed', key, clientMsgId, error });
    }
  }, []);

  /** Sends `content` into conversation `key`; it shows at once as pending. */
  const send = useCallback(
    (key, content) => {
      const clientMsgId = newClientMsgId();
      const createdAt = new Date().toISOString();
      stoppedTyping();
      dispatch({ type: 'message/pending', key, message: { clientMsgId, content, createdAt } });
      deliver(key, clientMsgId, content);
    },
    [deliver, stoppedTyping],
  );

  /** Sends a failed message again under the same `clientMsgId`, so the server can never store it twice. */
  const retry = useCallback(
    (key, clientMsgId) => {
      const entry = findOutgoing(stateRef.current.threads[key]?.messages ?? [], clientMsgId);
      if (!entry || entry.status !== 'failed') return;
      dispatch({ type: 'message/retry', key, clientMsgId });
      deliver(key, clientMsgId, entry.content);
    },
    [deliver],
  );

  /** Opens a conversation (or closes it with null), loading what it needs the first time. */
  const open = useCallback(
    (key) => {
      if (typingState.current && typingState.current.key !== key) stoppedTyping();
      dispatch({ type: 'active', key });
      if (key && socketRef.current?.connected) prepare(key);
    },
    [stoppedTyping, prepare],
  );

  const loadOlder = useCallback((key) => loadThread(key, { older: true }), [loadThread]);

  /** Runs a room command; its room answer updates the state at once (the `room:updated` event may come later). */
  const roomCommand = useCallback(async (event, payload) => {
    const socket = socketRef.current;
    if (!socket?.connected) throw new SocketError({ code: 'offline', message: 'Not connected to the server.' });
    const result = await request(socket, event, payload);
    if (result?.left) {
      leaving.current.delete(payload.roomId);
      dispatch({ type: 'room/removed', roomId: payload.roomId, self: true });
    } else if (result?.id) {
      dispatch({ type: 'room/updated', room: result });
    } else {
      throw new SocketError({ code: 'internal', message: 'The server sent no answer.' });
    }
    return result;
  }, []);

  const createRoom = useCallback((name, memberIds) => roomCommand('room:create', { name, memberIds }), [roomCommand]);
  const renameRoom = useCallback((roomId, name) => roomCommand('room:rename', { roomId, name }), [roomCommand]);
  const addMembers = useCallback((roomId, userIds) => roomCommand('room:add', { roomId, userIds }), [roomCommand]);
  const removeMember = useCallback((roomId, userId) => roomCommand('room:remove', { roomId, userId }), [roomCommand]);
  const leaveRoom = useCallback(
    async (roomId) => {
      leaving.current.add(roomId);
      try {
        return await roomCommand('room:remove', { roomId, userId: me.id });
      } catch (error) {
        leaving.current.delete(roomId);
        throw error;
      }
    },
    [roomCommand, me.id],
  );

  const rememberUsers = useCallback((users) => dispatch({ type: 'users/remember', users }), []);
  const dismissNotice = useCallback(() => dispatch({ type: 'notice', notice: null }), []);

  return {
    state,
    open,
    send,
    retry,
    loadOlder,
    reload: loadThread,
    typed,
    stoppedTyping,
    createRoom,
    renameRoom,
    addMembers,
    removeMember,
    leaveRoom,
    rememberUsers,
    dismissNotice,
  };
}
