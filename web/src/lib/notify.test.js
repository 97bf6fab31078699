import { describe, expect, it } from 'vitest';
import { alertsFor, notificationContent } from './notify.js';
import { DEFAULT_PREFS, isMuted, parsePrefs, setMuted } from './prefs.js';

const message = { id: 'm1', content: 'Lunch at\n  noon?', senderId: 'bob', receiverId: 'me', createdAt: '2026-01-01T00:00:00.000Z' };
const base = { message, myId: 'me', hidden: true, muted: false, notifications: true, permission: 'granted', sound: false };

describe('notification decisions', () => {
  it('notify for a message from someone else while the tab is hidden', () => {
    expect(alertsFor(base)).toEqual({ notify: true, sound: false });
  });

  it('stay quiet while the tab is visible, for muted conversations and for the user’s own messages', () => {
    expect(alertsFor({ ...base, hidden: false })).toEqual({ notify: false, sound: false });
    expect(alertsFor({ ...base, muted: true, sound: true })).toEqual({ notify: false, sound: false });
    expect(alertsFor({ ...base, message: { ...message, senderId: 'me' }, sound: true })).toEqual({ notify: false, sound: false });
  });

  it('need the user to have switched them on and the browser’s permission; the sound is its own switch', () => {
    expect(alertsFor({ ...base, notifications: false }).notify).toBe(false);
    expect(alertsFor({ ...base, permission: 'default' }).notify).toBe(false);
    expect(alertsFor({ ...base, permission: 'denied', sound: true })).toEqual({ notify: false, sound: true });
  });

  it('say who wrote (and where) with a one-line preview, one per conversation', () => {
    expect(notificationContent({ message, key: 'bob', senderName: 'bob' })).toEqual({ title: 'bob', body: 'Lunch at noon?', tag: 'nexus:bob' });
    const long = { ...message, content: 'x'.repeat(300) };
    const room = notificationContent({ message: long, key: 'room:r1', senderName: 'bob', roomName: 'Team' });
    expect(room.title).toBe('bob in Team');
    expect(room.body).toHaveLength(120);
    expect(room.body.endsWith('…')).toBe(true);
  });
});

describe('notification preferences', () => {
  it('default to nothing muted, notifications and sound off', () => {
    expect(parsePrefs(null)).toEqual(DEFAULT_PREFS);
    expect(parsePrefs('{broken')).toEqual(DEFAULT_PREFS);
    expect(parsePrefs('{"muted":["a",3],"sound":true}')).toEqual({ muted: ['a'], notifications: false, sound: true });
  });

  it('mute and unmute one conversation', () => {
    const muted = setMuted(DEFAULT_PREFS, 'room:r1', true);
    expect(isMuted(muted, 'room:r1')).toBe(true);
    expect(isMuted(muted, 'bob')).toBe(false);
    expect(isMuted(setMuted(muted, 'room:r1', false), 'room:r1')).toBe(false);
  });
});
