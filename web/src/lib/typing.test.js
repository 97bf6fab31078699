import { describe, expect, it } from 'vitest';
import { chatReducer, initialChatState } from './chatState.js';
import { roomKey } from './keys.js';
import {
  expireTyping,
  nextTypingExpiry,
  TYPING_REFRESH_MS,
  TYPING_TIMEOUT_MS,
  typingInput,
  typingLine,
  typingNames,
  typingStop,
} from './typing.js';

describe('sending typing', () => {
  it('says true on the first keystroke, again only every 3 s, and false when the box is cleared', () => {
    let step = typingInput(null, { key: 'bob', text: 'h', now: 0 });
    expect(step.emits).toEqual([{ key: 'bob', typing: true }]);
    step = typingInput(step.state, { key: 'bob', text: 'he', now: TYPING_REFRESH_MS - 1 });
    expect(step.emits).toEqual([]);
    step = typingInput(step.state, { key: 'bob', text: 'hel', now: TYPING_REFRESH_MS });
    expect(step.emits).toEqual([{ key: 'bob', typing: true }]);
    step = typingInput(step.state, { key: 'bob', text: '  ', now: TYPING_REFRESH_MS + 10 });
    expect(step).toEqual({ state: null, emits: [{ key: 'bob', typing: false }] });
  });

  it('says false for the old conversation when typing moves to another', () => {
    const first = typingInput(null, { key: 'bob', text: 'x', now: 0 });
    const step = typingInput(first.state, { key: roomKey('r1'), text: 'y', now: 10 });
    expect(step.emits).toEqual([{ key: 'bob', typing: false }, { key: roomKey('r1'), typing: true }]);
  });

  it('says false once on send or blur, and nothing when it was not typing', () => {
    const typing = typingInput(null, { key: 'bob', text: 'x', now: 0 }).state;
    expect(typingStop(typing)).toEqual({ state: null, emits: [{ key: 'bob', typing: false }] });
    expect(typingStop(null)).toEqual({ state: null, emits: [] });
  });
});

describe('hearing typing', () => {
  const me = { id: 'me', username: 'alice' };
  const run = (actions, state = initialChatState(me)) => actions.reduce(chatReducer, state);
  const event = (userId, typing, extra = {}) => ({ userId, username: userId, peerId: 'me', typing, ...extra });

  it('shows a direct-chat typist until 6 s after their last true', () => {
    let state = run([{ type: 'typing/event', event: event('bob', true), now: 1000 }]);
    expect(typingNames(state.typing, 'bob')).toEqual(['bob']);
    expect(nextTypingExpiry(state.typing)).toBe(1000 + TYPING_TIMEOUT_MS);
    state = run([{ type: 'typing/event', event: event('bob', true), now: 4000 }, { type: 'typing/expire', now: 1000 + TYPING_TIMEOUT_MS }], state);
    expect(typingNames(state.typing, 'bob')).toEqual(['bob']);
    state = run([{ type: 'typing/expire', now: 4000 + TYPING_TIMEOUT_MS }], state);
    expect(state.typing).toEqual({});
    expect(nextTypingExpiry(state.typing)).toBe(null);
  });

  it('stops a typist on typing false and on their next message', () => {
    const key = roomKey('r1');
    let state = run([
      { type: 'typing/event', event: event('bob', true, { roomId: 'r1', peerId: undefined }), now: 0 },
      { type: 'typing/event', event: event('cy', true, { roomId: 'r1', peerId: undefined }), now: 0 },
    ]);
    expect(typingLine(typingNames(state.typing, key))).toBe('bob and cy are typing…');
    state = run([{ type: 'typing/event', event: event('cy', false, { roomId: 'r1', peerId: undefined }), now: 1 }], state);
    expect(typingLine(typingNames(state.typing, key))).toBe('bob is typing…');
    state = run([{ type: 'message/received', messages: [{ id: 'm1', content: 'hi', senderId: 'bob', roomId: 'r1', createdAt: new Date(0).toISOString() }], live: true }], state);
    expect(state.typing).toEqual({});
  });

  it('never shows the user as typing to themselves', () => {
    expect(run([{ type: 'typing/event', event: event('me', true), now: 0 }]).typing).toEqual({});
  });

  it('words the line for one, two and many typists', () => {
    expect(typingLine([])).toBe('');
    expect(typingLine(['alice'])).toBe('alice is typing…');
    expect(typingLine(['alice', 'bob', 'cy'])).toBe('alice, bob and 1 other are typing…');
    expect(typingLine(['a', 'b', 'c', 'd'])).toBe('a, b and 2 others are typing…');
    expect(expireTyping({ k: { u: { username: 'u', until: 5 } } }, 5)).toEqual({});
  });
});
