/**
 * The catch-up cursor for `message:sync` ({after, limit?} → {messages, hasMore}).
 *
 * The cursor is the newest message the client has seen in any conversation. After a reconnect the
 * client asks for everything committed after it, page by page while `hasMore`, each page continuing
 * after the last message of the previous one; repeats are harmless because every list dedupes by id.
 */
import { timeOf } from './messages.js';

/** Messages asked for per `message:sync` call. */
export const SYNC_PAGE_SIZE = 100;

/** The cursor moved forward to the newest of `messages` ({id, createdAt}), never backwards. */
export function advanceCursor(cursor, messages) {
  let next = cursor ?? null;
  for (const message of messages ?? []) {
    if (!message?.id || !message.createdAt) continue;
    if (!next || timeOf(message.createdAt) >= timeOf(next.createdAt)) {
      next = { id: message.id, createdAt: message.createdAt };
    }
  }
  return next;
}

/** The first `message:sync` payload after a reconnect, or null when nothing was ever seen. */
export function syncRequest(cursor, limit = SYNC_PAGE_SIZE) {
  return cursor?.id ? { after: cursor.id, limit } : null;
}

/**
 * What to do after one sync page: `next` is the following payload, or null when caught up.
 * A page that says `hasMore` but is empty (or ends where it started) stops the loop rather than spin.
 */
export function afterSyncPage(request, result, limit = SYNC_PAGE_SIZE) {
  const messages = Array.isArray(result?.messages) ? result.messages : [];
  const last = messages.at(-1);
  const next = result?.hasMore && last?.id && last.id !== request.after ? { after: last.id, limit } : null;
  return { messages, next };
}
