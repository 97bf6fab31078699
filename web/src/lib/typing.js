/**
 * Typing indicators, both ways.
 *
 * Sending: `typing: true` when the user starts typing into a conversation, again at most every
 * 3 s while they keep typing, and `typing: false` when they send, clear the box, leave the box or
 * switch conversation. Receiving: a typist counts as typing until 6 s after their last `true`, a
 * `false`, or their next message in that conversation.
 */

/** While typing, `typing: true` is repeated this often (on input), so peers do not time it out. */
export const TYPING_REFRESH_MS = 3_000;
/** A typist who said nothing more for this long is treated as stopped. */
export const TYPING_TIMEOUT_MS = 6_000;

/**
 * The sender's next state and what to emit after the text of conversation `key` changed.
 * `state` is null (not typing) or `{key, sentAt}`; `emits` is a list of `{key, typing}`.
 */
export function typingInput(state, { key, text, now }) {
  const emits = [];
  let next = state;
  if (next && next.key !== key) {
    emits.push({ key: next.key, typing: false });
    next = null;
  }
  if (!text.trim()) {
    if (next) emits.push({ key: next.key, typing: false });
    return { state: null, emits };
  }
  if (!next || now - next.sentAt >= TYPING_REFRESH_MS) {
    emits.push({ key, typing: true });
    next = { key, sentAt: now };
  }
  return { state: next, emits };
}

/** Stops typing (send, blur, switching away): `typing: false` if a `true` is outstanding. */
export function typingStop(state) {
  return { state: null, emits: state ? [{ key: state.key, typing: false }] : [] };
}

/**
 * Who types where after a server `typing` event, `{conversation key: {userId: {username, until}}}`.
 * `key` is the conversation the event belongs to.
 */
export function applyTypingEvent(typing, { key, userId, username, typing: isTyping }, now) {
  if (!key || !userId) return typing;
  const current = typing[key] ?? {};
  if (!isTyping) {
    if (!current[userId]) return typing;
    return withoutTypist(typing, key, userId);
  }
  const name = username || current[userId]?.username || '';
  return { ...typing, [key]: { ...current, [userId]: { username: name, until: now + TYPING_TIMEOUT_MS } } };
}

/** The typists without `userId` in `key` (they sent a message, stopped, or left the room). */
export function withoutTypist(typing, key, userId) {
  const current = typing[key];
  if (!current?.[userId]) return typing;
  const rest = { ...current };
  delete rest[userId];
  const next = { ...typing };
  if (Object.keys(rest).length) next[key] = rest;
  else delete next[key];
  return next;
}

/** The typists still typing at `now` (those whose 6 s ran out are dropped). */
export function expireTyping(typing, now) {
  let next = typing;
  for (const [key, typists] of Object.entries(typing)) {
    for (const [userId, typist] of Object.entries(typists)) {
      if (typist.until <= now) next = withoutTypist(next, key, userId);
    }
  }
  return next;
}

/** When the next typist runs out, or null when nobody types. */
export function nextTypingExpiry(typing) {
  let next = null;
  for (const typists of Object.values(typing)) {
    for (const typist of Object.values(typists)) if (next === null || typist.until < next) next = typist.until;
  }
  return next;
}

/** The names typing in one conversation, in a stable order. */
export function typingNames(typing, key) {
  return Object.values(typing[key] ?? {})
    .map((typist) => typist.username)
    .filter(Boolean)
    .sort((a, b) => a.localeCompare(b));
}

/** "alice is typing…", "alice and bob are typing…", "alice, bob and 2 others are typing…", or ''. */
export function typingLine(names) {
  if (!names.length) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  const others = names.length - 2;
  return `${names[0]}, ${names[1]} and ${others} ${others === 1 ? 'other' : 'others'} are typing…`;
}
