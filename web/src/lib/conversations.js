/**
 * The sidebar: conversations from `GET /api/conversations` kept newest first as messages come and go,
 * plus online users the caller has not talked to yet.
 */
import { timeOf } from './messages.js';

function byNewest(a, b) {
  return timeOf(b.lastMessage?.createdAt) - timeOf(a.lastMessage?.createdAt);
}

/** The API's conversations, validated and sorted newest first. */
export function normalizeConversations(list) {
  if (!Array.isArray(list)) return [];
  return list
    .filter((item) => item?.peer?.id)
    .map((item) => ({
      peer: { id: item.peer.id, username: item.peer.username, online: Boolean(item.peer.online) },
      lastMessage: item.lastMessage ?? null,
    }))
    .sort(byNewest);
}

/** The other side of a message, seen from `myId`. */
export function peerIdOf(message, myId) {
  return message.senderId === myId ? message.receiverId : message.senderId;
}

/**
 * The conversations after a message to or from the caller: its conversation moves to the top with
 * the message as preview (unless it already shows a newer one); a first message creates it.
 */
export function applyMessageToConversations(conversations, message, { myId, peer }) {
  if (!message?.id) return conversations;
  const peerId = peerIdOf(message, myId);
  const at = conversations.findIndex((item) => item.peer.id === peerId);
  const current = at === -1 ? null : conversations[at];
  if (current?.lastMessage && timeOf(current.lastMessage.createdAt) > timeOf(message.createdAt)) {
    return conversations;
  }
  const { id, content, senderId, receiverId, createdAt } = message;
  const updated = {
    peer: current?.peer ?? { id: peerId, username: peer?.username ?? '', online: Boolean(peer?.online) },
    lastMessage: { id, content, senderId, receiverId, createdAt },
  };
  if (!updated.peer.username && peer?.username) updated.peer = { ...updated.peer, username: peer.username };
  const rest = conversations.filter((item) => item.peer.id !== peerId);
  return [updated, ...rest].sort(byNewest);
}

/**
 * The sidebar rows: conversations newest first, then online users without a conversation by name.
 * Presence comes from the socket (`online`, a set of ids) once `user:init` answered, before that
 * from the API's `peer.online`. `query` filters by username.
 */
export function sidebarEntries({ conversations, onlineUsers, online, presenceReady, myId, unread = {}, query = '' }) {
  const needle = query.trim().toLowerCase();
  const matches = (name) => !needle || (name ?? '').toLowerCase().includes(needle);
  const isOnline = (id, fallback) => (presenceReady ? online.has(id) : Boolean(fallback));
  const rows = [];
  const seen = new Set([myId]);
  for (const { peer, lastMessage } of conversations) {
    if (seen.has(peer.id)) continue;
    seen.add(peer.id);
    if (!matches(peer.username)) continue;
    rows.push({
      id: peer.id,
      username: peer.username,
      online: isOnline(peer.id, peer.online),
      lastMessage,
      unread: unread[peer.id] ?? 0,
    });
  }
  const others = onlineUsers
    .filter((user) => user?.id && !seen.has(user.id) && online.has(user.id) && matches(user.username))
    .sort((a, b) => a.username.localeCompare(b.username));
  for (const user of others) {
    seen.add(user.id);
    rows.push({ id: user.id, username: user.username, online: true, lastMessage: null, unread: unread[user.id] ?? 0 });
  }
  return rows;
}
