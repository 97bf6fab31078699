import { avatarHue, initials } from '../lib/format.js';

/** A round avatar with the user's initials, optionally with a presence dot. */
export function Avatar({ name, id, size = 40, online }) {
  const hue = avatarHue(id ?? name);
  return (
    <span
      className="avatar"
      style={{ '--size': `${size}px`, '--hue': hue }}
      aria-hidden="true"
    >
      {initials(name)}
      {online !== undefined && (
        <span className="presence-dot" data-testid="presence-dot" data-online={String(Boolean(online))} />
      )}
    </span>
  );
}
