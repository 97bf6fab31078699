/**
 * The REST half of the contract: auth, the caller's conversations, the user directory, room details
 * and the instance indicator.
 * Errors carry the server's NestJS body (`{statusCode, message, error}`) as a readable message.
 */

/** Where REST and the socket live: the page's own origin unless the build says otherwise. */
export const SERVER_ORIGIN = import.meta.env.VITE_SERVER_ORIGIN || window.location.origin;

/** A failed request, with the HTTP status and the server's message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

function messageOf(body, status) {
  const text = Array.isArray(body?.message) ? body.message.join(', ') : body?.message;
  if (typeof text === 'string' && text) return text;
  if (status >= 500) return 'The server had a problem. Please try again.';
  return `Request failed (${status})`;
}

async function request(path, { method = 'GET', body, token, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(`${SERVER_ORIGIN}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error?.name === 'AbortError') throw error;
    throw new ApiError(0, 'Cannot reach the server. Check your connection.');
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, messageOf(data, response.status));
  return data;
}

/** `POST /auth/register` → `{id, username, status, createdAt}`. */
export function register(username, password) {
  return request('/auth/register', { method: 'POST', body: { username, password } });
}

/** `POST /auth/login` → `{access_token, user: {id, username}}`. */
export function login(username, password) {
  return request('/auth/login', { method: 'POST', body: { username, password } });
}

/** `GET /api/me` → `{id, username, createdAt}`. */
export function fetchMe(token, signal) {
  return request('/api/me', { token, signal });
}

/**
 * `GET /api/conversations` → direct entries `{peer, lastMessage, unread, peerReadUpTo}` and room
 * entries `{room: {id, name, memberCount}, lastMessage, unread}`, most recent first.
 */
export function fetchConversations(token, signal) {
  return request('/api/conversations', { token, signal });
}

/** `GET /api/instance` → `{instanceId, version}` of the instance behind this origin. */
export function fetchInstance(token, signal) {
  return request('/api/instance', { token, signal });
}

/**
 * `GET /api/users?q=&limit=` → `[{id, username, online}]`: users whose name starts with `q`, the
 * caller excluded, online first. Null when the server has no directory (an older server answers
 * unknown paths with the app's HTML), so callers fall back to the people they already know.
 */
export async function searchUsers(token, query, { limit = 20, signal } = {}) {
  const params = new URLSearchParams({ q: query, limit: String(limit) });
  const list = await request(`/api/users?${params}`, { token, signal });
  return Array.isArray(list) ? list.filter((user) => user?.id && typeof user.username === 'string') : null;
}

/** `GET /api/rooms/{roomId}` → the room, each member with `readUpTo`. 404 for a room the caller is not in. */
export function fetchRoom(token, roomId, signal) {
  return request(`/api/rooms/${encodeURIComponent(roomId)}`, { token, signal });
}
