import { describe, expect, it } from 'vitest';
import { chatReducer, initialChatState, totalUnread } from './chatState.js';
import { roomKey } from './keys.js';
import { cursorIndex, directReceipts, firstUnreadId, laterCursor, seenBy, unreadAfter } from './receipts.js';

const me = { id: 'me', username: 'alice' };
const at = (s) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const dm = (id, senderId, s) => ({ id, content: id, senderId, receiverId: senderId === 'me' ? 'bob' : 'me', createdAt: at(s) });
const sent = (m) => ({ ...m, status: 'sent' });

function run(actions, state = initialChatState(me)) {
  return actions.reduce(chatReducer, state);
}

describe('unread counts', () => {
  it('take the server count from GET /api/conversations, plus messages that arrived after it counted', () => {
    const state = run([
      { type: 'message/received', messages: [dm('m4', 'bob', 4)], live: true },
      {
        type: 'conversations/loaded',
        list: [
          { peer: { id: 'bob', username: 'bob', online: true }, lastMessage: dm('m3', 'bob', 3), unread: 3, peerReadUpTo: null },
          { room: { id: 'r1', name: 'Team', memberCount: 4 }, lastMessage: null, unread: 0 },
        ],
      },
    ]);
    expect(state.unread.bob).toBe(4);
    expect(state.unread[roomKey('r1')] ?? 0).toBe(0);
  });

  it('keep counting locally when the server sends no count', () => {
    const state = run([
      { type: 'message/received', messages: [dm('m1', 'bob', 1)], live: true },
      { type: 'conversations/loaded', list: [{ peer: { id: 'bob', username: 'bob' }, lastMessage: dm('m1', 'bob', 1) }] },
    ]);
    expect(state.unread.bob).toBe(1);
  });

  it('do not grow for the open conversation while the window has attention, but do while it is hidden', () => {
    let state = run([{ type: 'active', key: 'bob' }, { type: 'message/received', messages: [dm('m1', 'bob', 1)], live: true }]);
    expect(state.unread.bob ?? 0).toBe(0);
    state = run([{ type: 'attention', value: false }, { type: 'message/received', messages: [dm('m2', 'bob', 2)], live: true }], state);
    expect(state.unread.bob).toBe(1);
    expect(totalUnread(state.unread)).toBe(1);
    state = run([{ type: 'attention', value: true }], state);
    expect(state.unread.bob).toBe(0);
  });

  it('clear when this tab marks the newest message read, or another tab of the user moves the cursor', () => {
    let state = run([{ type: 'message/received', messages: [dm('m1', 'bob', 1), dm('m2', 'bob', 2), dm('m3', 'bob', 3)], live: true }]);
    expect(state.unread.bob).toBe(3);
    state = run([{ type: 'read/event', event: { readerId: 'me', peerId: 'bob', upTo: 'm1', readAt: at(9) } }], state);
    expect(state.unread.bob).toBe(2);
    state = run([{ type: 'read/marked', key: 'bob', upTo: 'm3' }], state);
    expect(state.unread.bob).toBe(0);
  });

  it('do not count a message another tab already read before it arrived here', () => {
    const state = run([
      { type: 'message/received', messages: [dm('m1', 'bob', 1)], live: true },
      { type: 'read/event', event: { readerId: 'me', peerId: 'bob', upTo: 'm2', readAt: at(9) } },
      { type: 'message/received', messages: [dm('m2', 'bob', 2)], live: true },
    ]);
    expect(state.unread.bob).toBe(0);
  });

  it('leave muted conversations out of the tab title total', () => {
    expect(totalUnread({ a: 2, b: 3, c: 0 }, (key) => key === 'b')).toBe(2);
  });
});

describe('the new-messages divider', () => {
  it('goes above the first unread message when a conversation with unread messages opens', () => {
    const state = run([
      { type: 'thread/page', key: 'bob', page: [dm('m1', 'bob', 1), dm('m2', 'me', 2), dm('m3', 'bob', 3), dm('m4', 'bob', 4)], limit: 50 },
      { type: 'conversations/loaded', list: [{ peer: { id: 'bob', username: 'bob' }, lastMessage: dm('m4', 'bob', 4), unread: 2 }] },
      { type: 'active', key: 'bob' },
    ]);
    expect(state.marker).toEqual({ key: 'bob', count: 2, firstUnreadId: 'm3' });
    expect(state.unread.bob).toBe(0);
  });

  it('is placed once the first page arrives when the thread was not loaded yet, and stays while it is open', () => {
    let state = run([
      { type: 'conversations/loaded', list: [{ peer: { id: 'bob', username: 'bob' }, lastMessage: dm('m2', 'bob', 2), unread: 1 }] },
      { type: 'active', key: 'bob' },
    ]);
    expect(state.marker).toEqual({ key: 'bob', count: 1, firstUnreadId: null });
    state = run([{ type: 'thread/page', key: 'bob', page: [dm('m1', 'me', 1), dm('m2', 'bob', 2)], limit: 50 }], state);
    expect(state.marker.firstUnreadId).toBe('m2');
    state = run([{ type: 'message/received', messages: [dm('m3', 'bob', 3)], live: true }, { type: 'active', key: 'bob' }], state);
    expect(state.marker.firstUnreadId).toBe('m2');
    state = run([{ type: 'active', key: null }], state);
    expect(state.marker).toBe(null);
  });

  it('counts only messages from others, and falls back to the oldest loaded one', () => {
    const list = [dm('a', 'bob', 1), dm('b', 'me', 2), dm('c', 'bob', 3)];
    expect(firstUnreadId(list, 'me', 1)).toBe('c');
    expect(firstUnreadId(list, 'me', 2)).toBe('a');
    expect(firstUnreadId(list, 'me', 7)).toBe('a');
    expect(firstUnreadId(list, 'me', 0)).toBe(null);
  });
});

