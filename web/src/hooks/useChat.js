/**
 * The live half of the client: one socket per session, every server event turned into a reducer
 * action, and the commands the UI needs (open a conversation, page back, send, retry).
 */
import { useCallback, useEffect, useEffectEvent, useLayoutEffect, useReducer, useRef } from 'react';
import { io } from 'socket.io-client';
import { ApiError, fetchConversations, fetchInstance, SERVER_ORIGIN } from '../api.js';
import { chatReducer, initialChatState } from '../lib/chatState.js';
import { newClientMsgId } from '../lib/ids.js';
import { findOutgoing } from '../lib/messages.js';
import { canLoadOlder, emptyThread, historyRequest, PAGE_SIZE } from '../lib/pagination.js';
import { afterSyncPage, syncRequest } from '../lib/sync.js';

/** How long a send may wait for its ack before it shows as failed (a retry cannot duplicate it). */
const SEND_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 15_000;

function errorOf(ack) {
  const error = ack?.error;
  if (!error) return { code: 'internal', message: 'The server sent no answer.' };
  if (typeof error === 'object') return { code: error.code ?? 'error', message: error.message ?? 'Message not sent.' };
  return { code: 'error', message: String(error) };
}

async function request(socket, event, payload) {
  const result = await socket.timeout(REQUEST_TIMEOUT_MS).emitWithAck(event, payload);
  if (result && !Array.isArray(result) && result.error) throw new Error(errorOf(result).message);
  return result;
}

function presenceId(payload) {
  return typeof payload === 'string' ? payload : payload?.id;
}

/**
 * Chat state and commands for a signed-in user. `onUnauthorized` runs when the server refuses the
 * token (expired, or signed by another secret): the caller signs out.
 */
export function useChat({ token, me, initialPeerId, onUnauthorized }) {
  const [state, dispatch] = useReducer(chatReducer, me, (user) => ({
    ...initialChatState(user),
    activePeerId: initialPeerId ?? null,
  }));
  const socketRef = useRef(null);
  const stateRef = useRef(state);
  const inflight = useRef(new Set());

  useLayoutEffect(() => {
    stateRef.current = state;
  });

  const loadThread = useCallback(async (peerId, { older = false } = {}) => {
    const socket = socketRef.current;
    const key = `${peerId}:${older ? 'older' : 'latest'}`;
    if (!socket || !peerId || inflight.current.has(key)) return;
    const thread = stateRef.current.threads[peerId] ?? emptyThread();
    if (older && !canLoadOlder(thread)) return;
    inflight.current.add(key);
    dispatch({ type: 'thread/loading', peerId, older });
    try {
      const payload = historyRequest(peerId, thread, { older, limit: PAGE_SIZE });
      const page = await request(socket, 'message:history', payload);
      dispatch({ type: 'thread/page', peerId, page: Array.isArray(page) ? page : [], older, limit: PAGE_SIZE });
    } catch (error) {
      dispatch({ type: 'thread/error', peerId, error: error.message || 'Could not load messages.' });
    } finally {
      inflight.current.delete(key);
    }
  }, []);

  const refreshConversations = useEffectEvent(async (signal) => {
    try {
      const list = await fetchConversations(token, signal);
      dispatch({ type: 'conversations/loaded', list });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) onUnauthorized();
      else if (error?.name !== 'AbortError') dispatch({ type: 'conversations/loaded', list: [] });
    }
  });

  const refreshInstance = useEffectEvent(async () => {
    try {
      dispatch({ type: 'instance', instance: await fetchInstance(token) });
    } catch {
      dispatch({ type: 'instance', instance: null });
    }
  });

  /** Catches up after a reconnect: `message:sync` from the newest message seen, page by page. */
  const catchUp = useEffectEvent(async (socket) => {
    let next = syncRequest(state.cursor);
    const activePeerId = state.activePeerId;
    refreshConversations();
    if (!next) {
      // Nothing was ever seen, so there is no cursor: reload what is on screen instead.
      if (activePeerId) loadThread(activePeerId);
      return;
    }
    try {
      while (next) {
        const step = afterSyncPage(next, await request(socket, 'message:sync', next));
        if (step.messages.length) dispatch({ type: 'message/received', messages: step.messages });
        next = step.next;
      }
    } catch {
      if (activePeerId) loadThread(activePeerId);
    }
  });

  const unauthorized = useEffectEvent(() => onUnauthorized());

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
      else {
        const peerId = stateRef.current.activePeerId;
        const thread = stateRef.current.threads[peerId];
        if (peerId && !thread?.loaded) loadThread(peerId);
      }
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
    socket.on('message:new', (message) => dispatch({ type: 'message/received', messages: [message], live: true }));
    socket.on('user:online', (user) => dispatch({ type: 'presence/online', user }));
    socket.on('user:offline', (payload) => dispatch({ type: 'presence/offline', id: presenceId(payload) }));

    return () => {
      clearTimeout(connectTimer);
      socket.removeAllListeners();
      socket.disconnect();
      socketRef.current = null;
    };
  }, [token, loadThread]);

  const deliver = useCallback(async (peerId, clientMsgId, content) => {
    const socket = socketRef.current;
    if (!socket) return;
    try {
      const ack = await socket
        .timeout(SEND_TIMEOUT_MS)
        .emitWithAck('message:send', { receiverId: peerId, content, clientMsgId });
      if (!ack || ack.error || !ack.id) dispatch({ type: 'message/failed', peerId, clientMsgId, error: errorOf(ack) });
      else dispatch({ type: 'message/ack', peerId, clientMsgId, message: ack });
    } catch {
      const error = { code: 'timeout', message: 'No answer from the server.' };
      dispatch({ type: 'message/failed', peerId, clientMsgId, error });
    }
  }, []);

  /** Sends `content` to `peerId`; it shows at once as pending. */
  const send = useCallback(
    (peerId, content) => {
      const clientMsgId = newClientMsgId();
      const createdAt = new Date().toISOString();
      dispatch({ type: 'message/pending', message: { clientMsgId, content, receiverId: peerId, createdAt } });
      deliver(peerId, clientMsgId, content);
    },
    [deliver],
  );

  /** Sends a failed message again under the same `clientMsgId`, so the server can never store it twice. */
  const retry = useCallback(
    (peerId, clientMsgId) => {
      const entry = findOutgoing(stateRef.current.threads[peerId]?.messages ?? [], clientMsgId);
      if (!entry || entry.status !== 'failed') return;
      dispatch({ type: 'message/retry', peerId, clientMsgId });
      deliver(peerId, clientMsgId, entry.content);
    },
    [deliver],
  );

  /** Opens a conversation (or closes it with null), loading its latest page the first time. */
  const open = useCallback(
    (peerId) => {
      dispatch({ type: 'active', peerId });
      const thread = stateRef.current.threads[peerId];
      if (peerId && !thread?.loaded && !thread?.loading) loadThread(peerId);
    },
    [loadThread],
  );

  const loadOlder = useCallback((peerId) => loadThread(peerId, { older: true }), [loadThread]);

  return { state, open, send, retry, loadOlder, reload: loadThread };
}
