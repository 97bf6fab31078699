/**
 * Presentation helpers: initials and colours for avatars, time stamps, day separators and the
 * grouping of consecutive messages from one sender.
 */
import { timeOf } from './messages.js';

/** Consecutive messages from one sender closer than this share one group (one avatar, one time). */
export const GROUP_WINDOW_MS = 5 * 60 * 1000;

/**
 * Up to two letters for an avatar: "ada lovelace" → "AL", "grace_hopper" → "GH", "bob" → "BO",
 * "alice_42" → "AL", "bob_x9f3" → "BO" (a word with digits in it is a suffix, not a name).
 */
export function initials(name) {
  const words = String(name ?? '')
    .trim()
    .split(/[\s._-]+/)
    .filter(Boolean);
  if (words.length === 0) return '?';
  const named = words.filter((word) => /^\p{L}+$/u.test(word));
  if (named.length >= 2) return (named[0][0] + named[1][0]).toUpperCase();
  return Array.from(named[0] ?? words[0]).slice(0, 2).join('').toUpperCase();
}

/** A stable hue (0..359) for a user, so their avatar keeps its colour everywhere. */
export function avatarHue(key) {
  let hash = 0;
  for (const char of String(key ?? '')) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return hash % 360;
}

/** The local calendar day of a time stamp, as "YYYY-MM-DD". */
export function dayKey(value) {
  const date = new Date(timeOf(value));
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** "Today", "Yesterday", a weekday within the last week, else a date; `now` is injectable for tests. */
export function dayLabel(value, now = new Date()) {
  const date = new Date(timeOf(value));
  const startOf = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((startOf(now) - startOf(date)) / 86_400_000);
  if (days === 0) return 'Today';
  if (days === 1) return 'Yesterday';
  if (days > 1 && days < 7) return date.toLocaleDateString(undefined, { weekday: 'long' });
  const sameYear = date.getFullYear() === now.getFullYear();
  return date.toLocaleDateString(undefined, {
    weekday: 'short',
    month: 'short',
    day: 'numeric',
    ...(sameYear ? {} : { year: 'numeric' }),
  });
}

/** "14:05" (in the user's locale) for a message time stamp. */
export function formatTime(value) {
  return new Date(timeOf(value)).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** A short time for the sidebar: the time today, "Yesterday", else a date. */
export function formatShortDate(value, now = new Date()) {
  if (!value) return '';
  const label = dayLabel(value, now);
  if (label === 'Today') return formatTime(value);
  if (label === 'Yesterday') return label;
  return new Date(timeOf(value)).toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
}

/** The full date and time, for a tooltip. */
export function formatFull(value) {
  return new Date(timeOf(value)).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** One line of preview text for the sidebar. */
export function previewText(message, myId, max = 80) {
  if (!message) return '';
  const text = String(message.content ?? '').replace(/\s+/g, ' ').trim();
  const short = text.length > max ? `${text.slice(0, max - 1)}…` : text;
  return message.senderId === myId ? `You: ${short}` : short;
}

/**
 * The rows of a message list: a separator before each new day, then each message with `first` /
 * `last` telling whether it opens or closes a group of consecutive messages from one sender.
 */
export function buildTimeline(messages, now = new Date()) {
  const rows = [];
  let previousDay = null;
  messages.forEach((message, i) => {
    const day = dayKey(message.createdAt);
    if (day !== previousDay) {
      rows.push({ type: 'day', key: `day-${day}`, label: dayLabel(message.createdAt, now) });
      previousDay = day;
    }
    const before = messages[i - 1];
    const after = messages[i + 1];
    const joins = (a, b) =>
      Boolean(a && b) &&
      a.senderId === b.senderId &&
      dayKey(a.createdAt) === dayKey(b.createdAt) &&
      Math.abs(timeOf(b.createdAt) - timeOf(a.createdAt)) < GROUP_WINDOW_MS;
    rows.push({
      type: 'message',
      key: message.clientMsgId ?? message.id,
      message,
      first: !joins(before, message),
      last: !joins(message, after),
    });
  });
  return rows;
}
