/**
 * Read cursors on the client: where a participant's cursor (a message id) sits in a loaded thread,
 * what it says about each of the caller's messages (✓ sent / ✓✓ read in direct chats, "Seen by N"
 * in rooms), how many messages are unread after the caller's own cursor, and where the "new
 * messages" divider goes.
 *
 * Message ids are opaque, so a cursor is placed by finding its message in the thread (ordered by
 * time). A cursor whose message is not loaded is older than everything loaded (messages reach the
 * client before anyone can read them), so it marks nothing loaded as read.
 */

/** Index in `messages` of the message a cursor points at, or -1. */
export function cursorIndex(messages, upTo) {
  if (!upTo) return -1;
  for (let i = messages.length - 1; i >= 0; i -= 1) if (messages[i].id === upTo) return i;
  return -1;
}

/**
 * The later of two cursors of one participant: a cursor only moves forward, but a REST snapshot may
 * be older than an event heard meanwhile. When only one of them is in the thread, the other is older
 * than the loaded window; when neither is, the incoming one wins.
 */
export function laterCursor(messages, current, incoming) {
  if (!incoming) return current ?? null;
  if (!current || current === incoming) return incoming;
  const ci = cursorIndex(messages, current);
  const ii = cursorIndex(messages, incoming);
  if (ii === -1 && ci === -1) return incoming;
  if (ii === -1) return current;
  if (ci === -1) return incoming;
  return ii >= ci ? incoming : current;
}

/**
 * The receipt of each of the caller's stored messages in a direct chat: 'read' up to the peer's
 * cursor, else 'sent'. Returns a map id → receipt.
 */
export function directReceipts(messages, myId, peerUpTo) {
  const readUpTo = cursorIndex(messages, peerUpTo);
  const receipts = {};
  messages.forEach((message, i) => {
    if (!message.id || message.senderId !== myId || message.status !== 'sent') return;
    receipts[message.id] = i <= readUpTo ? 'read' : 'sent';
  });
  return receipts;
}

/**
 * "Seen by" for a room: the caller's latest stored message and the members (never the caller)
 * whose cursor is at or after it. `reads` maps user id → cursor; `members` is the room's list.
 * Null when the caller has sent nothing stored in the loaded thread.
 */
export function seenBy(messages, myId, reads = {}, members = []) {
  let at = -1;
  for (let i = messages.length - 1; i >= 0; i -= 1) {
    if (messages[i].id && messages[i].senderId === myId && messages[i].status === 'sent') {
      at = i;
      break;
    }
  }
  if (at === -1) return null;
  const viewers = members.filter((member) => member.id !== myId && cursorIndex(messages, reads[member.id]) >= at);
  return { messageId: messages[at].id, viewers };
}

/**
 * Messages from others after the caller's cursor `upTo` in a thread; null when the cursor is not
 * in it (the count cannot be told from what is loaded).
 */
export function unreadAfter(messages, myId, upTo) {
  const at = cursorIndex(messages, upTo);
  if (at === -1) return null;
  let count = 0;
  for (let i = at + 1; i < messages.length; i += 1) if (messages[i].id && messages[i].senderId !== myId) count += 1;
  return count;
}

/**
 * The first unread message when a conversation opens with `count` unread: the count-th newest
 * message from others (the divider goes above it). When fewer are loaded, the oldest loaded one.
 */
export function firstUnreadId(messages, myId, count) {
  if (!count) return null;
  let seen = 0;
  let earliest = null;
  for (let i = messages.length - 1; i >= 0; i -= 1) {
    const message = messages[i];
    if (!message.id || message.senderId === myId) continue;
    seen += 1;
    earliest = message.id;
    if (seen === count) return message.id;
  }
  return earliest;
}

/** The newest stored message of a thread (what marking it read moves the cursor to), or null. */
export function newestStored(messages) {
  for (let i = messages.length - 1; i >= 0; i -= 1) if (messages[i].id) return messages[i];
  return null;
}
