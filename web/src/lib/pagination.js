/**
 * Paging back through one conversation with `message:history` ({receiverId, before?, limit?}) or,
 * for a room, `room:history` ({roomId, before?, limit?}).
 *
 * The cursor is the id of the oldest message loaded; paging stops once a page comes back shorter
 * than asked for (or adds nothing new, which is what a server that ignores `before` would do).
 */
import { targetOf } from './keys.js';
import { mergeMessages } from './messages.js';

/** Messages asked for per `message:history` call (the server allows 1..100). */
export const PAGE_SIZE = 50;

/** A conversation nothing has been loaded for yet. */
export function emptyThread() {
  return { messages: [], loaded: false, loading: false, loadingOlder: false, hasMore: true, error: null };
}

/** The id of the oldest stored message in a list, or undefined when none is stored yet. */
export function oldestId(messages) {
  return messages.find((entry) => entry.id)?.id;
}

/** The payload of the next history call for conversation `key`: the latest page, or the one before the oldest loaded. */
export function historyRequest(key, thread, { older = false, limit = PAGE_SIZE } = {}) {
  const request = { ...targetOf(key), limit };
  const before = older ? oldestId(thread.messages) : undefined;
  if (before) request.before = before;
  return request;
}

/** Whether scrolling up should ask for another page. */
export function canLoadOlder(thread) {
  return Boolean(thread?.loaded && thread.hasMore && !thread.loading && !thread.loadingOlder);
}

/** The thread after a page of history (oldest first) came back for `historyRequest`. */
export function applyHistoryPage(thread, page, { older = false, limit = PAGE_SIZE, myId } = {}) {
  const list = Array.isArray(page) ? page : [];
  const messages = mergeMessages(thread.messages, list, { older: true, myId });
  const known = new Set(thread.messages.map((entry) => entry.id).filter(Boolean));
  const added = list.filter((message) => message?.id && !known.has(message.id)).length;
  // A first page that only repeats what message:new already brought still says nothing about older ones.
  const hasMore = list.length >= limit && (added > 0 || !older);
  return {
    ...thread,
    messages,
    loaded: true,
    loading: false,
    loadingOlder: false,
    error: null,
    hasMore: older || !thread.loaded ? hasMore : thread.hasMore,
  };
}
