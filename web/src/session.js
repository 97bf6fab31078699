/** The signed-in session in localStorage: the JWT and the user it belongs to. */

const TOKEN_KEY = 'nexus.token';
const USER_KEY = 'nexus.user';

/** The stored session, or null. */
export function loadSession() {
  try {
    const token = localStorage.getItem(TOKEN_KEY);
    const user = JSON.parse(localStorage.getItem(USER_KEY) ?? 'null');
    return token && user?.id ? { token, user } : null;
  } catch {
    return null;
  }
}

/** Keeps a session from `POST /auth/login`. */
export function saveSession({ token, user }) {
  localStorage.setItem(TOKEN_KEY, token);
  localStorage.setItem(USER_KEY, JSON.stringify({ id: user.id, username: user.username }));
}

/** Forgets the session (sign out, or the server refused the token). */
export function clearSession() {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(USER_KEY);
  sessionStorage.removeItem(ACTIVE_KEY);
}

/** Whether a `storage` event from another tab touched the session. */
export function isSessionKey(key) {
  return key === null || key === TOKEN_KEY || key === USER_KEY;
}

const ACTIVE_KEY = 'nexus.activePeer';

/** The conversation that was open in this tab, so a reload reopens it. */
export function loadActivePeer() {
  return sessionStorage.getItem(ACTIVE_KEY);
}

export function saveActivePeer(peerId) {
  if (peerId) sessionStorage.setItem(ACTIVE_KEY, peerId);
  else sessionStorage.removeItem(ACTIVE_KEY);
}