describe('read receipts', () => {
  const thread = [sent(dm('m1', 'me', 1)), sent(dm('m2', 'bob', 2)), sent(dm('m3', 'me', 3)), sent(dm('m4', 'me', 4))];

  it('show ✓✓ on my messages up to the peer’s cursor and ✓ after it', () => {
    expect(directReceipts(thread, 'me', 'm3')).toEqual({ m1: 'read', m3: 'read', m4: 'sent' });
    expect(directReceipts(thread, 'me', null)).toEqual({ m1: 'sent', m3: 'sent', m4: 'sent' });
    // A cursor on a message older than the loaded page marks nothing loaded as read.
    expect(directReceipts(thread, 'me', 'older')).toEqual({ m1: 'sent', m3: 'sent', m4: 'sent' });
  });

  it('follow peerReadUpTo and then conversation:read events from the peer', () => {
    let state = run([
      { type: 'thread/page', key: 'bob', page: [dm('m1', 'me', 1), dm('m2', 'me', 2)], limit: 50 },
      { type: 'conversations/loaded', list: [{ peer: { id: 'bob', username: 'bob' }, lastMessage: dm('m2', 'me', 2), unread: 0, peerReadUpTo: 'm1' }] },
    ]);
    expect(state.reads.bob).toEqual({ bob: 'm1' });
    state = run([{ type: 'read/event', event: { readerId: 'bob', peerId: 'me', upTo: 'm2', readAt: at(5) } }], state);
    expect(state.reads.bob).toEqual({ bob: 'm2' });
    // An older snapshot arriving later does not move the cursor back.
    state = run([{ type: 'conversations/loaded', list: [{ peer: { id: 'bob', username: 'bob' }, lastMessage: dm('m2', 'me', 2), unread: 0, peerReadUpTo: 'm1' }] }], state);
    expect(state.reads.bob).toEqual({ bob: 'm2' });
  });

  it('pick the later of two cursors by their place in the thread', () => {
    expect(laterCursor(thread, 'm1', 'm3')).toBe('m3');
    expect(laterCursor(thread, 'm3', 'm1')).toBe('m3');
    expect(laterCursor(thread, 'm3', 'unknown')).toBe('m3');
    expect(laterCursor(thread, 'unknown', 'm1')).toBe('m1');
    expect(laterCursor(thread, null, 'x')).toBe('x');
    expect(cursorIndex(thread, 'm4')).toBe(3);
    expect(unreadAfter(thread, 'me', 'm1')).toBe(1);
    expect(unreadAfter(thread, 'me', 'gone')).toBe(null);
  });

  it('say which room members have seen my latest message, from GET /api/rooms/{id} and events', () => {
    const key = roomKey('r1');
    const inRoom = (id, senderId, s) => ({ id, content: id, senderId, roomId: 'r1', createdAt: at(s) });
    const members = [
      { id: 'me', username: 'alice', role: 'owner', joinedAt: at(0), readUpTo: 'x2' },
      { id: 'bob', username: 'bob', role: 'member', joinedAt: at(0), readUpTo: 'x2' },
      { id: 'cy', username: 'cy', role: 'member', joinedAt: at(0), readUpTo: 'x1' },
      { id: 'dee', username: 'dee', role: 'member', joinedAt: at(0), readUpTo: null },
    ];
    let state = run([
      { type: 'thread/page', key, page: [inRoom('x1', 'bob', 1), inRoom('x2', 'me', 2)], limit: 50 },
      { type: 'room/loaded', room: { id: 'r1', name: 'Team', ownerId: 'me', createdAt: at(0), members } },
    ]);
    const seen = () => seenBy(state.threads[key].messages, 'me', state.reads[key], state.rooms.r1.members);
    expect(seen().viewers.map((m) => m.username)).toEqual(['bob']);
    state = run([{ type: 'read/event', event: { readerId: 'cy', roomId: 'r1', upTo: 'x2', readAt: at(3) } }], state);
    expect(seen()).toMatchObject({ messageId: 'x2', viewers: [{ id: 'bob' }, { id: 'cy' }] });
    expect(state.myReads[key]).toBe('x2');
  });
});
