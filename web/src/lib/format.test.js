import { describe, expect, it } from 'vitest';
import { avatarHue, buildTimeline, dayLabel, initials, previewText } from './format.js';

describe('avatars', () => {
  it('uses up to two initials', () => {
    expect(initials('ada lovelace')).toBe('AL');
    expect(initials('grace_hopper')).toBe('GH');
    expect(initials('bob')).toBe('BO');
    expect(initials('alice_1bfee9c4')).toBe('AL');
    expect(initials('alice_e756c9f9')).toBe('AL');
    expect(initials('42')).toBe('42');
    expect(initials('')).toBe('?');
  });

  it('gives a user the same colour every time', () => {
    expect(avatarHue('alice')).toBe(avatarHue('alice'));
    expect(avatarHue('alice')).toBeGreaterThanOrEqual(0);
    expect(avatarHue('alice')).toBeLessThan(360);
  });
});

describe('days and groups', () => {
  const now = new Date(2026, 10, 29, 12, 0, 0);
  const local = (d, h, m = 0) => new Date(2026, 10, d, h, m).toISOString();

  it('names today and yesterday', () => {
    expect(dayLabel(local(29, 8), now)).toBe('Today');
    expect(dayLabel(local(28, 23), now)).toBe('Yesterday');
  });

  it('puts a separator before each day and groups close messages of one sender', () => {
    const messages = [
      { id: '1', senderId: 'a', createdAt: local(28, 10) },
      { id: '2', senderId: 'a', createdAt: local(29, 9) },
      { id: '3', senderId: 'a', createdAt: local(29, 9, 1) },
      { id: '4', senderId: 'b', createdAt: local(29, 9, 2) },
      { id: '5', senderId: 'b', createdAt: local(29, 9, 30) },
    ];
    const rows = buildTimeline(messages, now);
    expect(rows.map((r) => (r.type === 'day' ? r.label : `${r.message.id}${r.first ? '<' : ''}${r.last ? '>' : ''}`))).toEqual([
      'Yesterday',
      '1<>',
      'Today',
      '2<',
      '3>',
      '4<>',
      '5<>',
    ]);
  });

  it('keys a sent message by its clientMsgId so it keeps its row from pending to sent', () => {
    const [, row] = buildTimeline([{ clientMsgId: 'c1', id: 'm1', senderId: 'a', createdAt: local(29, 9) }], now);
    expect(row.key).toBe('c1');
  });
});

describe('previews', () => {
  it('marks own messages and shortens long ones to one line', () => {
    expect(previewText({ senderId: 'me', content: 'hi\nthere' }, 'me')).toBe('You: hi there');
    expect(previewText({ senderId: 'x', content: 'a'.repeat(100) }, 'me', 10)).toBe('aaaaaaaaa…');
    expect(previewText(null, 'me')).toBe('');
  });
});
