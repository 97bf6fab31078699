/**
 * The user's notification preferences, kept in localStorage per signed-in user: which
 * conversations are muted, whether desktop notifications are on, whether a sound plays (off by
 * default).
 */

export const DEFAULT_PREFS = Object.freeze({ muted: [], notifications: false, sound: false });

/** The storage key of a user's preferences. */
export function prefsKey(userId) {
  return `nexus.prefs.${userId}`;
}

/** Preferences from their stored text; anything unreadable gives the defaults. */
export function parsePrefs(text) {
  try {
    const value = JSON.parse(text ?? 'null');
    if (!value || typeof value !== 'object') return { ...DEFAULT_PREFS };
    return {
      muted: Array.isArray(value.muted) ? value.muted.filter((key) => typeof key === 'string') : [],
      notifications: value.notifications === true,
      sound: value.sound === true,
    };
  } catch {
    return { ...DEFAULT_PREFS };
  }
}

/** Whether conversation `key` is muted. */
export function isMuted(prefs, key) {
  return prefs.muted.includes(key);
}

/** The preferences with `key` muted or unmuted. */
export function setMuted(prefs, key, muted) {
  const rest = prefs.muted.filter((item) => item !== key);
  return { ...prefs, muted: muted ? [...rest, key] : rest };
}
