/**
 * Finding people: the user directory (`GET /api/users?q=`), so offline people can be found too.
 * A server without the directory gives null, and the search falls back to the people this tab
 * already knows (online users and past conversations).
 */
import { useEffect, useMemo, useState } from 'react';
import { searchUsers } from '../api.js';

const DEBOUNCE_MS = 150;

/**
 * `{results, loading, directory}` for `query` (an empty query lists the first people the server
 * gives). `known` is `[{id, username, online}]`, the fallback; `enabled: false` skips the request.
 */
export function usePeopleSearch(token, query, { known = [], limit = 20, enabled = true, myId } = {}) {
  const [answer, setAnswer] = useState({ query: null, list: null, failed: false });
  const needle = query.trim();

  useEffect(() => {
    if (!enabled) return undefined;
    const controller = new AbortController();
    const timer = setTimeout(async () => {
      try {
        const list = await searchUsers(token, needle, { limit, signal: controller.signal });
        setAnswer({ query: needle, list, failed: false });
      } catch (error) {
        if (error?.name !== 'AbortError') setAnswer({ query: needle, list: null, failed: true });
      }
    }, DEBOUNCE_MS);
    return () => {
      clearTimeout(timer);
      controller.abort();
    };
  }, [token, needle, limit, enabled]);

  const answered = answer.query === needle;
  return useMemo(() => {
    if (answered && answer.list) {
      return { results: answer.list.filter((user) => user.id !== myId), loading: false, directory: true };
    }
    const lower = needle.toLowerCase();
    const fallback = known
      .filter((user) => user?.id && user.id !== myId && user.username && user.username.toLowerCase().includes(lower))
      .sort((a, b) => Number(b.online) - Number(a.online) || a.username.localeCompare(b.username))
      .slice(0, limit);
    return { results: fallback, loading: enabled && !answered, directory: false };
  }, [answered, answer.list, needle, known, myId, limit, enabled]);
}
