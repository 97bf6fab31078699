import { describe, expect, it } from 'vitest';
import { chatReducer, initialChatState } from './chatState.js';
import { roomKey } from './keys.js';

const me = { id: 'me', username: 'alice' };
const at = (s) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const member = (id, username, role = 'member') => ({ id, username, role, joinedAt: at(0) });
const room = (overrides = {}) => ({
  id: 'r1',
  name: 'Climbing',
  ownerId: 'me',
  createdAt: at(10),
  members: [member('me', 'alice', 'owner'), member('bob', 'bob'), member('cy', 'cy')],
  ...overrides,
});
const inRoom = (id, senderId, s, extra = {}) => ({ id, content: id, senderId, roomId: 'r1', createdAt: at(s), ...extra });
const R1 = roomKey('r1');

function run(actions, state = initialChatState(me)) {
  return actions.reduce(chatReducer, state);
}

describe('rooms in the chat state', () => {
  it('adds a created room to the sidebar with its member count and no message', () => {
    const state = run([{ type: 'room/updated', room: room() }]);
    expect(state.conversations).toEqual([
      { key: R1, kind: 'room', room: { id: 'r1', name: 'Climbing', memberCount: 3 }, lastMessage: null, since: at(10) },
    ]);
    expect(state.users.bob.username).toBe('bob');
  });

  it('renames and resizes the room in place on room:updated', () => {
    const state = run([
      { type: 'room/updated', room: room() },
      { type: 'room/updated', room: room({ name: 'Bouldering', members: [member('me', 'alice', 'owner'), member('bob', 'bob')] }) },
    ]);
    expect(state.conversations).toHaveLength(1);
    expect(state.conversations[0].room).toEqual({ id: 'r1', name: 'Bouldering', memberCount: 2 });
    expect(state.rooms.r1.members.map((m) => m.id)).toEqual(['me', 'bob']);
  });

  it('files room messages under the room, with the sender remembered, and counts them unread', () => {
    const state = run([
      { type: 'room/updated', room: room() },
      { type: 'message/received', messages: [inRoom('m1', 'bob', 11, { senderUsername: 'bob' })], live: true },
      { type: 'message/received', messages: [inRoom('m1', 'bob', 11, { senderUsername: 'bob' })], live: true },
      { type: 'message/received', messages: [inRoom('m2', 'me', 12)], live: true },
    ]);
    expect(state.threads[R1].messages.map((m) => m.id)).toEqual(['m1', 'm2']);
    expect(state.threads[R1].messages[0]).toMatchObject({ roomId: 'r1', senderUsername: 'bob' });
    expect(state.unread[R1]).toBe(1);
    expect(state.conversations[0].lastMessage.id).toBe('m2');
    expect(state.cursor.id).toBe('m2');
  });

  it('takes room messages from message:sync (roomId, no receiverId) like live ones', () => {
    const state = run([{ type: 'message/received', messages: [inRoom('m1', 'bob', 11), { id: 'd1', content: 'x', senderId: 'cy', receiverId: 'me', createdAt: at(12) }] }]);
    expect(state.threads[R1].messages).toHaveLength(1);
    expect(state.threads.cy.messages).toHaveLength(1);
    expect(state.conversations.map((c) => c.key)).toEqual(['cy', R1]);
  });

  it('sends into a room: pending, then the ack with the stored room message', () => {
    let state = run([
      { type: 'room/updated', room: room() },
      { type: 'message/pending', key: R1, message: { clientMsgId: 'c1', content: 'hi all', createdAt: at(20) } },
    ]);
    expect(state.threads[R1].messages[0]).toMatchObject({ status: 'pending', roomId: 'r1', senderId: 'me' });
    // The room:message of our own send may overtake the ack; it is adopted, not shown twice.
    state = run([{ type: 'message/received', messages: [inRoom('s1', 'me', 21, { content: 'hi all' })], live: true }], state);
    state = run([{ type: 'message/ack', key: R1, clientMsgId: 'c1', message: inRoom('s1', 'me', 21, { content: 'hi all' }) }], state);
    expect(state.threads[R1].messages).toEqual([expect.objectContaining({ id: 's1', status: 'sent', clientMsgId: 'c1' })]);
    expect(state.conversations[0]).toMatchObject({ key: R1, lastMessage: { id: 's1' } });
  });

  it('drops a room the user was removed from, closes it, says so, and ignores its late events', () => {
    let state = run([
      { type: 'room/updated', room: room() },
      { type: 'active', key: R1 },
      { type: 'message/received', messages: [inRoom('m1', 'bob', 11)] },
      { type: 'room/removed', roomId: 'r1' },
    ]);
    expect(state.conversations).toEqual([]);
    expect(state.activeKey).toBe(null);
    expect(state.threads[R1]).toBeUndefined();
    expect(state.notice).toMatch(/no longer a member of “Climbing”/);
    state = run([
      { type: 'message/received', messages: [inRoom('m2', 'bob', 12)], live: true },
      { type: 'typing/event', event: { userId: 'bob', username: 'bob', roomId: 'r1', typing: true }, now: 0 },
    ], state);
    expect(state.threads[R1]).toBeUndefined();
    expect(state.typing).toEqual({});
    expect(state.conversations).toEqual([]);
  });

  it('says nothing when the user left the room themselves, and takes the room back if re-added', () => {
    let state = run([{ type: 'room/updated', room: room() }, { type: 'room/removed', roomId: 'r1', self: true }]);
    expect(state.notice).toBe(null);
    state = run([{ type: 'room/updated', room: room() }, { type: 'message/received', messages: [inRoom('m3', 'bob', 13)] }], state);
    expect(state.conversations.map((c) => c.key)).toEqual([R1]);
    expect(state.threads[R1].messages).toHaveLength(1);
  });

  it('drops a room the server no longer lists when nothing was heard of it since the request started', () => {
    let state = run([{ type: 'room/updated', room: room() }, { type: 'room/updated', room: room({ id: 'r2', name: 'Gone' }) }]);
    const since = state.roomEvents;
    state = run([{ type: 'conversations/loaded', list: [{ room: { id: 'r1', name: 'Climbing', memberCount: 3 }, lastMessage: null, unread: 0 }], since }], state);
    expect(state.conversations.map((c) => c.key)).toEqual([R1]);
  });

  it('keeps a room created during a conversations request, and forgets one it was removed from', () => {
    const state = run([
      { type: 'room/updated', room: room() },
      { type: 'room/updated', room: room({ id: 'r2', name: 'Old' }) },
      { type: 'room/removed', roomId: 'r2' },
      // The request started before any of it.
      { type: 'conversations/loaded', list: [{ room: { id: 'r2', name: 'Old', memberCount: 3 }, lastMessage: null, unread: 0 }], since: 0 },
    ]);
    expect(state.conversations.map((c) => c.key)).toEqual([R1]);
  });

  it('stops showing a member as typing once they are out of the room', () => {
    const state = run([
      { type: 'room/updated', room: room() },
      { type: 'typing/event', event: { userId: 'cy', username: 'cy', roomId: 'r1', typing: true }, now: 0 },
      { type: 'room/updated', room: room({ members: [member('me', 'alice', 'owner'), member('bob', 'bob')] }) },
    ]);
    expect(state.typing).toEqual({});
  });
});
