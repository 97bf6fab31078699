/**
 * Pure functions over one conversation's message list.
 *
 * An entry is a server message (`{id, content, senderId, receiverId, createdAt}`, or `roomId` instead
 * of `receiverId` in a room, with `senderUsername` when the server sent it) plus client fields:
 * `status` ('sent' | 'pending' | 'failed'), `clientMsgId` for messages this tab sent, `error` for a
 * failed send, `live` when it arrived in real time (the view animates only those), and `claimed`, the
 * server copy a pending entry adopted from a `message:new` that overtook its ack.
 *
 * Confirmed entries (with an `id`) are ordered by `createdAt`; entries still waiting for the server
 * stay below them in the order they were written, so client clock skew never reorders the thread.
 */

/** Milliseconds since the epoch of an ISO time stamp; 0 when it cannot be read. */
export function timeOf(value) {
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? 0 : ms;
}

/** Confirmed entries by time (stable for ties), then unconfirmed ones in their current order. */
export function sortMessages(list) {
  const confirmed = [];
  const unconfirmed = [];
  for (const entry of list) (entry.id ? confirmed : unconfirmed).push(entry);
  confirmed.sort((a, b) => timeOf(a.createdAt) - timeOf(b.createdAt));
  return confirmed.concat(unconfirmed);
}

function toEntry(message, live) {
  const { id, content, senderId, receiverId, roomId, createdAt, senderUsername } = message;
  const entry = { id, content, senderId, createdAt, status: 'sent', live: Boolean(live) };
  if (roomId) entry.roomId = roomId;
  else entry.receiverId = receiverId;
  if (senderUsername) entry.senderUsername = senderUsername;
  return entry;
}

function sameConversation(a, b) {
  return a.roomId ? a.roomId === b.roomId : !b.roomId && a.receiverId === b.receiverId;
}

/** A pending or timed-out send that a server copy of the same text may belong to. */
function isClaimable(entry, message) {
  if (entry.id || !entry.clientMsgId) return false;
  const waiting = entry.status === 'pending' || (entry.status === 'failed' && entry.error?.code === 'timeout');
  return waiting && sameConversation(entry, message) && entry.content === message.content;
}

/**
 * Merges server messages (history page, sync page or `message:new`) into a list, deduplicated by id.
 *
 * `older: true` puts the incoming page before the existing entries when two share a time stamp
 * (a page of history is older than what is loaded). With `myId`, a message of ours that is not yet
 * known is adopted by a waiting send of the same text, so a `message:new` that arrives before the
 * ack never shows twice; `applyAck` corrects the rare wrong guess.
 */
export function mergeMessages(list, incoming, { older = false, myId, live = false } = {}) {
  if (!incoming?.length) return list;
  let next = list.slice();
  const index = new Map();
  next.forEach((entry, i) => entry.id && index.set(entry.id, i));
  const added = [];
  for (const message of incoming) {
    if (!message?.id) continue;
    const at = index.get(message.id);
    if (at !== undefined) {
      const current = next[at];
      next[at] = { ...current, ...toEntry(message, current.live), status: 'sent', error: undefined };
      continue;
    }
    const claimer = myId && message.senderId === myId ? next.findIndex((entry) => isClaimable(entry, message)) : -1;
    if (claimer !== -1) {
      const entry = next[claimer];
      next[claimer] = { ...entry, ...toEntry(message, entry.live), error: undefined, claimed: toEntry(message, live) };
      index.set(message.id, claimer);
      continue;
    }
    const entry = toEntry(message, live);
    if (older) {
      added.push(entry);
    } else {
      next.push(entry);
      index.set(message.id, next.length - 1);
    }
  }
  if (older && added.length) next = added.concat(next);
  return sortMessages(next);
}

/** Appends a message this tab is sending; it shows as pending until `applyAck` or `markFailed`. */
export function addPending(list, { clientMsgId, content, senderId, receiverId, roomId, createdAt }) {
  if (list.some((entry) => entry.clientMsgId === clientMsgId)) return list;
  return list.concat({
    clientMsgId,
    content,
    senderId,
    ...(roomId ? { roomId } : { receiverId }),
    createdAt,
    localCreatedAt: createdAt,
    status: 'pending',
    live: true,
  });
}

/**
 * Applies a successful ack: the send `clientMsgId` becomes the stored message.
 *
 * If another entry already holds that id, it was either a plain copy (from `message:new` or sync),
 * which this entry replaces, or a different send that wrongly adopted it, which goes back to waiting
 * for its own ack. If this entry had adopted some other message, that message is kept on its own.
 */
export function applyAck(list, clientMsgId, message) {
  const at = list.findIndex((entry) => entry.clientMsgId === clientMsgId);
  if (at === -1) return mergeMessages(list, [message]);
  const entry = list[at];
  const next = [];
  list.forEach((other, i) => {
    if (i === at) return;
    if (other.id !== message.id) return next.push(other);
    if (other.clientMsgId) next.push(unclaim(other));
  });
  const adopted = entry.claimed && entry.claimed.id !== message.id ? entry.claimed : null;
  next.push({ ...entry, ...toEntry(message, entry.live), clientMsgId, claimed: undefined, error: undefined });
  const merged = adopted ? mergeMessages(next, [adopted]) : next;
  return sortMessages(merged);
}

/** A send that adopted a message which turned out to be another send's: it waits for its own ack again. */
function unclaim(entry) {
  return { ...entry, id: undefined, createdAt: entry.localCreatedAt, status: 'pending', claimed: undefined };
}

/** Marks a send as failed (the ack carried `error`, or it timed out); it keeps its `clientMsgId` for a retry. */
export function markFailed(list, clientMsgId, error) {
  const at = list.findIndex((entry) => entry.clientMsgId === clientMsgId);
  if (at === -1) return list;
  const entry = list[at];
  if (entry.status === 'sent' && !entry.claimed) return list;
  const next = list.slice();
  next[at] = { ...entry, id: undefined, createdAt: entry.localCreatedAt, status: 'failed', error, claimed: undefined };
  // The adopted message was someone else's send (a server error means ours was not stored): keep it.
  return entry.claimed ? mergeMessages(sortMessages(next), [entry.claimed]) : sortMessages(next);
}

/** Puts a failed send back to pending before it is sent again with the same `clientMsgId`. */
export function markRetrying(list, clientMsgId) {
  return list.map((entry) =>
    entry.clientMsgId === clientMsgId && entry.status === 'failed'
      ? { ...entry, status: 'pending', error: undefined, live: true }
      : entry,
  );
}

/** The send a retry needs: the original text and receiver, never a new `clientMsgId`. */
export function findOutgoing(list, clientMsgId) {
  return list.find((entry) => entry.clientMsgId === clientMsgId) ?? null;
}
