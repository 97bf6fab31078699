/**
 * Whether a new message should raise a desktop notification and a sound, and what it says.
 *
 * Only a live message from someone else, in a conversation the user has not muted, while the tab
 * is hidden. A notification also needs the user to have switched them on (which asks the browser's
 * permission from a visible control, never on load) and the browser's permission; the sound is
 * its own switch, off by default.
 */

const PREVIEW_CHARS = 120;

/** `{notify, sound}` for one incoming message. */
export function alertsFor({ message, myId, hidden, muted, notifications, permission, sound }) {
  const relevant = Boolean(message?.id) && message.senderId !== myId && hidden && !muted;
  return {
    notify: relevant && Boolean(notifications) && permission === 'granted',
    sound: relevant && Boolean(sound),
  };
}

/**
 * The notification for a message: the sender (and room) as title, a one-line preview as body,
 * tagged by conversation so a burst replaces rather than piles up.
 */
export function notificationContent({ message, key, senderName, roomName }) {
  const text = String(message?.content ?? '').replace(/\s+/g, ' ').trim();
  const body = text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS - 1)}…` : text;
  const sender = senderName || 'Someone';
  return { title: roomName ? `${sender} in ${roomName}` : sender, body, tag: `nexus:${key}` };
}
