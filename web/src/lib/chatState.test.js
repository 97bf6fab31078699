import { describe, expect, it } from 'vitest';
import { chatReducer, initialChatState } from './chatState.js';

const me = { id: 'me', username: 'alice' };
const at = (s) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const fromBob = (id, s) => ({ id, content: id, senderId: 'bob', receiverId: 'me', createdAt: at(s), senderUsername: 'bob' });

function run(actions, state = initialChatState(me)) {
  return actions.reduce(chatReducer, state);
}

describe('the chat state', () => {
  it('tracks presence from user:init, user:online and user:offline', () => {
    const state = run([
      { type: 'presence/init', users: [{ id: 'me', username: 'alice' }, { id: 'bob', username: 'bob' }] },
      { type: 'presence/online', user: { id: 'cy', username: 'cy' } },
      { type: 'presence/offline', id: 'bob' },
    ]);
    expect([...state.online].sort()).toEqual(['cy', 'me']);
    expect(state.users.cy.username).toBe('cy');
  });

  it('files a message:new under its conversation, once, and counts it unread when not open', () => {
    const state = run([
      { type: 'message/received', messages: [fromBob('m1', 1)], live: true },
      { type: 'message/received', messages: [fromBob('m1', 1)], live: true },
    ]);
    expect(state.threads.bob.messages).toHaveLength(1);
    expect(state.unread.bob).toBe(1);
    expect(state.conversations[0]).toMatchObject({ peer: { id: 'bob', username: 'bob' }, lastMessage: { id: 'm1' } });
    expect(state.cursor.id).toBe('m1');
    expect(run([{ type: 'active', key: 'bob' }], state).unread.bob).toBe(0);
  });

  it('does not count messages of the open conversation as unread', () => {
    const state = run([{ type: 'active', key: 'bob' }, { type: 'message/received', messages: [fromBob('m1', 1)] }]);
    expect(state.unread.bob ?? 0).toBe(0);
  });

  it('ignores messages that are not to or from the caller', () => {
    const stray = { id: 'x', content: 'x', senderId: 'a', receiverId: 'b', createdAt: at(1) };
    expect(run([{ type: 'message/received', messages: [stray] }]).threads).toEqual({});
  });

  it('turns a pending send into a sent message and updates the preview and cursor', () => {
    const stored = { id: 'm9', content: 'hey', senderId: 'me', receiverId: 'bob', createdAt: at(9) };
    let state = run([
      { type: 'presence/init', users: [{ id: 'bob', username: 'bob' }] },
      { type: 'message/pending', key: 'bob', message: { clientMsgId: 'c1', content: 'hey', receiverId: 'bob', createdAt: at(8) } },
    ]);
    expect(state.threads.bob.messages[0].status).toBe('pending');
    state = run([{ type: 'message/ack', key: 'bob', clientMsgId: 'c1', message: stored }], state);
    expect(state.threads.bob.messages).toEqual([expect.objectContaining({ id: 'm9', status: 'sent' })]);
    expect(state.conversations[0].peer).toMatchObject({ id: 'bob', username: 'bob' });
    expect(state.cursor.id).toBe('m9');
  });

  it('keeps socket messages that are newer than a conversations response', () => {
    const state = run([
      { type: 'message/received', messages: [fromBob('m5', 5)] },
      {
        type: 'conversations/loaded',
        list: [
          { peer: { id: 'bob', username: 'bob', online: true }, lastMessage: fromBob('m1', 1) },
          { peer: { id: 'cy', username: 'cy', online: false }, lastMessage: { id: 'm2', senderId: 'me', receiverId: 'cy', content: 'x', createdAt: at(2) } },
        ],
      },
    ]);
    expect(state.conversations.map((c) => [c.peer.id, c.lastMessage.id])).toEqual([['bob', 'm5'], ['cy', 'm2']]);
    expect(state.cursor.id).toBe('m5');
  });

  it('loads a thread and pages back', () => {
    const page = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => fromBob(`m${from + i}`, from + i));
    let state = run([
      { type: 'thread/loading', key: 'bob' },
      { type: 'thread/page', key: 'bob', page: page(3, 4), limit: 2 },
    ]);
    expect(state.threads.bob).toMatchObject({ loaded: true, loading: false, hasMore: true });
    state = run([
      { type: 'thread/loading', key: 'bob', older: true },
      { type: 'thread/page', key: 'bob', page: page(1, 1), limit: 2, older: true },
    ], state);
    expect(state.threads.bob.messages.map((m) => m.id)).toEqual(['m1', 'm3', 'm4']);
    expect(state.threads.bob.hasMore).toBe(false);
  });

  it('records a failed send and its retry', () => {
    let state = run([
      { type: 'message/pending', key: 'bob', message: { clientMsgId: 'c1', content: 'hey', receiverId: 'bob', createdAt: at(1) } },
      { type: 'message/failed', key: 'bob', clientMsgId: 'c1', error: { code: 'unavailable', message: 'down' } },
    ]);
    expect(state.threads.bob.messages[0].status).toBe('failed');
    state = run([{ type: 'message/retry', key: 'bob', clientMsgId: 'c1' }], state);
    expect(state.threads.bob.messages[0].status).toBe('pending');
  });
});
